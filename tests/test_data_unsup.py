"""Positives of unsupervised WINN (issue 11): every bad file or value is a UserError, one line
naming the file; plain ValueError is left to programming errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robust_winn.data.positives import TextureCrops, load_positives, read_image
from robust_winn.errors import BadValueError, DataUnavailableError, UserError


def png_bytes(size: int = 40, fmt: str = "PNG") -> bytes:
    arr = (np.arange(size * size * 3) % 251).astype(np.uint8).reshape(size, size, 3)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def one_line(exc_info: pytest.ExceptionInfo[UserError]) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not an image", png_bytes()[:60], png_bytes()[:-40], png_bytes(fmt="JPEG")[:200]],
    ids=["empty", "text", "png-head", "png-cut", "jpeg-cut"],
)
def test_corrupt_or_non_image_file(tmp_path: Path, content: bytes):
    path = tmp_path / "tex.png"
    path.write_bytes(content)
    with pytest.raises(DataUnavailableError, match="cannot read image") as info:
        read_image(path)
    assert str(path) in one_line(info)
    with pytest.raises(DataUnavailableError):
        load_positives("texture", image=path, size=16)


def patched(data: bytes, at: int, value: int) -> bytes:
    out = bytearray(data)
    out[at] = value
    return bytes(out)


@pytest.mark.parametrize(
    "content",
    [
        patched(png_bytes(), 11, 0),  # IHDR length 0: PIL raises ValueError('Truncated IHDR chunk')
        patched(png_bytes(), 35, 0),  # length of the chunk after IHDR: SyntaxError('broken PNG file')
    ],
    ids=["png-ihdr-valueerror", "png-chunk-syntaxerror"],
)
def test_damaged_png_that_pil_reports_without_oserror(tmp_path: Path, content: bytes):
    """PIL raises ValueError or SyntaxError (not OSError) for these byte-level damages."""
    path = tmp_path / "damaged.png"
    path.write_bytes(content)
    with pytest.raises(DataUnavailableError, match="cannot read image") as info:
        read_image(path, size=16)
    assert str(path) in one_line(info)


def test_decompression_bomb_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 pixels > 2 x limit: an error
    with pytest.raises(DataUnavailableError, match="decompression bomb") as info:
        read_image(path)
    assert str(path) in one_line(info)


def test_missing_and_directory_image(tmp_path: Path):
    with pytest.raises(DataUnavailableError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(DataUnavailableError, match=r"dir.png is not a regular file"):
        load_positives("texture", image=tmp_path / "dir.png")


def test_unreadable_image_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "tex.png"
    path.write_bytes(png_bytes())

    def no_access(fp: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(fp))

    monkeypatch.setattr(Image, "open", no_access)
    with pytest.raises(DataUnavailableError, match="Permission denied") as info:
        read_image(path)
    assert str(path) in one_line(info)


def test_texture_smaller_than_crop_names_the_file(tmp_path: Path):
    path = tmp_path / "small.png"
    path.write_bytes(png_bytes(40))
    with pytest.raises(BadValueError, match="40x40, smaller than the 64x64 crop") as info:
        load_positives("texture", image=path, size=64)
    assert str(path) in one_line(info)
    with pytest.raises(BadValueError, match="smaller than"):
        TextureCrops(torch.zeros(3, 8, 8, dtype=torch.uint8), crop=16)
    assert load_positives("texture", image=path, size=40).image_shape == (3, 40, 40)


@pytest.mark.parametrize("kw", [{"size": 0}, {"size": -3}, {"size": 2.5}, {"limit": 0}, {"limit": -1}])
def test_bad_size_or_limit(tmp_path: Path, kw: dict[str, object]):
    path = tmp_path / "tex.png"
    path.write_bytes(png_bytes())
    with pytest.raises(BadValueError, match="must be a positive integer"):
        load_positives("texture", image=path, **kw)


def test_unknown_name_and_missing_arguments_are_user_errors():
    with pytest.raises(BadValueError, match="choose one of"):
        load_positives("lsun")
    with pytest.raises(BadValueError, match="--image"):
        load_positives("texture")
    with pytest.raises(BadValueError, match="--folder"):
        load_positives("image-folder")


def test_image_folder_problems(tmp_path: Path):
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_positives("image-folder", folder=tmp_path / "nope")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DataUnavailableError, match="is a file, not a folder"):
        load_positives("image-folder", folder=tmp_path / "file")
    empty = tmp_path / "empty"
    (empty / "sub.png").mkdir(parents=True)  # a folder named like an image is not an image
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DataUnavailableError, match="no .png/.jpg/.jpeg/.bmp files in") as info:
        load_positives("image-folder", folder=empty)
    assert str(empty) in one_line(info)
    good = tmp_path / "imgs"
    good.mkdir()
    for i in range(3):
        (good / f"{i}.png").write_bytes(png_bytes(20 + i))
    assert len(load_positives("image-folder", folder=good, size=16)) == 3
    (good / "1.png").write_bytes(b"broken")
    with pytest.raises(DataUnavailableError, match="cannot read image") as info:
        load_positives("image-folder", folder=good, size=16)
    assert str(good / "1.png") in one_line(info)


def test_dataset_positives_errors_come_from_the_data_layer(tmp_path: Path):
    with pytest.raises(DataUnavailableError, match="MNIST/raw"):
        load_positives("mnist", data_dir=tmp_path)


def test_celeba_missing_names_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(tv_utils, "download_file_from_google_drive", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(
        DataUnavailableError, match=r"celeba: .*celeba/list_attr_celeba.txt is missing"
    ) as info:
        load_positives("celeba", data_dir=tmp_path)
    assert "--download" in one_line(info)
    folder = tmp_path / "celeba"
    folder.mkdir()
    (folder / "list_attr_celeba.txt").write_text("junk\n")
    with pytest.raises(DataUnavailableError, match="list_attr_celeba.txt is not the official file"):
        load_positives("celeba", data_dir=tmp_path)


def test_celeba_corrupt_image_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """torchvision's layout with the md5 check bypassed (synthetic lists) and one broken jpg."""
    import torchvision.datasets.celeba as tv_celeba

    monkeypatch.setattr(tv_celeba, "check_integrity", lambda *a, **k: True)
    folder = tmp_path / "celeba"
    imgs = folder / "img_align_celeba"
    imgs.mkdir(parents=True)
    names = ["000001.jpg", "000002.jpg"]
    (imgs / names[0]).write_bytes(png_bytes(50, "JPEG"))
    (imgs / names[1]).write_bytes(png_bytes(50, "JPEG")[:100])
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} 0\n" for n in names))
    (folder / "identity_CelebA.txt").write_text("".join(f"{n} 1\n" for n in names))
    (folder / "list_bbox_celeba.txt").write_text(
        "2\nimage_id x_1 y_1 width height\n" + "".join(f"{n} 1 2 3 4\n" for n in names)
    )
    (folder / "list_landmarks_align_celeba.txt").write_text(
        "2\nlefteye_x lefteye_y\n" + "".join(f"{n} 1 2\n" for n in names)
    )
    (folder / "list_attr_celeba.txt").write_text("2\nSmiling\n" + "".join(f"{n} 1\n" for n in names))
    src = load_positives("celeba", data_dir=tmp_path, size=16, limit=1)
    assert src.image_shape == (3, 16, 16)
    with pytest.raises(DataUnavailableError, match="cannot read image") as info:
        load_positives("celeba", data_dir=tmp_path, size=16)
    assert str(imgs / names[1]) in one_line(info)


def test_celeba_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets.celeba as tv_celeba

    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("test: no network\nsecond line")

    monkeypatch.setattr(tv_celeba, "download_file_from_google_drive", offline)
    with pytest.raises(
        DataUnavailableError, match="celeba: download into .* failed: test: no network"
    ) as info:
        load_positives("celeba", data_dir=tmp_path, download=True)
    one_line(info)


def test_folder_we_may_not_search_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """EACCES on stat (pathlib's exists() raises it; root never sees it, so it is simulated)."""
    locked = tmp_path / "locked"
    real_exists = Path.exists

    def exists(self: Path) -> bool:
        if locked in (self, *self.parents):
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", exists)
    with pytest.raises(DataUnavailableError, match="cannot access .*locked.*Permission denied"):
        read_image(locked / "a.png")
    with pytest.raises(DataUnavailableError, match="cannot access .*locked"):
        load_positives("image-folder", folder=locked / "imgs")
