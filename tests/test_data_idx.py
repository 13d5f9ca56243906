"""MNIST-like IDX files read by robust_winn.data.datasets itself (issue 11): hostile files, no network.

Every bad file must be one :class:`DataUnavailableError` naming it, nothing may touch the network
without ``download=True``, and the tensors must be exactly the ones torchvision gives.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from robust_winn.data.datasets import DataUnavailableError, load_dataset

IMAGES, LABELS = 0x00000803, 0x00000801
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    """LeCun's IDX encoding: big-endian magic, one big-endian int32 per dimension, then the bytes."""
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write_mnist(
    raw: Path, *, n_train: int = 30, n_test: int = 12, gz: bool = True, level: int = 9, seed: int = 0
) -> dict[str, np.ndarray]:
    """Four random MNIST-like IDX files in ``raw`` (gzip level ``level`` or uncompressed)."""
    rng = np.random.default_rng(seed)
    arrays = {
        FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data = idx_bytes(arr, IMAGES if arr.ndim == 3 else LABELS)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=level, mtime=level))
        else:
            (raw / name).write_bytes(data)
    return arrays


@pytest.fixture
def network_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way the loaders could reach the network records itself here and fails."""
    import torchvision.datasets.mnist as tv_mnist
    import torchvision.datasets.utils as tv_utils

    calls: list[str] = []

    def refuse(what: str):
        def fn(*args: object, **kwargs: object) -> None:
            calls.append(what)
            raise OSError(f"test: network access attempted via {what}")

        return fn

    for mod, attr in (
        (tv_utils, "download_url"),
        (tv_utils, "download_and_extract_archive"),
        (tv_mnist, "download_and_extract_archive"),
        (urllib.request, "urlopen"),
        (socket, "create_connection"),
    ):
        monkeypatch.setattr(mod, attr, refuse(f"{mod.__name__}.{attr}"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(tv_mnist.MNIST, "download", refuse("MNIST.download"))
    return calls


def expect_error(root: Path, match: str, dataset: str = "mnist") -> str:
    with pytest.raises(DataUnavailableError, match=match) as info:
        load_dataset(dataset, data_dir=root, val_size=0)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- accepted files


def test_gz_recompressed_gives_torchvisions_tensors(tmp_path: Path, network_calls: list[str]):
    """Same IDX content, different gzip bytes (level 1 vs 9): accepted, identical to torchvision."""
    import torchvision.datasets as tvd

    arrays = write_mnist(tmp_path / "a" / "MNIST" / "raw", level=9)
    write_mnist(tmp_path / "b" / "MNIST" / "raw", level=1)
    a, b = (tmp_path / x / "MNIST" / "raw" / f"{FILES[0]}.gz" for x in "ab")
    assert a.read_bytes() != b.read_bytes()
    ref = tmp_path / "ref" / "MNIST" / "raw"  # torchvision reads the extracted files, offline
    ref.mkdir(parents=True)
    for name, arr in arrays.items():
        (ref / name).write_bytes(idx_bytes(arr, IMAGES if arr.ndim == 3 else LABELS))
    tv_train = tvd.MNIST(str(tmp_path / "ref"), train=True, download=False)
    tv_test = tvd.MNIST(str(tmp_path / "ref"), train=False, download=False)
    for root in (tmp_path / "a", tmp_path / "b"):
        d = load_dataset("mnist", data_dir=root, val_size=10)
        assert torch.equal(torch.cat([d.train.images, d.val.images]), tv_train.data.unsqueeze(1))
        assert torch.equal(torch.cat([d.train.labels, d.val.labels]), tv_train.targets)
        assert torch.equal(d.test.images, tv_test.data.unsqueeze(1))
        assert torch.equal(d.test.labels, tv_test.targets)
        assert d.train.images.dtype == torch.uint8 and d.train.labels.dtype == torch.int64
        assert torch.equal(d.val.images[:, 0], torch.from_numpy(arrays[FILES[0]][20:]))  # last 10 = val
    assert network_calls == []


def test_uncompressed_idx_accepted(tmp_path: Path):
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gz=False)
    d = load_dataset("mnist", data_dir=tmp_path, val_size=0)
    assert torch.equal(d.train.images[:, 0], torch.from_numpy(arrays[FILES[0]]))
    assert d.test.labels.tolist() == arrays[FILES[3]].tolist()


def test_uncompressed_preferred_over_gz_like_torchvision(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=True, seed=1)
    arrays = write_mnist(raw, gz=False, seed=2)
    d = load_dataset("mnist", data_dir=tmp_path, val_size=0)
    assert torch.equal(d.train.images[:, 0], torch.from_numpy(arrays[FILES[0]]))


def test_read_only_folder_is_read_in_place_without_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """No extraction and no copy to $ROBUST_WINN_CACHE any more: nothing is written anywhere."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROBUST_WINN_CACHE", str(cache))
    raw = tmp_path / "ro" / "MNIST" / "raw"
    write_mnist(raw)
    before = sorted(p.name for p in raw.iterdir())
    raw.chmod(0o555)
    try:
        d = load_dataset("mnist", data_dir=tmp_path / "ro", val_size=0)
    finally:
        raw.chmod(0o755)
    assert len(d.train) == 30
    assert sorted(p.name for p in raw.iterdir()) == before
    assert not cache.exists()


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="shared MNIST not present")
def test_real_mnist_recompressed_gz_bit_identical_to_torchvision(tmp_path: Path, network_calls: list[str]):
    """The real archives, recompressed (md5 differs): accepted, same tensors as torchvision's
    reading of the extracted files, default split 45k / last 15k unchanged (REFERENCE §1.1)."""
    import torchvision.datasets as tvd

    src = SHARED_DATA / "MNIST" / "raw"
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        with gzip.open(src / f"{name}.gz", "rb") as fh:
            (raw / f"{name}.gz").write_bytes(gzip.compress(fh.read(), compresslevel=1))
        assert (raw / f"{name}.gz").read_bytes() != (src / f"{name}.gz").read_bytes()
    d = load_dataset("mnist", data_dir=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (45_000, 15_000, 10_000)
    ref_root = tmp_path / "ref"
    (ref_root / "MNIST" / "raw").mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(src / name, ref_root / "MNIST" / "raw" / name)
    tv_train = tvd.MNIST(str(ref_root), train=True, download=False)
    tv_test = tvd.MNIST(str(ref_root), train=False, download=False)
    assert torch.equal(d.train.images, tv_train.data[:45_000].unsqueeze(1))
    assert torch.equal(d.val.images, tv_train.data[45_000:].unsqueeze(1))
    assert torch.equal(d.train.labels, tv_train.targets[:45_000])
    assert torch.equal(d.val.labels, tv_train.targets[45_000:])
    assert torch.equal(d.test.images, tv_test.data.unsqueeze(1))
    assert torch.equal(d.test.labels, tv_test.targets)
    assert network_calls == []


def test_fashion_mnist_from_debian_folder(tmp_path: Path, network_calls: list[str]):
    """Debian's dataset-fashion-mnist: four .gz (other gzip bytes) flat in .../fashion-mnist."""
    arrays = write_mnist(tmp_path / "datasets" / "fashion-mnist", level=6, seed=3)
    for data_dir in (tmp_path / "datasets" / "fashion-mnist", tmp_path / "datasets"):
        d = load_dataset("fashion-mnist", data_dir=data_dir, val_size=0)
        assert torch.equal(d.train.images[:, 0], torch.from_numpy(arrays[FILES[0]]))
        assert d.test.labels.tolist() == arrays[FILES[3]].tolist()
    # the same flat folder is never taken for MNIST (the file names are the same)
    msg = expect_error(tmp_path / "datasets" / "fashion-mnist", "MNIST/raw")
    assert "--download" in msg
    assert network_calls == []


def test_fashion_mnist_torchvision_layout(tmp_path: Path):
    write_mnist(tmp_path / "FashionMNIST" / "raw")
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path, val_size=0).train) == 30


