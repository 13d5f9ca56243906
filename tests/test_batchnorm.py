"""WINN with a user's BatchNorm classifier: train-mode statistics come from positives only."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from robust_winn.config import TrainConfig
from robust_winn.training import train


@pytest.fixture
def bn_cfg(tiny_cfg: TrainConfig) -> TrainConfig:
    return replace(tiny_cfg, arch="bn_models:bn_cnn", epochs=1, limit_train=100, limit_test=20)


def _spy_batchnorm(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Record (training, batch size) of every BatchNorm2d forward."""
    seen: list[tuple[bool, int]] = []
    real = nn.BatchNorm2d.forward

    def spy(self: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        seen.append((self.training, x.shape[0]))
        return real(self, x)

    monkeypatch.setattr(nn.BatchNorm2d, "forward", spy)
    return seen


def test_winn_shows_batchnorm_only_positives_in_train_mode(
    bn_cfg: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_batchnorm(monkeypatch)
    rec = train(bn_cfg)
    train_mode = [n for training, n in seen if training]
    assert train_mode and set(train_mode) == {bn_cfg.batch_size}  # never 2N (pos + neg) or interpolates
    assert any(not training and n == 2 * bn_cfg.batch_size for training, n in seen)  # critic terms
    assert rec["objective"] == {"name": "winn", "batchnorm": "critic terms in eval mode"}
    on_disk = json.loads((Path(bn_cfg.out) / "record.json").read_text())
    assert on_disk["objective"]["batchnorm"] == "critic terms in eval mode"
