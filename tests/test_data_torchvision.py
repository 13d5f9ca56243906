"""SVHN and CIFAR-10 through torchvision (issue 11): every bad file is one DataUnavailableError
line naming it, and nothing touches the network without ``download=True``."""

from __future__ import annotations

import pickle
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from robust_winn.data.datasets import DataUnavailableError, load_dataset

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


@pytest.fixture
def network_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """torchvision's download helpers, urllib and sockets record themselves here and fail."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.svhn as tv_svhn
    import torchvision.datasets.utils as tv_utils

    calls: list[str] = []

    def refuse(what: str):
        def fn(*args: object, **kwargs: object) -> None:
            calls.append(what)
            raise urllib.error.URLError(f"test: network access attempted via {what}")

        return fn

    for mod, attr in (
        (tv_utils, "download_url"),
        (tv_utils, "download_and_extract_archive"),
        (tv_svhn, "download_url"),
        (tv_cifar, "download_and_extract_archive"),
        (urllib.request, "urlopen"),
        (socket, "create_connection"),
    ):
        monkeypatch.setattr(mod, attr, refuse(f"{mod.__name__}.{attr}"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    return calls


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Synthetic files cannot match the official md5s; only that check is bypassed."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.svhn as tv_svhn

    monkeypatch.setattr(tv_svhn, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)


def write_svhn(root: Path) -> Path:
    scipy_io = pytest.importorskip("scipy.io")
    folder = root / "svhn"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        scipy_io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": np.ones((n, 1), np.uint8)})
    return folder


def write_cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES[:-1]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 1]}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    return folder


def one_error(dataset: str, root: Path, match: str, **kw: object) -> str:
    with pytest.raises(DataUnavailableError, match=match) as info:
        load_dataset(dataset, data_dir=root, val_size=0, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


# --------------------------------------------------------------------------- SVHN


def test_svhn_md5_mismatch_names_the_file(tmp_path: Path, network_calls: list[str]):
    folder = write_svhn(tmp_path)  # right format, but not the official bytes
    msg = one_error("svhn", tmp_path, "train_32x32.mat is not the official file .md5 differs")
    assert str(folder / "train_32x32.mat") in msg and "--download" in msg
    assert network_calls == []


def test_svhn_missing_test_file(tmp_path: Path, network_calls: list[str]):
    folder = write_svhn(tmp_path)
    (folder / "test_32x32.mat").unlink()
    msg = one_error("svhn", tmp_path, str(folder / "test_32x32.mat"))
    assert "--download" in msg and network_calls == []


def test_svhn_directory_in_place_of_file(tmp_path: Path, network_calls: list[str]):
    folder = write_svhn(tmp_path)
    (folder / "train_32x32.mat").unlink()
    (folder / "train_32x32.mat").mkdir()
    one_error("svhn", tmp_path, "train_32x32.mat is not a regular file")
    assert network_calls == []


def test_svhn_corrupt_mat_with_matching_md5(tmp_path: Path, no_md5: None, network_calls: list[str]):
    folder = write_svhn(tmp_path)
    (folder / "train_32x32.mat").write_bytes(b"not a mat file at all" * 10)
    one_error("svhn", tmp_path, "svhn: cannot load")
    assert network_calls == []


def test_svhn_failed_download_is_one_line(tmp_path: Path, network_calls: list[str]):
    one_error("svhn", tmp_path, "svhn: download into .*svhn failed: .*test: network access", download=True)
    assert network_calls  # asked for: the download was attempted (and failed)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_every_missing_file_is_named(tmp_path: Path, network_calls: list[str]):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()  # the old check only looked at test_batch
    one_error("cifar10", tmp_path, str(folder / "data_batch_3"))
    (folder / "data_batch_3").write_bytes(b"")
    (folder / "batches.meta").unlink()
    one_error("cifar10", tmp_path, str(folder / "batches.meta"))
    assert network_calls == []


def test_cifar10_md5_mismatch_names_the_file(tmp_path: Path, network_calls: list[str]):
    folder = write_cifar(tmp_path)
    msg = one_error("cifar10", tmp_path, "data_batch_1 is not the official file")
    assert str(folder / "data_batch_1") in msg and network_calls == []


def test_cifar10_directory_in_place_of_file(tmp_path: Path, network_calls: list[str]):
    folder = write_cifar(tmp_path)
    (folder / "test_batch").unlink()
    (folder / "test_batch").mkdir()
    one_error("cifar10", tmp_path, "test_batch is not a regular file")
    assert network_calls == []


@pytest.mark.parametrize("junk", [b"", b"\x80\x04garbage", pickle.dumps([1, 2, 3])[:5]])
def test_cifar10_corrupt_pickle_with_matching_md5(
    tmp_path: Path, no_md5: None, network_calls: list[str], junk: bytes
):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_2").write_bytes(junk)
    one_error("cifar10", tmp_path, "cifar10: cannot load")
    assert network_calls == []


def test_cifar10_failed_download_is_one_line(tmp_path: Path, network_calls: list[str]):
    one_error("cifar10", tmp_path, "cifar10: download into .* failed: .*test: network access", download=True)
    assert network_calls
