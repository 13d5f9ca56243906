"""Dataset registry: every dataset becomes uint8 tensors plus labels, served in [-1, 1].

Paper §5.6 / REFERENCE §1.1: images are mapped with ``x / 255 * 2 - 1`` to [-1, 1]; MNIST uses
the first 45,000 training images for training and the last 15,000 for validation (no shuffle
before the split), no augmentation. The on-disk formats are torchvision's: MNIST-like IDX files are
read here, in memory, from ``DIR/MNIST/raw`` (gzip-compressed or not, content validated, no md5 of
the gzip bytes, so recompressed copies such as Debian's are accepted); SVHN and CIFAR-10 go through
torchvision's own classes. Nothing here touches the network unless ``download=True``, and every
missing, unreadable or corrupt file is one :class:`DataUnavailableError` naming it.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import BadValueError, DataUnavailableError, one_line
from ..registry import Registry

log = logging.getLogger(__name__)

__all__ = [
    "DataUnavailableError",
    "ImageSet",
    "DataSplits",
    "load_dataset",
    "list_datasets",
    "register_dataset",
    "to_unit_range",
    "to_model_range",
]


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range every robust_winn model sees (REFERENCE §1.1)."""
    return x_uint8.float().div_(127.5).sub_(1.0)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], the range attacks see (DESIGN §2)."""
    return (x + 1.0) / 2.0


@dataclass
class ImageSet:
    """Images kept as uint8 (N, C, H, W) to bound memory; labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("ImageSet.images must be a uint8 tensor of shape (N, C, H, W)")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("ImageSet.labels must have shape (N,)")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        """A view of some rows (no copy for slices)."""
        return ImageSet(self.images[index], self.labels[index])

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images in [-1, 1] float32, labels) batches; reshuffled per call if asked."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield to_model_range(self.images[idx]), self.labels[idx]


@dataclass
class DataSplits:
    """Train / validation / test splits of one dataset plus its metadata."""

    name: str
    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)


# --------------------------------------------------------------------------- raw loaders


def _exists(path: Path, name: str) -> bool:
    """``path.exists()``, but a folder we may not search (EACCES) is a one-line data error."""
    try:
        return path.exists()
    except OSError as exc:
        raise DataUnavailableError(f"{name}: cannot access {path}: {exc.strerror or exc}") from exc


def _require(path: Path, what: str, name: str) -> None:
    if not _exists(path, name):
        raise DataUnavailableError(
            f"{name}: {what} not found (looked for {path}). Put the files there "
            f"(torchvision layout) with --data-dir, or pass --download on a machine "
            f"with network access."
        )