# --------------------------------------------------------------------------- refused files


def test_missing_files_name_the_folder_and_download(tmp_path: Path, network_calls: list[str]):
    msg = expect_error(tmp_path, str(tmp_path / "MNIST" / "raw"))
    assert "--download" in msg and "train-images-idx3-ubyte[.gz]" in msg
    msg = expect_error(tmp_path, "FashionMNIST/raw", dataset="fashion-mnist")
    assert "/usr/share/datasets/fashion-mnist" in msg and "--download" in msg
    assert network_calls == []


def test_partial_folder_lists_only_the_missing_files(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    (raw / f"{FILES[3]}.gz").unlink()
    msg = expect_error(tmp_path, "missing: t10k-labels-idx1-ubyte")
    assert "train-images" not in msg


def test_truncated_gz_is_one_error_and_no_network(tmp_path: Path, network_calls: list[str]):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    gz = raw / f"{FILES[0]}.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    msg = expect_error(tmp_path, "train-images-idx3-ubyte.gz: not a valid, complete gzip file")
    assert str(gz) in msg
    assert network_calls == []


def test_truncated_content_says_sizes(tmp_path: Path, network_calls: list[str]):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    data = gzip.decompress((raw / f"{FILES[2]}.gz").read_bytes())
    (raw / f"{FILES[2]}.gz").write_bytes(gzip.compress(data[:-100]))  # valid gzip, short content
    expect_error(
        tmp_path, rf"t10k-images-idx3-ubyte.gz: truncated: {len(data) - 100} bytes .*header says {len(data)}"
    )
    assert network_calls == []


def test_trailing_data_is_refused(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    with open(raw / FILES[1], "ab") as fh:
        fh.write(b"\x01\x02")
    expect_error(tmp_path, "train-labels-idx1-ubyte: longer than declared")


def test_header_declaring_huge_count_is_truncated_not_allocated(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    data = bytearray((raw / FILES[0]).read_bytes())
    data[4:8] = (2**31 - 1).to_bytes(4, "big")  # ~1.7 TB of images declared
    (raw / FILES[0]).write_bytes(bytes(data))
    expect_error(tmp_path, "train-images-idx3-ubyte: truncated")


def test_wrong_magic(tmp_path: Path, network_calls: list[str]):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    shutil.copyfile(raw / f"{FILES[1]}.gz", raw / f"{FILES[0]}.gz")  # a label file as images
    expect_error(tmp_path, r"train-images-idx3-ubyte.gz: not an IDX image file \(magic 0x00000801")
    (raw / f"{FILES[0]}.gz").write_bytes(gzip.compress(b"\x00\x00"))
    expect_error(tmp_path, "not an IDX image file .file shorter than 4 bytes")
    assert network_calls == []


def test_plain_file_named_gz_is_refused(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    (raw / f"{FILES[3]}.gz").write_bytes(gzip.decompress((raw / f"{FILES[3]}.gz").read_bytes()))
    expect_error(tmp_path, "t10k-labels-idx1-ubyte.gz: not a valid, complete gzip file")


def test_images_not_28x28(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    (raw / FILES[0]).write_bytes(idx_bytes(np.zeros((30, 32, 32), np.uint8), IMAGES))
    expect_error(tmp_path, "images are 32x32, expected 28x28")


def test_label_and_image_counts_differ(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    (raw / FILES[3]).write_bytes(idx_bytes(np.zeros(11, np.uint8), LABELS))
    msg = expect_error(tmp_path, "12 images in .*t10k-images-idx3-ubyte but 11 labels in")
    assert str(raw / FILES[3]) in msg


def test_label_out_of_range(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    (raw / FILES[1]).write_bytes(idx_bytes(np.full(30, 10, np.uint8), LABELS))
    expect_error(tmp_path, r"train-labels-idx1-ubyte: label 10 outside 0\.\.9")


def test_empty_set_is_refused(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, n_test=0, gz=False)
    expect_error(tmp_path, "t10k-images-idx3-ubyte holds no images")


@pytest.mark.parametrize("name", [f"{FILES[0]}.gz", FILES[0]])
def test_directory_in_place_of_a_file(tmp_path: Path, name: str, network_calls: list[str]):
    """Unreadable file (root reads through chmod, so a directory stands in for EACCES/EISDIR)."""
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    (raw / f"{FILES[0]}.gz").unlink()
    (raw / name).mkdir()
    expect_error(tmp_path, f"{raw / name} is a directory")
    assert network_calls == []


def test_permission_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)

    def no_access(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(gzip, "open", no_access)
    expect_error(tmp_path, "cannot read .*train-images-idx3-ubyte.gz: Permission denied")


def test_folder_we_may_not_search_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """EACCES on stat (pathlib's exists() raises it; root never sees it, so it is simulated)."""
    locked = tmp_path / "MNIST"
    real_exists = Path.exists

    def exists(self: Path) -> bool:
        if locked in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", exists)
    expect_error(tmp_path, "mnist: cannot access .*MNIST/raw/train-images-idx3-ubyte: Permission denied")


# --------------------------------------------------------------------------- download=True


def test_download_only_when_asked_and_files_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets as tvd

    calls: list[str] = []

    def fake_download(self: tvd.MNIST) -> None:  # what torchvision leaves: .gz and extracted files
        calls.append(self.raw_folder)
        write_mnist(Path(self.raw_folder))
        write_mnist(Path(self.raw_folder), gz=False)

    monkeypatch.setattr(tvd.MNIST, "download", fake_download)
    d = load_dataset("mnist", data_dir=tmp_path, download=True, val_size=0)
    assert len(d.train) == 30 and calls == [str(tmp_path / "MNIST" / "raw")]
    d = load_dataset("mnist", data_dir=tmp_path, download=True, val_size=0)  # present: no download
    assert calls == [str(tmp_path / "MNIST" / "raw")]
    # present but corrupt: refused, never re-downloaded over the user's file
    (tmp_path / "MNIST" / "raw" / FILES[1]).write_bytes(b"junk")
    with pytest.raises(DataUnavailableError, match="not an IDX label file"):
        load_dataset("mnist", data_dir=tmp_path, download=True)
    assert len(calls) == 1


def test_cli_truncated_gz_is_one_error_line_exit_2(tmp_path: Path, network_calls: list[str]):
    """Through the command line (DESIGN §5.4): ``Error: ...`` on one line, exit code 2."""
    from click.testing import CliRunner

    from robust_winn.cli.main import main

    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    gz = raw / f"{FILES[2]}.gz"
    gz.write_bytes(gz.read_bytes()[:50])
    r = CliRunner().invoke(
        main,
        ["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"],
    )
    assert r.exit_code == 2, r.output
    assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1
    assert str(gz) in r.output and "Traceback" not in r.output
    assert network_calls == []


def test_failed_download_is_one_line(tmp_path: Path, network_calls: list[str]):
    with pytest.raises(DataUnavailableError, match="mnist: download into .* failed") as info:
        load_dataset("mnist", data_dir=tmp_path, download=True)
    assert "\n" not in str(info.value) and network_calls == ["MNIST.download"]
