"""Out-of-distribution image sets that need no model: synthetic sets, image folders, ``.npz`` files.

Issue 14 §1. Every set comes back as uint8 images (N, C, H, W) in the model's geometry, the form
:class:`~robust_winn.data.datasets.ImageSet` keeps, so it is served in [-1, 1] exactly as the
in-distribution test images are (REFERENCE §1.1: ``x / 255 * 2 - 1``).

- Synthetic sets (:func:`list_synthetic_sets`) are built from the in-distribution test images
  (their count and geometry; two of them from their pixels), seeded, so every model is scored
  on the very same images.
- ``folder:PATH``: every image file under PATH (sub-folders included, hidden files skipped),
  read with PIL, converted to grayscale or RGB and resized (bilinear) to the model's input.
- ``npz:PATH``: one array of images in a ``.npz`` file (the array ``images`` or the file's only
  array), uint8 0..255 or float in [0, 1], laid out (N, H, W), NHWC or NCHW; float images are
  rounded to 8 bits.

Anything that cannot give such images (a missing or empty folder, a file PIL cannot read, a
channel count that cannot be converted, sizes that differ when resizing is off) is one
:class:`~robust_winn.errors.UserError` naming the file and the fix.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..errors import BadValueError, DataUnavailableError
from ..registry import Registry

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "conform_images",
    "list_synthetic_sets",
    "load_image_folder",
    "load_npz_images",
    "synthetic_set",
]

Synthesizer = Callable[[Tensor, torch.Generator], Tensor]  # (reference uint8 (N,C,H,W), gen) -> uint8

_SYNTHETIC: Registry[Synthesizer] = Registry("OOD set")

GAUSSIAN_MEAN, GAUSSIAN_STD = 0.5, 0.5  # in [0, 1] pixel units, clipped to [0, 1]
_FILE_CHANNELS = {1: "L", 3: "RGB"}  # model channels -> the PIL mode images are converted to
_ARRAY_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels of an array image -> its PIL mode
_MAX_CHANNELS = 4  # an image axis this short is the channel axis (npz layout detection)


def _quantise(x: Tensor) -> Tensor:
    """[0, 1] floats -> uint8 0..255 (rounded)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@_SYNTHETIC.register("uniform-noise")
def _uniform(ref: Tensor, gen: torch.Generator) -> Tensor:
    """i.i.d. uniform pixels in 0..255 (U[0, 1] in 8 bits)."""
    return torch.randint(0, 256, ref.shape, generator=gen, dtype=torch.uint8)


@_SYNTHETIC.register(
    "gaussian-noise",
    description=f"i.i.d. N({GAUSSIAN_MEAN}, {GAUSSIAN_STD}^2) pixels in [0, 1] units, clipped",
)
def _gaussian(ref: Tensor, gen: torch.Generator) -> Tensor:
    return _quantise(GAUSSIAN_MEAN + GAUSSIAN_STD * torch.randn(ref.shape, generator=gen))


@_SYNTHETIC.register("constant")
def _constant(ref: Tensor, gen: torch.Generator) -> Tensor:
    """Constant images: one uniform value in 0..255 per image and channel."""
    n, c, h, w = ref.shape
    return torch.randint(0, 256, (n, c, 1, 1), generator=gen, dtype=torch.uint8).expand(n, c, h, w).clone()


@_SYNTHETIC.register("permuted")
def _permuted(ref: Tensor, gen: torch.Generator) -> Tensor:
    """In-distribution test images, each with its pixel positions shuffled by its own permutation."""
    n, c, h, w = ref.shape
    order = torch.rand(n, h * w, generator=gen).argsort(dim=1)  # (N, H*W) one permutation per image
    flat = ref.reshape(n, c, h * w)
    return flat.gather(2, order.unsqueeze(1).expand(n, c, h * w)).reshape(n, c, h, w)


@_SYNTHETIC.register("inverted")
def _inverted(ref: Tensor, gen: torch.Generator) -> Tensor:
    """In-distribution test images with inverted intensities (255 - x)."""
    return 255 - ref


def list_synthetic_sets() -> dict[str, str]:
    """Built-in synthetic OOD set names -> one-line description."""
    return _SYNTHETIC.describe()


