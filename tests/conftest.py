"""Shared fixtures: tiny, fast, CPU-only configurations on real (bundled) MNIST."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from robust_winn.config import SynthesisConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> TrainConfig:
    """WINN on 200 real MNIST images, 5 pseudo-negatives per class, 5 synthesis steps."""
    return TrainConfig(
        dataset="sample", val_size=100, limit_train=200, limit_test=100, method="winn",
        epochs=2, batch_size=50, device="cpu", out=str(tmp_path / "run"), progress=False,
        synthesis=SynthesisConfig(per_class=5, init_per_class=5, max_steps=5),
    )
