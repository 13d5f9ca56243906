"""WGAN-GP runs on the shared lifecycle: checkpoints every block, exact resume, refusals."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robust_winn.data.positives import ImageTensorSource
from robust_winn.errors import ResumeError
from robust_winn.runtime.checkpoint import load_checkpoint
from robust_winn.training import wgan_gp
from robust_winn.training.wgan_gp import WganGpConfig, train_wgan_gp


def _source() -> ImageTensorSource:
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (24, 3, 16, 16), generator=g, dtype=torch.uint8)
    return ImageTensorSource("noise", imgs)


def _cfg(out: Path) -> WganGpConfig:
    # the small vanilla critic: resume does not depend on it (critic64: test_wgan_gp.py)
    return WganGpConfig(
        arch="vanilla",
        image_size=16,
        iterations=6,
        n_critic=2,
        batch_size=4,
        z_dim=8,
        gen_width=8,
        tau_window=4,
        checkpoint_every=2,
        device="cpu",
        out=str(out),
        progress=False,
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    st = load_checkpoint(path)
    return {
        **{"c." + k: v for k, v in st["critic_state"].items()},
        **{"g." + k: v for k, v in st["generator_state"].items()},
    }


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The uninterrupted 6-iteration run, trained once for the module: (record, folder)."""
    out = tmp_path_factory.mktemp("wgan") / "full"
    return train_wgan_gp(_cfg(out), source=_source()), out


def test_interrupted_run_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full: tuple[dict, Path]
) -> None:
    full, full_dir = full
    real, calls = wgan_gp.critic_step, {"n": 0}

    def interrupt_in_third_block(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2 * 2 * 2 + 1:  # first critic step of block 3 (2 iterations x 2 steps)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(wgan_gp, "critic_step", interrupt_in_third_block)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_wgan_gp(_cfg(cut), source=_source())
    monkeypatch.setattr(wgan_gp, "critic_step", real)
    assert load_checkpoint(cut / "checkpoint-last.pt")["iteration"] == 4
    resumed = train_wgan_gp(_cfg(cut), source=_source(), resume=True)
    a, b = _weights(full_dir / "checkpoint-last.pt"), _weights(cut / "checkpoint-last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (resumed["tau_min"], resumed["tau_max"]) == (full["tau_min"], full["tau_max"])
    assert resumed["status"] == "completed" and resumed["iterations_run"] == 6
    assert [r["iteration"] for r in resumed["history"]] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_resume_refuses_another_seed(tmp_path: Path, full: tuple[dict, Path]) -> None:
    shutil.copytree(full[1], tmp_path / "run")
    before = _weights(tmp_path / "run" / "checkpoint-last.pt")
    with pytest.raises(ResumeError, match=r"seed \(run: 0, asked: 1\)"):
        train_wgan_gp(replace(_cfg(tmp_path / "run"), seed=1), source=_source(), resume=True)
    after = _weights(tmp_path / "run" / "checkpoint-last.pt")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
