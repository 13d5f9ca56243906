import inspect
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_config

from robust_winn.config import TrainConfig
from robust_winn.errors import ResumeError
from robust_winn.models import Introspective, build_classifier
from robust_winn.objectives import losses
from robust_winn.runtime.checkpoint import load_checkpoint, load_classifier
from robust_winn.synthesis import NegativePool, PseudoNegativeSampler
from robust_winn.training import NonFiniteLossError, train


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model_state"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _patch_loss(mp: pytest.MonkeyPatch, wrapper: Any) -> None:
    """Replace losses.winn_supervised_loss in every robust_winn module that imported it, so the
    wrapper sees every training step wherever the objective lives after a refactor."""
    real = losses.winn_supervised_loss
    bound = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("robust_winn") and getattr(m, "winn_supervised_loss", None) is real
    ]
    assert bound, "nothing imports winn_supervised_loss"
    for module in bound:
        mp.setattr(module, "winn_supervised_loss", wrapper)


def _spy_training(mp: pytest.MonkeyPatch) -> dict[str, list]:
    """Record, without changing anything, every step's loss parts and every synthesis call's
    thresholds; ``epochs[e]`` holds the f_pos_mean of the steps before the (e+1)-th synthesis."""
    seen: dict[str, list] = {"f_pos_mean": [], "wasserstein": [], "taus": [], "epochs": []}
    real_loss = losses.winn_supervised_loss
    real_synth = PseudoNegativeSampler.synthesize
    signature = inspect.signature(real_synth)

    def loss(*args: Any, **kwargs: Any) -> losses.WinnLoss:
        out = real_loss(*args, **kwargs)
        seen["f_pos_mean"].append(float(out.f_pos_mean))
        seen["wasserstein"].append(float(out.wasserstein))
        return out

    def synthesize(self: PseudoNegativeSampler, *args: Any, **kwargs: Any) -> Any:
        taus = signature.bind(self, *args, **kwargs).arguments["taus"]
        seen["taus"].append(taus.detach().cpu().double().clone())
        done = sum(len(e) for e in seen["epochs"])
        seen["epochs"].append(seen["f_pos_mean"][done:])
        return real_synth(self, *args, **kwargs)

    _patch_loss(mp, loss)
    mp.setattr(PseudoNegativeSampler, "synthesize", synthesize)
    return seen


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny 2-epoch WINN run (conftest.tiny_config), trained once for the module and watched
    by :func:`_spy_training`; the resume tests compare their runs with its checkpoint."""
    cfg = tiny_config(tmp_path_factory.mktemp("training") / "full")
    with pytest.MonkeyPatch.context() as mp:
        seen = _spy_training(mp)
        rec = train(cfg)
    return {"cfg": cfg, "record": rec, "seen": seen, "ckpt": Path(cfg.out) / "checkpoint-last.pt"}


def test_winn_run_writes_all_outputs(full_run: dict[str, Any]):
    rec, out = full_run["record"], Path(full_run["cfg"].out)
    for name in ("checkpoint-best.pt", "checkpoint-last.pt", "record.json", "epochs.csv"):
        assert (out / name).is_file(), name
    assert rec["status"] == "completed" and rec["epochs_run"] == 2
    on_disk = json.loads((out / "record.json").read_text())
    assert on_disk["history"][-1]["pool_size"] == 10 * 2 * 3  # initial + 2 epochs
    assert len((out / "epochs.csv").read_text().strip().splitlines()) == 3
    model, state = load_classifier(out / "checkpoint-last.pt")
    assert not model.training and state["method"] == "winn" and state["epoch"] == 2


def test_synthesis_thresholds_are_drawn_from_the_epochs_positive_means(full_run: dict[str, Any]):
    """REFERENCE §1.6: after each epoch, one tau per class is drawn uniformly from [min, max] of
    that epoch's pre-update batch means of f on positives, and synthesis stops at it."""
    seen, hist = full_run["seen"], full_run["record"]["history"]
    assert len(seen["taus"]) == len(hist) == 2  # one synthesis pass per epoch
    assert [len(e) for e in seen["epochs"]] == [2, 2]  # 100 images in batches of 50
    for epoch, means, taus, row in zip((1, 2), seen["epochs"], seen["taus"], hist, strict=True):
        lo, hi = min(means), max(means)
        assert lo < hi, means
        # the recorded range is this epoch's, not the run's so far
        assert row["tau_min"] == pytest.approx(lo, rel=1e-6, abs=1e-7), epoch
        assert row["tau_max"] == pytest.approx(hi, rel=1e-6, abs=1e-7), epoch
        assert taus.shape == (10,)  # one threshold per class batch
        slack = 1e-6 * max(1.0, abs(lo), abs(hi))  # the draw is float32
        assert (taus >= lo - slack).all() and (taus <= hi + slack).all(), (taus, lo, hi)
        assert taus.unique().numel() == 10  # drawn, not one value (or the ends) for all
    first, second = seen["epochs"]
    assert (min(first), max(first)) != (min(second), max(second))