def synthetic_set(name: str, reference: Tensor, *, seed: int = 0) -> Tensor:
    """A seeded synthetic OOD set shaped like ``reference`` (issue 14 §1).

    Args:
        name: one of :func:`list_synthetic_sets`.
        reference: the in-distribution test images, uint8 (N, C, H, W).
        seed: seeds the set; the same seed gives the same images.

    Returns:
        uint8 (N, C, H, W).

    Raises:
        UnknownNameError: an unknown name (the message lists the choices).
    """
    make = _SYNTHETIC[name]
    if reference.dtype != torch.uint8 or reference.dim() != 4:
        raise ValueError("reference must be uint8 images (N, C, H, W)")
    return make(reference, torch.Generator().manual_seed(seed))


def _to_pil_mode(mode: str, shape: tuple[int, int, int], where: str) -> str:
    """The PIL mode images are converted to for a model taking ``shape`` = (C, H, W)."""
    c = shape[0]
    if c not in _FILE_CHANNELS:
        raise BadValueError(
            f"{where}: the model takes {c}-channel images, but image files and arrays can only be "
            f"converted to 1 (grayscale) or 3 (RGB) channels; give the images as a registered dataset"
        )
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        raise BadValueError(
            f"{where}: 16-bit or floating-point image (PIL mode {mode}); save it with 8 bits per channel"
        )
    return _FILE_CHANNELS[c]


def _conform_pil(img: PILImage, shape: tuple[int, int, int], *, resize: bool, where: str) -> np.ndarray:
    """One PIL image -> uint8 (C, H, W) of ``shape``: converted to grayscale/RGB, resized if allowed."""
    from PIL import Image

    c, h, w = shape
    img = img.convert(_to_pil_mode(img.mode, shape, where))
    if img.size != (w, h):
        if not resize:
            raise BadValueError(
                f"{where}: image is {img.width}x{img.height} but the model takes {w}x{h}; allow "
                f"resizing (drop --no-resize) or give images of that size"
            )
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, 3)
    return arr[None] if c == 1 else arr.transpose(2, 0, 1)


