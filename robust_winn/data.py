"""Dataset registry: every dataset becomes uint8 tensors plus labels, served in [-1, 1].

Paper §5.6 / REFERENCE §1.1: images are mapped with ``x / 255 * 2 - 1`` to [-1, 1]; MNIST uses
the first 45,000 training images for training and the last 15,000 for validation (no shuffle
before the split), no augmentation. All real datasets go through torchvision's own classes so
that the on-disk formats are the standard ones; nothing here downloads unless asked to.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .errors import DataUnavailableError, UnknownNameError

log = logging.getLogger(__name__)

__all__ = [
    "DataUnavailableError",
    "ImageSet",
    "DataSplits",
    "load_dataset",
    "list_datasets",
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


def _require(path: Path, what: str, name: str) -> None:
    if not path.exists():
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


def cache_dir() -> Path:
    """Writable cache for datasets whose folder is read-only (``$ROBUST_WINN_CACHE``)."""
    return Path(os.environ.get("ROBUST_WINN_CACHE", Path.home() / ".cache" / "robust_winn"))


def _writable(path: Path) -> bool:
    """Writable by us *and* not marked read-only (root ignores the mode bits otherwise)."""
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & stat.S_IWUSR)


def _torchvision_mnist_like(cls_name: str, folder: str) -> Callable[..., tuple[ImageSet, ImageSet]]:
    def load(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        raw = root / folder / "raw"
        gz = [raw / (Path(url).name) for url, _ in cls.resources]
        extracted = [p.with_suffix("") for p in gz]
        have_gz = all(p.exists() for p in gz)
        if not download and not have_gz and not all(p.exists() for p in extracted):
            _require(raw / gz[0].name, "the four idx .gz files", folder)
        if have_gz and not all(p.exists() for p in extracted) and not _writable(raw):
            # torchvision extracts next to the archives; copy them once to a writable cache.
            root = cache_dir()
            (root / folder / "raw").mkdir(parents=True, exist_ok=True)
            for p in gz:
                dst = root / folder / "raw" / p.name
                if not dst.exists():
                    shutil.copyfile(p, dst)
        try:
            # With the archives present, download=True only verifies md5s and extracts: offline.
            train = cls(str(root), train=True, download=download or have_gz)
            test = cls(str(root), train=False, download=download or have_gz)
        except (RuntimeError, OSError) as exc:
            raise DataUnavailableError(
                f"{folder}: files missing or corrupt under {raw} ({exc}). Expected the four "
                f"idx .gz files (torchvision layout); use --download where a network exists."
            ) from exc
        return (
            ImageSet(train.data.unsqueeze(1).to(torch.uint8), train.targets.long()),
            ImageSet(test.data.unsqueeze(1).to(torch.uint8), test.targets.long()),
        )

    return load


def _load_svhn(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    import torchvision.datasets as tvd

    folder = root / "svhn"
    if not download:
        for split in ("train", "test"):
            _require(folder / f"{split}_32x32.mat", f"{split}_32x32.mat", "svhn")
    try:
        train = tvd.SVHN(str(folder), split="train", download=download)
        test = tvd.SVHN(str(folder), split="test", download=download)
    except RuntimeError as exc:  # torchvision: md5 mismatch or missing file
        raise DataUnavailableError(f"svhn: {exc} (expected the official .mat files in {folder})") from exc
    # torchvision maps the .mat label 10 to 0 already; data is (N, 3, 32, 32) uint8.
    return _from_numpy(train.data, train.labels), _from_numpy(test.data, test.labels)


def _load_cifar10(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    import torchvision.datasets as tvd

    if not download:
        _require(root / "cifar-10-batches-py" / "test_batch", "cifar-10-batches-py/", "cifar10")
    try:
        train = tvd.CIFAR10(str(root), train=True, download=download)
        test = tvd.CIFAR10(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise DataUnavailableError(f"cifar10: {exc} (expected {root / 'cifar-10-batches-py'})") from exc

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
    loader: Callable[[Path, bool], tuple[ImageSet, ImageSet]]
    num_classes: int
    default_val: int
    description: str


_REGISTRY: dict[str, _Entry] = {
    "mnist": _Entry(
        _torchvision_mnist_like("MNIST", "MNIST"), 10, 15_000,
        "MNIST 28x28x1, 60k/10k; default split 45k train / last 15k validation (REFERENCE §1.1)",
    ),
    "fashion-mnist": _Entry(
        _torchvision_mnist_like("FashionMNIST", "FashionMNIST"), 10, 15_000,
        "Fashion-MNIST 28x28x1, 60k/10k, split as MNIST",
    ),
    "svhn": _Entry(
        _load_svhn, 10, 0,
        "SVHN 32x32x3, train_32x32.mat / test_32x32.mat under DIR/svhn (paper: train set only)",
    ),
    "cifar10": _Entry(
        _load_cifar10, 10, 5_000,
        "CIFAR-10 32x32x3, python pickled batches under DIR/cifar-10-batches-py",
    ),
    "sample": _Entry(
        _load_sample, 10, 500,
        "bundled real MNIST sample (3,000 train / 1,000 test), offline, for the quickstart",
    ),
}


def list_datasets() -> dict[str, str]:
    """Registered supervised dataset names -> one-line description."""
    return {k: v.description for k, v in _REGISTRY.items()}


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
        data_dir: root holding the torchvision layout (e.g. ``DIR/MNIST/raw/*.gz``).
        download: let torchvision fetch missing files (needs network).
        val_size: how many of the *last* training images form the validation split
            (REFERENCE §1.1: 15,000 for MNIST); ``0`` disables validation.
        limit_train: keep only the first N training images (after the split), for quick runs.
        limit_test: keep only the first N test images.

    Raises:
        KeyError: unknown name (the message lists the choices).
        DataUnavailableError: files missing; the message says where they must be.
    """
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    entry = _REGISTRY[name]
    root = Path(data_dir).expanduser()
    train_all, test = entry.loader(root, download)
    n_val = entry.default_val if val_size is None else int(val_size)
    if n_val < 0 or n_val >= len(train_all):
        raise ValueError(f"val_size must be in [0, {len(train_all) - 1}], got {n_val}")
    n_train = len(train_all) - n_val
    train = train_all.subset(slice(0, n_train))
    val = train_all.subset(slice(n_train, None)) if n_val else None
    if limit_train is not None:
        train = train.subset(slice(0, int(limit_train)))
    if limit_test is not None:
        test = test.subset(slice(0, int(limit_test)))
    log.info("%s: %d train, %d val, %d test", name, len(train), len(val) if val else 0, len(test))
    return DataSplits(name, train, val, test, entry.num_classes)
