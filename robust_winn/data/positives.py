"""Positive images for unsupervised WINN (REFERENCE §3.1): uint8 tensors served in [-1, 1].

Sources (all return a :class:`PositiveSource` with ``draw(n, generator)``):

- ``texture``: random ``crop`` x ``crop`` crops of one image file (paper §5.2: 64x64 crops at
  random positions of a 256x256 texture). The paper does not say how many crops or whether they
  are pre-extracted; here every draw takes fresh uniform positions (an unbounded set).
- ``image-folder``: every .png/.jpg/.jpeg/.bmp file of a folder (the released code), read as
  RGB, resized to ``size`` x ``size`` if it differs.
- ``celeba``: ``torchvision.datasets.CelebA`` (train split, files under DIR/celeba), centre-cropped
  to 178x178 (the image width) and resized to ``size`` (paper §5.3 does not say; REFERENCE §6.4).
- ``mnist``, ``svhn``, ``cifar10``: the training images of :func:`robust_winn.data.datasets.load_dataset`,
  labels dropped (all of them: no validation split is held out).

A finite set is drawn without replacement while it is large enough, with replacement
otherwise (REFERENCE §3.6 step 1).

Every bad input (a missing, unreadable, corrupt or non-image file, an empty folder, an image
smaller than the crop, a bad size or limit) raises a :class:`~robust_winn.errors.UserError`
(``DataUnavailableError`` or ``BadValueError``) whose one-line message names the file; a plain
``ValueError`` / ``TypeError`` here means a programming error (DESIGN §5.4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import BadValueError, DataUnavailableError, UnknownNameError, one_line
from ..registry import Registry
from .datasets import load_dataset, to_model_range

log = logging.getLogger(__name__)

__all__ = [
    "UnsupDataset",
    "PositiveSource",
    "TextureCrops",
    "ImageTensorSource",
    "read_image",
    "list_positives",
    "load_positives",
    "IMAGE_SUFFIXES",
    "UnknownPositivesError",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class UnsupDataset(str, Enum):
    """Names accepted by :func:`load_positives` (the registered sources, as a closed set)."""

    TEXTURE = "texture"
    IMAGE_FOLDER = "image-folder"
    CELEBA = "celeba"
    MNIST = "mnist"
    SVHN = "svhn"
    CIFAR10 = "cifar10"


class PositiveSource:
    """Something positives are drawn from: ``draw(n, generator)`` -> (n, C, H, W) in [-1, 1]."""

    name: str
    image_shape: tuple[int, int, int]

    def draw(self, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` positives in [-1, 1] (float32, CPU)."""
        raise TypeError(f"{type(self).__name__} must implement draw()")

    def describe(self) -> dict[str, object]:
        """JSON-ready summary stored in the run's record."""
        return {"name": self.name, "image_shape": list(self.image_shape)}


class ImageTensorSource(PositiveSource):
    """A fixed set of uint8 images (N, C, H, W)."""

    def __init__(self, name: str, images: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
            raise ValueError("images must be a non-empty uint8 (N, C, H, W) tensor")
        self.name, self.images = name, images
        c, h, w = images.shape[1:]
        self.image_shape = (int(c), int(h), int(w))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def draw(self, n: int, *, generator: torch.Generator) -> Tensor:
        if n <= len(self):
            idx = torch.randperm(len(self), generator=generator)[:n]
        else:
            idx = torch.randint(len(self), (n,), generator=generator)
        return to_model_range(self.images[idx])

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "size": len(self)}


class TextureCrops(PositiveSource):
    """Random ``crop`` x ``crop`` crops of one uint8 image (C, H, W); fresh positions per draw."""

    def __init__(self, image: Tensor, *, crop: int = 64, name: str = "texture") -> None:
        if image.dtype != torch.uint8 or image.dim() != 3:
            raise ValueError("texture image must be a uint8 (C, H, W) tensor")
        _check_positive(crop, "crop size")
        c, h, w = image.shape
        if h < crop or w < crop:
            raise BadValueError(f"{name}: texture image is {h}x{w}, smaller than the {crop}x{crop} crop")
        self.name, self.image, self.crop = name, image, crop
        self.image_shape = (int(c), crop, crop)

    def draw(self, n: int, *, generator: torch.Generator) -> Tensor:
        _, h, w = self.image.shape
        ys = torch.randint(h - self.crop + 1, (n,), generator=generator)
        xs = torch.randint(w - self.crop + 1, (n,), generator=generator)
        ar = torch.arange(self.crop)
        rows, cols = (ys[:, None] + ar)[:, :, None], (xs[:, None] + ar)[:, None, :]  # (n, p, 1), (n, 1, p)
        crops = self.image[:, rows, cols].permute(1, 0, 2, 3)  # (n, C, p, p)
        return to_model_range(crops)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "texture_size": list(self.image.shape[1:]), "crop": self.crop}


def _exists(path: Path) -> bool:
    """``path.exists()``, but a folder we may not search (EACCES) is a one-line data error."""
    try:
        return path.exists()
    except OSError as exc:
        raise DataUnavailableError(f"cannot access {path}: {exc.strerror or exc}") from exc


