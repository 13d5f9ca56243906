import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robust_winn.config import TrainConfig
from robust_winn.errors import ResumeError
from robust_winn.objectives import losses
from robust_winn.objectives import winn as winn_objective
from robust_winn.objectives.winn import WinnObjective
from robust_winn.runtime.checkpoint import load_checkpoint, load_classifier
from robust_winn.training import NonFiniteLossError, train


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model_state"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_winn_run_writes_all_outputs(tiny_cfg: TrainConfig):
    rec = train(tiny_cfg)
    out = Path(tiny_cfg.out)
    for name in ("checkpoint-best.pt", "checkpoint-last.pt", "record.json", "epochs.csv"):
        assert (out / name).is_file(), name
    assert rec["status"] == "completed" and rec["epochs_run"] == 2
    on_disk = json.loads((out / "record.json").read_text())
    assert on_disk["history"][-1]["pool_size"] == 10 * 5 * 3  # initial + 2 epochs
    assert len((out / "epochs.csv").read_text().strip().splitlines()) == 3
    model, state = load_classifier(out / "checkpoint-last.pt")
    assert not model.training and state["method"] == "winn" and state["epoch"] == 2


def test_resume_reproduces_uninterrupted_run(tiny_cfg: TrainConfig, tmp_path: Path):
    full = replace(tiny_cfg, out=str(tmp_path / "full"))
    train(full)
    part = replace(tiny_cfg, out=str(tmp_path / "part"), epochs=1)
    train(part)
    train(replace(part, epochs=2), resume=True)
    _assert_same_weights(tmp_path / "full" / "checkpoint-last.pt", tmp_path / "part" / "checkpoint-last.pt")
    a = load_checkpoint(tmp_path / "full" / "checkpoint-last.pt")["pool_state"]
    b = load_checkpoint(tmp_path / "part" / "checkpoint-last.pt")["pool_state"]
    assert all(torch.equal(x, y) for x, y in zip(a["bufs"], b["bufs"], strict=True))


def test_ctrl_c_mid_epoch_keeps_last_epoch_and_resume_matches(
    tiny_cfg: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    train(replace(tiny_cfg, out=str(tmp_path / "full")))
    cfg = replace(tiny_cfg, out=str(tmp_path / "cut"))
    real = WinnObjective.end_epoch
    calls = {"n": 0}

    def interrupt_in_second_epoch(self, steps):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, steps)

    monkeypatch.setattr(WinnObjective, "end_epoch", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(WinnObjective, "end_epoch", real)
    rec = json.loads((tmp_path / "cut" / "record.json").read_text())
    assert rec["status"] == "interrupted" and rec["epochs_run"] == 1
    assert load_checkpoint(tmp_path / "cut" / "checkpoint-last.pt")["epoch"] == 1
    train(cfg, resume=True)
    _assert_same_weights(tmp_path / "full" / "checkpoint-last.pt", tmp_path / "cut" / "checkpoint-last.pt")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    tiny_cfg: TrainConfig, monkeypatch: pytest.MonkeyPatch
):
    train(replace(tiny_cfg, epochs=1))
    before = _weights(Path(tiny_cfg.out) / "checkpoint-last.pt")
    real = losses.winn_supervised_loss

    def nan_loss(*a, **k):
        out = real(*a, **k)
        out.total = out.total * float("nan")
        return out

    monkeypatch.setattr(winn_objective, "winn_supervised_loss", nan_loss)
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        train(tiny_cfg, resume=True)
    after = _weights(Path(tiny_cfg.out) / "checkpoint-last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((Path(tiny_cfg.out) / "record.json").read_text())["status"] == "non-finite"


def test_baseline_learns_and_leaves_critic_head_untouched(tiny_cfg: TrainConfig):
    cfg = replace(tiny_cfg, method="baseline", epochs=3, limit_train=1000)
    rec = train(cfg)
    errs = [h["test_error"] for h in rec["history"]]
    assert errs[-1] < 0.5  # chance is 0.9
    assert all(h["ce"] == h["loss"] > 0 for h in rec["history"])  # the baseline's loss is its CE
    state = load_checkpoint(Path(cfg.out) / "checkpoint-last.pt")
    assert state["pool_state"] is None


def test_resume_rejects_other_method_and_missing_checkpoint(tiny_cfg: TrainConfig):
    with pytest.raises(ResumeError, match="no .*checkpoint-last.pt"):
        train(tiny_cfg, resume=True)
    train(replace(tiny_cfg, epochs=1))
    with pytest.raises(ResumeError, match="method"):
        train(replace(tiny_cfg, method="baseline"), resume=True)


def test_negative_epochs_rejected(tiny_cfg: TrainConfig):
    with pytest.raises(ValueError, match="epochs"):
        train(replace(tiny_cfg, epochs=-1))