def test_winn_steps_lower_the_wasserstein_term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Ten WINN steps move W = mean f(neg) - mean f(pos) down, on positives paired with
    negatives of the same class drawn from the pool. alpha = 1: at the paper's 0.01, ten steps
    do not move W beyond its batch-to-batch noise (~0.03; the penalty term, lambda * GP ~ 9,
    drives the critic head early on). Fixed seed, one CPU thread: the same numbers every run
    (here W goes from about 0 to below -0.2)."""
    matched: list[bool] = []
    real_sample = NegativePool.sample

    def sample(self: NegativePool, labels: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = real_sample(self, labels, **kwargs)
        state = self.state_dict()
        for img, c in zip(out, labels.tolist(), strict=True):
            held = state["bufs"][c][: state["count"][c]].float()
            matched.append(bool((held == img).flatten(1).all(1).any()))
        return out

    monkeypatch.setattr(NegativePool, "sample", sample)
    seen = _spy_training(monkeypatch)
    rec = train(tiny_config(tmp_path / "run", alpha=1.0, limit_train=500, epochs=1))
    w = seen["wasserstein"]
    assert len(w) == 10 and len(matched) == 500 and all(matched)
    assert rec["history"][0]["wasserstein"] == pytest.approx(sum(w) / len(w), abs=1e-6)
    first, last = sum(w[:3]) / 3, sum(w[-3:]) / 3
    assert last < first - 0.1 and last < 0, w


def test_resume_reproduces_uninterrupted_run(tiny_cfg: TrainConfig, full_run: dict[str, Any]):
    part = replace(tiny_cfg, epochs=1)
    train(part)
    train(replace(part, epochs=2), resume=True)
    last = Path(part.out) / "checkpoint-last.pt"
    _assert_same_weights(full_run["ckpt"], last)
    a = load_checkpoint(full_run["ckpt"])["pool_state"]
    b = load_checkpoint(last)["pool_state"]
    assert all(torch.equal(x, y) for x, y in zip(a["bufs"], b["bufs"], strict=True))


def test_ctrl_c_mid_epoch_keeps_last_epoch_and_resume_matches(
    tiny_cfg: TrainConfig, monkeypatch: pytest.MonkeyPatch, full_run: dict[str, Any]
):
    """Ctrl-C in epoch 2's synthesis: epoch 1 is kept, and resuming gives the uninterrupted run."""
    real = PseudoNegativeSampler.synthesize
    calls = {"n": 0}

    def interrupt_in_second_epoch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PseudoNegativeSampler, "synthesize", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg)
    monkeypatch.setattr(PseudoNegativeSampler, "synthesize", real)
    out = Path(tiny_cfg.out)
    rec = json.loads((out / "record.json").read_text())
    assert rec["status"] == "interrupted" and rec["epochs_run"] == 1
    assert load_checkpoint(out / "checkpoint-last.pt")["epoch"] == 1
    train(tiny_cfg, resume=True)
    _assert_same_weights(full_run["ckpt"], out / "checkpoint-last.pt")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    tiny_cfg: TrainConfig, monkeypatch: pytest.MonkeyPatch, full_run: dict[str, Any]
):
    shutil.copytree(full_run["cfg"].out, tiny_cfg.out)  # a finished 2-epoch WINN run
    tiny_cfg = replace(tiny_cfg, epochs=3)
    before = _weights(Path(tiny_cfg.out) / "checkpoint-last.pt")
    real = losses.winn_supervised_loss

    def nan_loss(*a, **k):
        out = real(*a, **k)
        out.total = out.total * float("nan")
        return out

    _patch_loss(monkeypatch, nan_loss)
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        train(tiny_cfg, resume=True)
    after = _weights(Path(tiny_cfg.out) / "checkpoint-last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((Path(tiny_cfg.out) / "record.json").read_text())["status"] == "non-finite"


def test_baseline_learns_and_leaves_critic_head_untouched(tiny_cfg: TrainConfig):
    """The baseline trains the classifier by CE alone: the critic head f = Linear(K -> 1) on the
    logits keeps its initial weights bit for bit, while every classifier tensor moves."""
    cfg = replace(tiny_cfg, method="baseline", epochs=2, limit_train=500)
    rec = train(cfg)
    errs = [h["test_error"] for h in rec["history"]]
    assert errs[-1] < 0.5 and errs[-1] < errs[0]  # chance is 0.9
    assert all(h["ce"] == h["loss"] > 0 for h in rec["history"])  # the baseline's loss is its CE
    state = load_checkpoint(Path(cfg.out) / "checkpoint-last.pt")
    assert state["pool_state"] is None
    # the initial model, built as the trainer builds it: seed, classifier, then the head
    torch.manual_seed(cfg.seed)
    init = Introspective(build_classifier(cfg.arch, image_shape=(1, 28, 28), num_classes=10), 10).state_dict()
    final = state["model_state"]
    assert init.keys() == final.keys()
    head = [k for k in init if k.startswith("critic_head.")]
    assert sorted(head) == ["critic_head.bias", "critic_head.weight"]
    for k in head:
        assert torch.equal(final[k], init[k]), k
    moved = [
        k
        for k in init
        if k not in head and init[k].is_floating_point() and not torch.equal(final[k], init[k])
    ]
    assert len(moved) == sum(1 for k in init if k not in head and init[k].is_floating_point())


def test_resume_rejects_other_method_and_missing_checkpoint(tiny_cfg: TrainConfig, full_run: dict[str, Any]):
    with pytest.raises(ResumeError, match="does not exist, so there is no run to continue"):
        train(tiny_cfg, resume=True)
    assert not Path(tiny_cfg.out).exists()  # a failed resume creates no folder
    Path(tiny_cfg.out).mkdir(parents=True)
    with pytest.raises(ResumeError, match="no .*checkpoint-last.pt"):
        train(tiny_cfg, resume=True)
    shutil.copytree(full_run["cfg"].out, tiny_cfg.out, dirs_exist_ok=True)  # a finished 2-epoch WINN run
    before = _weights(Path(tiny_cfg.out) / "checkpoint-last.pt")
    with pytest.raises(ResumeError, match="method"):
        train(replace(tiny_cfg, method="baseline", epochs=3), resume=True)
    after = _weights(Path(tiny_cfg.out) / "checkpoint-last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_negative_epochs_rejected(tiny_cfg: TrainConfig):
    with pytest.raises(ValueError, match="epochs"):
        train(replace(tiny_cfg, epochs=-1))