def _check_positive(value: object, what: str) -> None:
    """``value`` must be a positive int (a size, crop or limit given by the user)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise BadValueError(f"{what} must be a positive integer, got {value!r}")


@contextmanager
def _reading_image(path: Path) -> Iterator[None]:
    """Turn whatever PIL raises on a bad file into one :class:`DataUnavailableError` line.

    PIL raises ``OSError`` (``UnidentifiedImageError``, truncated data, no permission), but also
    ``SyntaxError`` (broken PNG chunks), ``ValueError`` and ``DecompressionBombError`` (an
    ``Exception``) for damaged or hostile files.
    """
    from PIL import Image

    try:
        yield
    except IsADirectoryError as exc:
        raise DataUnavailableError(f"{path} is a directory, not an image file") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise DataUnavailableError(f"cannot read image {path}: {reason}") from exc


def read_image(
    path: str | Path, *, size: int | None = None, channels: int = 3, shorter_side: int | None = None
) -> Tensor:
    """Read an image file as uint8 (C, H, W), RGB (or L when ``channels=1``), resized if asked.

    ``size`` resizes to ``size`` x ``size`` (bicubic); ``shorter_side`` scales the image (Lanczos,
    aspect ratio kept) so that its shorter side is ``shorter_side``: the texture mode's
    ``--texture-size``.

    Raises:
        DataUnavailableError: the file is missing, not a regular file, unreadable or not an
            image PIL can decode (the message names it).
        BadValueError: ``size`` is not a positive integer.
    """
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if size is not None and shorter_side is not None:
        raise ValueError("give size or shorter_side, not both")
    if size is not None:
        _check_positive(size, "image size")
    if shorter_side is not None:
        _check_positive(shorter_side, "texture size")
    path = Path(path)
    if not _exists(path):
        raise DataUnavailableError(f"image file {path} does not exist")
    if not path.is_file():  # a folder, or a FIFO that open() would block on
        raise DataUnavailableError(f"{path} is not a regular file, not an image")
    with _reading_image(path), Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        elif shorter_side is not None and min(im.size) != shorter_side:
            k = shorter_side / min(im.size)
            im = im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.LANCZOS)
        arr = np.asarray(im, dtype=np.uint8)
    t = torch.from_numpy(arr.copy())
    return t.permute(2, 0, 1).contiguous() if t.dim() == 3 else t.unsqueeze(0)


def _folder(folder: Path, size: int, limit: int | None) -> ImageTensorSource:
    if not _exists(folder):
        raise DataUnavailableError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise DataUnavailableError(f"image folder {folder} is a file, not a folder")
    try:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise DataUnavailableError(f"cannot list image folder {folder}: {exc.strerror or exc}") from exc
    if not files:
        raise DataUnavailableError(
            f"no {'/'.join(IMAGE_SUFFIXES)} files in {folder} (subfolders included); "
            f"put the positive images there"
        )
    files = files[:limit] if limit else files
    images = torch.stack([read_image(p, size=size) for p in files])
    log.info("image-folder: %d images of %dx%d from %s", len(files), size, size, folder)
    return ImageTensorSource("image-folder", images)


def _celeba_problem(folder: Path) -> str:
    """Why torchvision refused ``folder`` (``DIR/celeba``): the first missing or altered file."""
    import torchvision.datasets as tvd
    import torchvision.datasets.celeba as tv_celeba

    for _, md5, filename in tvd.CelebA.file_list:
        path = folder / filename
        if path.suffix in (".zip", ".7z"):  # torchvision allows the archives to be deleted
            continue
        if not _exists(path):
            return f"{path} is missing"
        try:
            ok = tv_celeba.check_integrity(str(path), md5)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
        if not ok:
            return f"{path} is not the official file (md5 differs: truncated or altered)"
    images = folder / "img_align_celeba"
    if not _exists(images) or not images.is_dir():
        return f"{images} is not a folder of images"
    return ""


def _celeba(root: Path, size: int, download: bool, limit: int | None) -> ImageTensorSource:
    import torchvision.datasets as tvd

    folder = root / "celeba"
    try:
        ds = tvd.CelebA(str(root), split="train", target_type=[], download=download)
    except (RuntimeError, OSError, ValueError) as exc:
        if download:
            raise DataUnavailableError(f"celeba: download into {folder} failed: {one_line(exc)}") from exc
        problem = _celeba_problem(folder) or one_line(exc)
        raise DataUnavailableError(
            f"celeba: {problem}; expected torchvision's layout under {folder} (img_align_celeba/ and the "
            f"five official list_*.txt / identity_CelebA.txt files), or pass --download"
        ) from exc
    n = min(len(ds), limit) if limit else len(ds)
    if n == 0:
        partition = folder / "list_eval_partition.txt"
        raise DataUnavailableError(f"celeba: no training images listed in {partition}")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        path = folder / "img_align_celeba" / ds.filename[i]
        with _reading_image(path):
            pil = ds[i][0].convert("RGB")
        img = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy())  # (218, 178, 3)
        img = img.permute(2, 0, 1).float()[None]  # (1, 3, H, W)
        h, w = img.shape[2:]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        img = F.interpolate(
            img[:, :, top : top + s, left : left + s],
            size=(size, size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        out[i] = img[0].round().clamp(0, 255).to(torch.uint8)
    return ImageTensorSource("celeba", out)


class UnknownPositivesError(UnknownNameError, BadValueError):
    """An unsupervised dataset name that is not registered (also a ``BadValueError``, as before)."""


@dataclass(frozen=True)
class _Request:
    """The arguments of :func:`load_positives`, checked; each source reads the ones it needs."""

    image: str | Path | None
    folder: str | Path | None
    data_dir: Path
    size: int
    download: bool
    limit: int | None
    texture_size: int | None


_POSITIVES: Registry[Callable[[_Request], PositiveSource]] = Registry(
    "unsupervised dataset", error=UnknownPositivesError
)


@_POSITIVES.register(
    UnsupDataset.TEXTURE.value, description="random crops of one texture image, --image FILE (paper §5.2)"
)
def _texture(req: _Request) -> PositiveSource:
    """Fresh random ``size`` x ``size`` crops of the image file ``req.image``, scaled first so its
    shorter side is ``req.texture_size`` if given (paper §5.2: 64x64 crops of a 256x256 texture)."""
    if req.image is None:
        raise BadValueError("dataset 'texture' needs an image file (--image FILE)")
    texture = read_image(req.image, shorter_side=req.texture_size)
    h, w = texture.shape[1:]
    if h < req.size or w < req.size:
        raise BadValueError(
            f"texture image {req.image} is {h}x{w}{' after --texture-size' if req.texture_size else ''}, "
            f"smaller than the {req.size}x{req.size} crop; use a larger image or a smaller --image-size"
        )
    return TextureCrops(texture, crop=req.size, name=f"texture:{Path(req.image).name}")


@_POSITIVES.register(
    UnsupDataset.IMAGE_FOLDER.value,
    description="every .png/.jpg/.jpeg/.bmp image of a folder, --folder DIR (released code)",
)
def _image_folder(req: _Request) -> PositiveSource:
    """The images of ``req.folder`` (subfolders included), resized to ``size``."""
    if req.folder is None:
        raise BadValueError("dataset 'image-folder' needs a folder (--folder DIR)")
    return _folder(Path(req.folder), req.size, req.limit)


@_POSITIVES.register(
    UnsupDataset.CELEBA.value,
    description="CelebA train split under DIR/celeba, centre crop + resize (paper §5.3)",
)
def _celeba_source(req: _Request) -> PositiveSource:
    """CelebA's training images, centre-cropped to 178x178 and resized to ``size``."""
    return _celeba(req.data_dir, req.size, req.download, req.limit)


