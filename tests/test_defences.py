"""The defences as objectives (issue 13 §1), each pinned by its defining property."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from robust_winn.config import AdversarialConfig, TrainConfig
from robust_winn.data import load_dataset
from robust_winn.objectives.adversarial import pgd_examples
from robust_winn.runtime.checkpoint import load_checkpoint
from robust_winn.runtime.distributed import DistContext
from robust_winn.training import train
from robust_winn.training.supervised import SupervisedTrainer

ADV = AdversarialConfig(eps=0.3, steps=3, step_size=0.1)


def _cfg(tiny_cfg: TrainConfig, method: str, out: Path, **kw) -> TrainConfig:
    base = replace(
        tiny_cfg, method=method, out=str(out), limit_train=100, limit_test=50, epochs=1, adversarial=ADV
    )
    return replace(base, **kw)


def _trainer(cfg: TrainConfig) -> SupervisedTrainer:
    data = load_dataset(
        cfg.dataset, val_size=cfg.val_size, limit_train=cfg.limit_train, limit_test=cfg.limit_test
    )
    return SupervisedTrainer(cfg, data, torch.device("cpu"), DistContext())


def _classifier_weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)["model_state"]
    return {k: v for k, v in state.items() if k.startswith("classifier.")}


def test_pgd_at_inputs_stay_in_the_ball_and_raise_the_loss(tiny_cfg: TrainConfig, tmp_path: Path) -> None:
    t = _trainer(_cfg(tiny_cfg, "pgd-at", tmp_path / "r"))
    x, y = next(t.data.train.batches(50))
    ctx = t.objective.ctx
    x_adv = pgd_examples(ctx, x, y, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 2 * ADV.eps + 1e-6  # model units: the ball is 2 * eps wide
    assert x_adv.min() >= -1 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.5 * 2 * ADV.eps  # it moved
    with torch.no_grad():
        assert F.cross_entropy(t.model(x_adv), y) > F.cross_entropy(t.model(x), y)
    assert t.model.training  # mode restored after the attack
    assert all(p.requires_grad for p in t.model.parameters())


def test_trades_with_beta_zero_is_cross_entropy(tiny_cfg: TrainConfig, tmp_path: Path) -> None:
    cfg = _cfg(tiny_cfg, "trades", tmp_path / "r", adversarial=replace(ADV, trades_beta=0.0))
    t = _trainer(cfg)
    x, y = next(t.data.train.batches(50))
    terms = t.objective.loss_terms(x, y)
    assert torch.equal(terms["loss"], F.cross_entropy(t.model(x), y))
    assert terms["kl"] > 0  # the adversarial KL is there, only weighted 0
    beta6 = _trainer(replace(cfg, adversarial=replace(ADV, trades_beta=6.0))).objective.loss_terms(x, y)
    assert beta6["loss"] > beta6["ce"]


# The alpha of winn-at's uninterrupted runs below (the test of alpha 0 needs a non-zero one too).
WINN_AT_ALPHA = 0.1


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The uninterrupted 2-epoch run of each defence, trained once for the module (winn-at at
    WINN_AT_ALPHA): method -> its checkpoint-last.pt."""
    root = tmp_path_factory.mktemp("defences")
    out = {}
    for method in ("pgd-at", "trades", "winn-at"):
        kw = {"alpha": WINN_AT_ALPHA} if method == "winn-at" else {}
        train(_cfg(tiny_config(root / "tiny"), method, root / method, epochs=2, **kw))
        out[method] = root / method / "checkpoint-last.pt"
    return out


def test_winn_at_with_alpha_zero_is_pgd_at_bit_for_bit(
    tiny_cfg: TrainConfig, tmp_path: Path, full: dict[str, Path]
) -> None:
    rec = train(_cfg(tiny_cfg, "winn-at", tmp_path / "winn", epochs=2, alpha=0.0))
    a = _classifier_weights(full["pgd-at"])
    b = _classifier_weights(tmp_path / "winn" / "checkpoint-last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert rec["history"][-1]["pool_size"] > 0  # the WINN half ran (pool grew), with weight 0
    assert rec["objective"]["critic_positives"] == "clean"
    c = load_checkpoint(full["winn-at"])
    assert c["config"]["alpha"] == WINN_AT_ALPHA > 0
    assert not torch.equal(
        _classifier_weights(full["winn-at"])[next(iter(a))], a[next(iter(a))]
    )  # a non-zero alpha changes training
    assert c["history"][-1]["wasserstein"] != 0


@pytest.mark.parametrize("method", ["pgd-at", "trades", "winn-at"])
def test_resume_is_exact(method: str, tiny_cfg: TrainConfig, tmp_path: Path, full: dict[str, Path]) -> None:
    kw = {"alpha": WINN_AT_ALPHA} if method == "winn-at" else {}
    train(_cfg(tiny_cfg, method, tmp_path / "cut", epochs=1, **kw))
    rec = train(_cfg(tiny_cfg, method, tmp_path / "cut", epochs=2, **kw), resume=True)
    a = load_checkpoint(full[method])["model_state"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint-last.pt")["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rec["objective"]["name"] == method and rec["cost"]["adv_image_steps"] > 0


def test_every_method_has_an_objective() -> None:
    from robust_winn.config import Method
    from robust_winn.objectives import list_objectives

    assert {m.value for m in Method} == set(list_objectives())


def test_cli_trains_each_defence_on_a_user_architecture(tmp_path: Path, small_init_pool) -> None:
    from click.testing import CliRunner

    from robust_winn.cli import main

    for method in ("pgd-at", "trades", "winn-at"):
        out = tmp_path / method
        r = CliRunner().invoke(
            main,
            [
                "train",
                "--dataset",
                "sample",
                "--arch",
                "user_models:tiny",
                "--method",
                method,
                "--epochs",
                "1",
                "--limit-train",
                "100",
                "--limit-test",
                "20",
                "--val-size",
                "100",
                "--batch-size",
                "50",
                "--synth-per-class",
                "2",
                "--synth-max-steps",
                "2",
                "--train-steps",
                "2",
                "--train-eps",
                "0.2",
                "--trades-beta",
                "3",
                "--device",
                "cpu",
                "--no-progress",
                "--quiet",
                "--out",
                str(out),
            ],
        )
        assert r.exit_code == 0, r.output
        rec = load_checkpoint(out / "checkpoint-last.pt")["config"]
        assert rec["method"] == method and rec["adversarial"]["eps"] == 0.2
        assert rec["adversarial"]["steps"] == 2 and rec["adversarial"]["trades_beta"] == 3.0
    assert [c.method.value for c in small_init_pool] == ["pgd-at", "trades", "winn-at"]
