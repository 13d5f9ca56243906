"""Real end-to-end training on the full MNIST in ../shared/data (minutes): `pytest -m slow`."""

import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA

from robust_winn.config import SynthesisConfig, TrainConfig
from robust_winn.training import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "MNIST").exists(), reason="needs ../shared/data/MNIST"),
]


@pytest.fixture(autouse=True)
def every_core() -> None:
    """A real epoch of 45,000 images, unlike the tiny runs of conftest's one-thread default."""
    torch.set_num_threads(os.cpu_count() or 1)


@pytest.mark.parametrize("method", ["baseline", "winn"])
def test_one_real_mnist_epoch(method: str, tmp_path: Path):
    cfg = TrainConfig(
        dataset="mnist",
        data_dir=str(SHARED_DATA),
        method=method,
        epochs=1,
        device="cpu",
        out=str(tmp_path / method),
        progress=False,
        synthesis=SynthesisConfig(max_steps=50),
    )
    rec = train(cfg)
    h = rec["history"][0]
    assert rec["status"] == "completed"
    assert h["test_error"] < 0.05 and h["val_error"] < 0.05  # one epoch of 45k images
    if method == "winn":
        assert h["pool_size"] == 2000 and h["synth_steps"] >= 1
        assert h["wasserstein"] < 0  # the critic separates positives from pseudo-negatives