def _dataset_images(name: str) -> Callable[[_Request], PositiveSource]:
    """Source of the training images of a supervised dataset, labels dropped, no validation split."""

    def load(req: _Request) -> PositiveSource:
        splits = load_dataset(
            name, data_dir=req.data_dir, download=req.download, val_size=0, limit_train=req.limit
        )
        return ImageTensorSource(name, splits.train.images)

    return load


for _kind in (UnsupDataset.MNIST, UnsupDataset.SVHN, UnsupDataset.CIFAR10):
    _POSITIVES.add(
        _kind.value, _dataset_images(_kind.value), f"the {_kind.value} training images, labels dropped"
    )


def list_positives() -> dict[str, str]:
    """Registered unsupervised dataset names -> one-line description."""
    return _POSITIVES.describe()


def load_positives(
    name: UnsupDataset | str,
    *,
    image: str | Path | None = None,
    folder: str | Path | None = None,
    data_dir: str | Path = "data",
    size: int = 64,
    download: bool = False,
    limit: int | None = None,
    texture_size: int | None = None,
) -> PositiveSource:
    """Build the positive source of an unsupervised run.

    Args:
        name: one of :class:`UnsupDataset`.
        image: texture image file (``texture``).
        folder: image folder (``image-folder``).
        data_dir: torchvision root (``celeba``, ``mnist``, ``svhn``, ``cifar10``).
        size: crop side (``texture``) or image side (``image-folder``, ``celeba``).
        download: let torchvision download (needs network).
        limit: keep the first N images of a finite set.
        texture_size: scale the texture image so its shorter side is this (``texture``; None:
            the file's size).

    Raises:
        UnknownPositivesError: unknown name (a ``BadValueError`` and a ``KeyError``; the message
            lists the choices).
        BadValueError: a missing ``image`` / ``folder`` argument, a size or limit that is not a
            positive integer, or a texture smaller than the crop (a ``ValueError``).
        DataUnavailableError: files missing, unreadable or corrupt, or an empty folder; the
            one-line message names the file and says what to do.
    """
    source = _POSITIVES[name.value if isinstance(name, UnsupDataset) else name]
    _check_positive(size, "image size")
    if limit is not None:
        _check_positive(limit, "limit")
    if texture_size is not None:
        _check_positive(texture_size, "texture size")
    return source(_Request(image, folder, Path(data_dir), size, download, limit, texture_size))