def _from_numpy(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    imgs = torch.from_numpy(np.ascontiguousarray(images))
    if imgs.dim() == 3:
        imgs = imgs.unsqueeze(1)
    return ImageSet(imgs.to(torch.uint8), torch.from_numpy(np.asarray(labels)).long())


_Loader = Callable[[Path, bool], tuple[ImageSet, ImageSet]]


# MNIST-like IDX files (LeCun's format; the same for MNIST and Fashion-MNIST). They are read here,
# in memory, rather than through torchvision: torchvision verifies the md5 of the *gzip* bytes and,
# asked to extract them, silently downloads again whenever that md5 differs (a truncated archive,
# or the same content recompressed, e.g. Debian's dataset-fashion-mnist). Here the IDX *content*
# is validated instead and nothing touches the network unless ``download=True``.

_IDX_SPLITS = ("train", "t10k")  # training file prefix, test file prefix (LeCun's names)
_IDX_IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
_IDX_LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
_IDX_SIDE = 28
_IDX_CHUNK = 1 << 20
_DEBIAN_DATASETS = Path("/usr/share/datasets")


def _idx_names(split: str) -> tuple[str, str]:
    """The uncompressed file names of one split's images and labels."""
    return f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"


_IDX_FILES = tuple(f for split in _IDX_SPLITS for f in _idx_names(split))


def _idx_path(folder: Path, base: str, name: str) -> Path | None:
    """``folder/base`` (uncompressed, preferred as torchvision did) or ``folder/base.gz``."""
    for path in (folder / base, folder / f"{base}.gz"):
        if _exists(path, name):
            return path
    return None


def _idx_paths(folder: Path, name: str) -> dict[str, Path] | None:
    """The four IDX files of ``folder`` by uncompressed name, or None when one is missing."""
    paths = {base: _idx_path(folder, base, name) for base in _IDX_FILES}
    return None if None in paths.values() else paths  # type: ignore[return-value]


def _read_upto(fh: BinaryIO, n: int) -> bytearray:
    """Up to ``n`` bytes (fewer only at end of file), read in chunks so that a bogus header
    declaring terabytes fails as "truncated" instead of allocating them up front."""
    buf = bytearray()
    while len(buf) < n:
        chunk = fh.read(min(_IDX_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _read_idx(path: Path, magic: int, name: str) -> np.ndarray:
    """One IDX file (gzip-compressed when its name ends in ``.gz``) as a uint8 array.

    Validated: the magic number (``0x00000803`` images, ``0x00000801`` labels), 28x28 images,
    and the length, which must equal the size the header declares.

    Raises:
        DataUnavailableError: unreadable, not gzip, not this kind of IDX file, or truncated.
    """
    kind = "image" if magic == _IDX_IMAGE_MAGIC else "label"
    ndim = magic & 0xFF
    what_to_do = "replace it with the original file (or delete it and pass --download)"
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            head = fh.read(4 + 4 * ndim)
            found = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
            if found != magic:
                shown = "file shorter than 4 bytes" if found is None else f"magic 0x{found:08x}"
                raise DataUnavailableError(
                    f"{name}: {path}: not an IDX {kind} file ({shown}, expected 0x{magic:08x}); {what_to_do}"
                )
            if len(head) < 4 + 4 * ndim:
                raise DataUnavailableError(
                    f"{name}: {path}: truncated IDX header ({len(head)} bytes); {what_to_do}"
                )
            dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            if ndim == 3 and dims[1:] != [_IDX_SIDE, _IDX_SIDE]:
                raise DataUnavailableError(
                    f"{name}: {path}: images are {dims[1]}x{dims[2]}, expected "
                    f"{_IDX_SIDE}x{_IDX_SIDE}; {what_to_do}"
                )
            want = int(np.prod(dims, dtype=np.int64))
            payload = _read_upto(fh, want + 1)  # one byte more: trailing data is an error too
    except DataUnavailableError:
        raise
    except IsADirectoryError as exc:
        raise DataUnavailableError(f"{name}: {path} is a directory, not an IDX file") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataUnavailableError(
            f"{name}: {path}: not a valid, complete gzip file ({one_line(exc)}); {what_to_do}"
        ) from exc
    except OSError as exc:
        raise DataUnavailableError(f"{name}: cannot read {path}: {exc.strerror or exc}") from exc
    header = 4 + 4 * ndim
    if len(payload) != want:
        state = "truncated" if len(payload) < want else "longer than declared"
        size = f"{header + len(payload)}{'+' if len(payload) > want else ''}"
        raise DataUnavailableError(
            f"{name}: {path}: {state}: {size} bytes (uncompressed), header says {header + want}; {what_to_do}"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _read_idx_split(paths: dict[str, Path], split: str, name: str) -> ImageSet:
    """Images and labels of one split (``train`` or ``t10k``), checked against each other."""
    img_path, lab_path = (paths[base] for base in _idx_names(split))
    images = _read_idx(img_path, _IDX_IMAGE_MAGIC, name)
    labels = _read_idx(lab_path, _IDX_LABEL_MAGIC, name)
    if len(images) != len(labels):
        raise DataUnavailableError(
            f"{name}: {len(images)} images in {img_path} but {len(labels)} labels in {lab_path}; "
            f"the two files must come from the same release"
        )
    if len(labels) == 0:
        raise DataUnavailableError(f"{name}: {img_path} holds no images (the header says 0)")
    if int(labels.max()) > 9:
        raise DataUnavailableError(
            f"{name}: {lab_path}: label {int(labels.max())} outside 0..9; not an MNIST-like label file"
        )
    return ImageSet(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long())


def _idx_folders(root: Path, folder: str, debian: str | None) -> list[Path]:
    """Where the four IDX files may lie, in order of preference.

    torchvision's layout ``DIR/<folder>/raw`` first; for datasets Debian packages, also its
    layout: ``DIR`` itself when DIR is that package's folder (``/usr/share/datasets/fashion-mnist``)
    and ``DIR/<debian>`` (``--data-dir /usr/share/datasets``). A flat folder is only accepted under
    the dataset's own name, so MNIST and Fashion-MNIST (same file names) are never mixed up.
    """
    out = [root / folder / "raw"]
    if debian is not None:
        out += [root] if root.name == debian else []
        out.append(root / debian)
    return out


def _mnist_like(cls_name: str, folder: str, name: str, debian: str | None = None) -> _Loader:
    """Loader of an MNIST-like dataset: the four IDX files, gzip-compressed or not.

    Paper §5.6 / REFERENCE §1.1: the 60,000 training images in file order (the train/validation
    split is made by :func:`load_dataset`), then the 10,000 test images. The tensors are the ones
    ``torchvision.datasets.<cls_name>`` gives for the same files (tested bit for bit); torchvision
    is only used to download, and only with ``download=True`` when files are missing.
    """

    def load(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
        candidates = _idx_folders(root, folder, debian)
        found = next((p for p in (_idx_paths(d, name) for d in candidates) if p is not None), None)
        if found is None and download:
            _download_torchvision(cls_name, root, name)
            found = _idx_paths(candidates[0], name)
        if found is None:
            raw = candidates[0]
            missing = ", ".join(f"{f}[.gz]" for f in _IDX_FILES if _idx_path(raw, f, name) is None)
            hint = ""
            if debian is not None:
                hint = (
                    f" Debian's dataset-{debian} package installs them in {_DEBIAN_DATASETS / debian}: "
                    f"--data-dir {_DEBIAN_DATASETS / debian} works too."
                )
            raise DataUnavailableError(
                f"{name}: the four IDX files are not in {raw} (missing: {missing}). Put them there "
                f"(.gz or uncompressed; that is --data-dir {root}), or pass --download on a machine "
                f"with network access.{hint}"
            )
        train, test = (_read_idx_split(found, split, name) for split in _IDX_SPLITS)
        log.info("%s: IDX files read from %s", name, next(iter(found.values())).parent)
        return train, test

    return load


def _download_torchvision(cls_name: str, root: Path, name: str) -> None:
    """Let torchvision fetch an MNIST-like dataset into ``root/<cls_name>/raw`` (network)."""
    import torchvision.datasets as tvd

    try:
        getattr(tvd, cls_name)(str(root), train=True, download=True)
    except (RuntimeError, OSError) as exc:
        raise DataUnavailableError(f"{name}: download into {root} failed: {one_line(exc)}") from exc


def _check_official_files(name: str, files: list[tuple[Path, str]], download: bool) -> None:
    """Say which official file is missing (without ``download``) or unreadable, as one line.

    The md5 is not computed here: torchvision computes it once on the happy path, and
    :func:`_diagnose_official_files` names the altered file after torchvision refused it.
    """
    for path, _ in files:
        if not _exists(path, name):
            if download:
                continue
            _require(path, path.name, name)
        if not path.is_file():
            raise DataUnavailableError(f"{name}: {path} is not a regular file (a directory?)")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise DataUnavailableError(f"{name}: cannot read {path}: {exc.strerror or exc}") from exc


def _diagnose_official_files(
    name: str, files: list[tuple[Path, str]], check: Callable[[str, str], bool], exc: BaseException
) -> DataUnavailableError:
    """The error to raise after torchvision refused or failed to parse the official files.

    ``check`` is torchvision's ``check_integrity(path, md5)`` (looked up in the dataset's module).
    """
    for path, md5 in files:
        if not _exists(path, name):  # only with download=True (checked before otherwise): it failed
            return DataUnavailableError(f"{name}: download into {path.parent} failed: {one_line(exc)}")
        try:
            ok = check(str(path), md5)
        except OSError:
            ok = False
        if not ok:
            return DataUnavailableError(
                f"{name}: {path} is not the official file (md5 differs: truncated or altered); "
                f"replace it with the original (or delete it and pass --download)"
            )
    return DataUnavailableError(f"{name}: cannot load {files[0][0].parent}: {one_line(exc)}")


# What torchvision's SVHN / CIFAR-10 constructors raise on files they cannot use: md5 mismatch or
# missing (RuntimeError), unreadable (OSError), and, should a file with the right md5 still not
# parse, scipy's or pickle's errors. Nothing else is caught: anything else is a bug.
_TORCHVISION_FILE_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError,
    OSError,
    ValueError,
    EOFError,
    pickle.UnpicklingError,
)


def _load_svhn(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    import scipy.io.matlab
    import torchvision.datasets as tvd
    import torchvision.datasets.svhn as tv_svhn

    folder = root / "svhn"
    files = [(folder / tvd.SVHN.split_list[s][1], tvd.SVHN.split_list[s][2]) for s in ("train", "test")]
    _check_official_files("svhn", files, download)
    try:
        train = tvd.SVHN(str(folder), split="train", download=download)
        test = tvd.SVHN(str(folder), split="test", download=download)
    except (*_TORCHVISION_FILE_ERRORS, scipy.io.matlab.MatReadError) as exc:
        raise _diagnose_official_files("svhn", files, tv_svhn.check_integrity, exc) from exc
    # torchvision maps the .mat label 10 to 0 already; data is (N, 3, 32, 32) uint8.
    return _from_numpy(train.data, train.labels), _from_numpy(test.data, test.labels)


def _load_cifar10(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    import torchvision.datasets as tvd
    import torchvision.datasets.cifar as tv_cifar

    cls = tvd.CIFAR10
    folder = root / cls.base_folder
    files = [(folder / f, md5) for f, md5 in cls.train_list + cls.test_list]
    files.append((folder / cls.meta["filename"], cls.meta["md5"]))
    _check_official_files("cifar10", files, download)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except _TORCHVISION_FILE_ERRORS as exc:
        raise _diagnose_official_files("cifar10", files, tv_cifar.check_integrity, exc) from exc

    def conv(ds: object) -> ImageSet:
        data = np.asarray(ds.data).transpose(0, 3, 1, 2)  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        return _from_numpy(data, np.asarray(ds.targets))

    return conv(train), conv(test)


SAMPLE_FILE = "mnist_sample.npz"


def _load_sample(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """The small real MNIST sample bundled in the package (offline quickstart)."""
    del root, download
    with resources.files("robust_winn.assets").joinpath(SAMPLE_FILE).open("rb") as fh:
        z = np.load(fh)
        train = _from_numpy(z["train_images"], z["train_labels"])
        test = _from_numpy(z["test_images"], z["test_labels"])
    return train, test


@dataclass(frozen=True)
class _Entry:
    loader: _Loader
    num_classes: int
    default_val: int


_DATASETS: Registry[_Entry] = Registry("dataset")


def register_dataset(
    name: str, *, num_classes: int, default_val: int, description: str
) -> Callable[[_Loader], _Loader]:
    """Decorator registering ``loader(root, download) -> (train, test)`` :class:`ImageSet` pairs.

    Args:
        name: the ``--dataset`` name.
        num_classes: K, the number of labels.
        default_val: how many of the last training images form the validation split by default.
        description: one line for ``robust-winn list``.
    """

    def deco(loader: _Loader) -> _Loader:
        _DATASETS.add(name, _Entry(loader, num_classes, default_val), description)
        return loader

    return deco


register_dataset(
    "mnist",
    num_classes=10,
    default_val=15_000,
    description="MNIST 28x28x1, 60k/10k; default split 45k train / last 15k validation (REFERENCE §1.1)",
)(_mnist_like("MNIST", "MNIST", "mnist"))
register_dataset(
    "fashion-mnist",
    num_classes=10,
    default_val=15_000,
    description="Fashion-MNIST 28x28x1, 60k/10k, split as MNIST",
)(_mnist_like("FashionMNIST", "FashionMNIST", "fashion-mnist", debian="fashion-mnist"))
register_dataset(
    "svhn",
    num_classes=10,
    default_val=0,
    description="SVHN 32x32x3, train_32x32.mat / test_32x32.mat under DIR/svhn (paper: train set only)",
)(_load_svhn)
register_dataset(
    "cifar10",
    num_classes=10,
    default_val=5_000,
    description="CIFAR-10 32x32x3, python pickled batches under DIR/cifar-10-batches-py",
)(_load_cifar10)
register_dataset(
    "sample",
    num_classes=10,
    default_val=500,
    description="bundled real MNIST sample (3,000 train / 1,000 test), offline, for the quickstart",
)(_load_sample)


def list_datasets() -> dict[str, str]:
    """Registered supervised dataset names -> one-line description."""
    return _DATASETS.describe()


def load_dataset(
    name: str,
    *,
    data_dir: str | Path = "data",
    download: bool = False,
    val_size: int | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> DataSplits:
    """Load a registered dataset as uint8 tensors with a train/validation/test split.

    Args:
        name: one of :func:`list_datasets`.
        data_dir: root holding the torchvision layout (e.g. ``DIR/MNIST/raw/*.gz``; the IDX files
            may also be uncompressed); for Fashion-MNIST also Debian's ``/usr/share/datasets``
            or ``/usr/share/datasets/fashion-mnist``.
        download: let torchvision fetch *missing* files (needs network); without it nothing
            touches the network.
        val_size: how many of the *last* training images form the validation split
            (REFERENCE §1.1: 15,000 for MNIST); ``0`` disables validation.
        limit_train: keep only the first N training images (after the split), for quick runs.
        limit_test: keep only the first N test images.

    Raises:
        UnknownNameError: unknown name (a ``KeyError``; the message lists the choices).
        BadValueError: ``val_size`` out of range (a ``ValueError``).
        DataUnavailableError: files missing, unreadable or corrupt; the one-line message names
            the file and says what to do.
    """
    entry = _DATASETS[name]
    root = Path(data_dir).expanduser()
    train_all, test = entry.loader(root, download)
    n_val = entry.default_val if val_size is None else int(val_size)
    if n_val < 0 or n_val >= len(train_all):
        raise BadValueError(f"val_size must be in [0, {len(train_all) - 1}], got {n_val}")
    n_train = len(train_all) - n_val
    train = train_all.subset(slice(0, n_train))
    val = train_all.subset(slice(n_train, None)) if n_val else None
    if limit_train is not None:
        train = train.subset(slice(0, int(limit_train)))
    if limit_test is not None:
        test = test.subset(slice(0, int(limit_test)))
    log.info("%s: %d train, %d val, %d test", name, len(train), len(val) if val else 0, len(test))
    return DataSplits(name, train, val, test, entry.num_classes)
