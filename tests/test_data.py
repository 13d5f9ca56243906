import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from robust_winn.data.datasets import DataUnavailableError, load_dataset, to_model_range


def test_sample_is_real_mnist_in_model_range():
    d = load_dataset("sample")
    assert d.image_shape == (1, 28, 28) and d.num_classes == 10
    assert (len(d.train), len(d.val), len(d.test)) == (2500, 500, 1000)
    x, y = next(d.train.batches(64))
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert set(y.tolist()) <= set(range(10))
    assert len(torch.unique(d.test.labels)) == 10


def test_to_model_range_endpoints():
    torch.testing.assert_close(
        to_model_range(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0])
    )


@pytest.mark.skipif(not (SHARED_DATA / "MNIST").exists(), reason="shared MNIST not present")
def test_full_mnist_from_read_only_shared_folder_default_split():
    d = load_dataset("mnist", data_dir=SHARED_DATA)
    assert (len(d.train), len(d.val), len(d.test)) == (45_000, 15_000, 10_000)
    # the split is the first 45k / last 15k, no shuffle (REFERENCE §1.1): first label is a 5
    assert int(d.train.labels[0]) == 5
    d2 = load_dataset("mnist", data_dir=SHARED_DATA, val_size=10_000, limit_train=100)
    assert (len(d2.train), len(d2.val)) == (100, 10_000)


def test_missing_mnist_says_where(tmp_path: Path):
    with pytest.raises(DataUnavailableError, match=str(tmp_path / "MNIST" / "raw")):
        load_dataset("mnist", data_dir=tmp_path)


def test_unknown_dataset_lists_choices():
    with pytest.raises(KeyError, match="mnist"):
        load_dataset("imagenet")


def test_bad_val_size():
    with pytest.raises(ValueError, match="val_size"):
        load_dataset("sample", val_size=3000)


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision checks the md5 of the official files; synthetic files in the same on-disk
    format cannot match it, so only that check is bypassed (parsing stays torchvision's)."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    monkeypatch.setattr(svhn, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)


def test_svhn_loader_on_files_in_the_exact_format(tmp_path: Path, no_md5: None):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    folder = tmp_path / "svhn"
    folder.mkdir()
    for split, n in (("train", 12), ("test", 6)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # SVHN: H, W, C, N
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # labels 1..10, 10 = digit 0
        scipy_io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    d = load_dataset("svhn", data_dir=tmp_path)
    assert d.image_shape == (3, 32, 32) and len(d.train) == 12 and len(d.test) == 6 and d.val is None
    assert d.train.labels.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    want = torch.from_numpy(x[:, :, :, 0]).permute(2, 0, 1)  # last written = test split
    assert torch.equal(d.test.images[0], want)


def test_svhn_missing_is_clear(tmp_path: Path):
    with pytest.raises(DataUnavailableError, match="train_32x32.mat"):
        load_dataset("svhn", data_dir=tmp_path)


def test_cifar10_loader_on_pickled_batches(tmp_path: Path, no_md5: None):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)  # rows: R(1024) G B
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": [0, 1, 2, 3]}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    d = load_dataset("cifar10", data_dir=tmp_path, val_size=4)
    assert d.image_shape == (3, 32, 32)
    assert (len(d.train), len(d.val), len(d.test)) == (16, 4, 4)
    assert torch.equal(d.test.images[0].flatten(), torch.from_numpy(data[0]))