def conform_images(
    images: np.ndarray | Tensor, shape: tuple[int, int, int], *, resize: bool = True, where: str = "images"
) -> Tensor:
    """uint8 images (N, C', H', W') -> uint8 (N, C, H, W) of the model's ``shape``.

    Channels: 1 -> 3 repeats the gray value, 3 -> 1 takes PIL's luminance (ITU-R 601-2), RGBA
    drops alpha; sizes are resized bilinearly with PIL (when ``resize``).

    Raises:
        BadValueError: a channel count that cannot be converted, or another size with
            ``resize=False``; ``where`` names the source in the message.
    """
    arr = images.numpy() if isinstance(images, Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError("conform_images takes uint8 images (N, C, H, W)")
    c_in = arr.shape[1]
    if tuple(arr.shape[1:]) == tuple(shape):
        return torch.from_numpy(np.ascontiguousarray(arr))
    if c_in not in _ARRAY_MODES:
        raise BadValueError(
            f"{where}: images with {c_in} channels cannot be converted to the model's {shape[0]}; "
            f"give grayscale (1), RGB (3) or RGBA (4) images"
        )
    from PIL import Image

    out = np.empty((arr.shape[0], *shape), dtype=np.uint8)
    for i, img in enumerate(arr):
        pil = Image.fromarray(img[0] if c_in == 1 else img.transpose(1, 2, 0), _ARRAY_MODES[c_in])
        out[i] = _conform_pil(pil, shape, resize=resize, where=where)
    return torch.from_numpy(out)


def _image_files(root: Path, where: str) -> list[Path]:
    if not root.exists():
        raise DataUnavailableError(f"{where}: {root} does not exist")
    if not root.is_dir():
        raise BadValueError(f"{where}: {root} is a file, not a folder of images (for arrays use npz:PATH)")
    try:
        found = (p for p in root.rglob("*") if p.is_file())
        files = sorted(p for p in found if not any(s.startswith(".") for s in p.relative_to(root).parts))
    except OSError as exc:
        raise DataUnavailableError(f"{where}: cannot read {root}: {exc.strerror or exc}") from exc
    if not files:
        raise BadValueError(f"{where}: {root} holds no image files")
    return files


def load_image_folder(
    root: str | Path, shape: tuple[int, int, int], *, resize: bool = True, limit: int | None = None
) -> Tensor:
    """Every image file under ``root`` (sorted, sub-folders included, hidden files skipped).

    Args:
        root: the folder.
        shape: the model's (C, H, W); images are converted (grayscale/RGB) and resized to it.
        resize: resize images of another size (bilinear); without it such an image is an error.
        limit: keep the first N files only.

    Returns:
        uint8 (N, C, H, W).

    Raises:
        DataUnavailableError: the folder is missing or unreadable.
        BadValueError: no files, a file that is not an image PIL reads, 16-bit images, a model
            channel count other than 1 or 3, or a size mismatch with ``resize=False``.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root).expanduser()
    where = f"folder:{root}"
    files = _image_files(root, where)[:limit]
    out = np.empty((len(files), *shape), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img.load()
                out[i] = _conform_pil(img, shape, resize=resize, where=f"{where}: {path.name}")
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:  # PIL: not an image, truncated
            raise BadValueError(
                f"{where}: {path.relative_to(root)} is not an image file PIL can read "
                f"({type(exc).__name__}); keep only images in the folder"
            ) from exc
    return torch.from_numpy(out)


def _npz_array(path: Path, where: str) -> np.ndarray:
    if not path.is_file():
        raise DataUnavailableError(f"{where}: {path} does not exist or is not a file")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise BadValueError(f"{where}: {path} is a .npy array, not a .npz archive; save it with np.savez")
        with z:
            keys = list(z.keys())
            key = "images" if "images" in keys else keys[0] if len(keys) == 1 else None
            if key is None:
                raise BadValueError(
                    f"{where}: {path} holds {len(keys)} arrays ({', '.join(keys[:5]) or 'none'}); "
                    f"name the images 'images' (np.savez(path, images=x))"
                )
            return z[key]
    except BadValueError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        kind = type(exc).__name__
        raise DataUnavailableError(f"{where}: cannot read {path} as a .npz file ({kind})") from exc


def _layout(arr: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), NHWC or NCHW -> NCHW; the channel axis is the one of 1 to 4 entries (1 or 3)."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise BadValueError(
            f"{where}: an array of shape {arr.shape} is not images; give (N, H, W), NHWC or NCHW"
        )
    first, last = arr.shape[1] <= _MAX_CHANNELS, arr.shape[3] <= _MAX_CHANNELS
    if first and not last:
        return arr
    if last and not first:
        return arr.transpose(0, 3, 1, 2)
    raise BadValueError(
        f"{where}: cannot tell whether shape {arr.shape} is NHWC or NCHW; exactly one of axes 1 and 3 "
        f"must be the channels (at most {_MAX_CHANNELS})"
    )


def _to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 as is; floats in [0, 1] and integers in 0..255 converted; anything else refused."""
    if arr.dtype == np.uint8:
        return arr
    if arr.size == 0:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise BadValueError(f"{where}: the images hold NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise BadValueError(
                f"{where}: float images must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; give uint8 "
                f"0..255 or float [0, 1]"
            )
        return np.rint(arr * 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise BadValueError(f"{where}: integer images must lie in 0..255, got {lo}..{hi}")
        return arr.astype(np.uint8)
    raise BadValueError(f"{where}: images of dtype {arr.dtype}; give uint8 0..255 or float [0, 1]")


def load_npz_images(
    path: str | Path, shape: tuple[int, int, int], *, resize: bool = True, limit: int | None = None
) -> Tensor:
    """The images of a ``.npz`` file (array ``images``, or the only array) in the model's ``shape``.

    Args:
        path: the ``.npz`` file (read with ``allow_pickle=False``: it cannot run code).
        shape: the model's (C, H, W).
        resize: resize images of another size (bilinear); without it that is an error.
        limit: keep the first N images only.

    Returns:
        uint8 (N, C, H, W).

    Raises:
        DataUnavailableError: a missing or unreadable file.
        BadValueError: no images, not an image array, values out of range, a channel count that
            cannot be converted, or a size mismatch with ``resize=False``.
    """
    path = Path(path).expanduser()
    where = f"npz:{path}"
    arr = _layout(_npz_array(path, where), where)[:limit]
    if arr.shape[0] == 0:
        raise BadValueError(f"{where}: the array holds no images")
    return conform_images(_to_uint8(arr, where), shape, resize=resize, where=where)
