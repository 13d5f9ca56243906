"""Attack registry and harness: FGSM is the paper's FGSM, the eps-ball holds, checks fire."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from custom_model import load_trained, tiny_cnn
from torch import nn

from robust_winn.attacks import build_attack, evaluate, list_attacks, parse_attack
from robust_winn.attacks.sanity import run_sanity_checks
from robust_winn.data.datasets import load_dataset
from robust_winn.errors import BadValueError, UnknownNameError
from robust_winn.models import ModelSpecError


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = next(load_dataset("sample", data_dir="unused").test.batches(64))
    return x, y  # (64, 1, 28, 28) in [-1, 1], (64,)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return load_trained(0)


def _atk(name: str, model: nn.Module, eps: float):
    return build_attack(name, model, eps=eps, num_classes=10, image_channels=1, seed=0)


def test_fgsm_equals_hand_written_fgsm(model, batch) -> None:
    x, y = batch
    eps = 0.1
    adv = _atk("fgsm", model, eps)(x, y)  # [-1, 1] in, [-1, 1] out
    # REFERENCE §2 in [0, 1] units: u + eps * sign(grad CE), clipped to [0, 1]
    u = ((x + 1) / 2).requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(u * 2 - 1), y), u)
    expected = (u + eps * g.sign()).clamp(0, 1).detach()
    torch.testing.assert_close((adv + 1) / 2, expected, atol=1e-6, rtol=0)
    # the released code's form: x + 2*eps*sign(grad) on [-1, 1], clipped to [-1, 1]
    xg = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
    torch.testing.assert_close(adv, (x + 2 * eps * gx.sign()).clamp(-1, 1), atol=2e-6, rtol=0)
    assert not torch.equal(adv, x)


def test_eps_zero_changes_nothing(model, batch) -> None:
    x, y = batch
    torch.testing.assert_close(_atk("fgsm", model, 0.0)(x, y), x, atol=1e-6, rtol=0)
    rec = evaluate(model, dataset=(x, y), attacks=["fgsm"], eps=[0.0])
    (row,) = rec["results"]
    assert row["error"] == rec["models"]["model"]["clean_error"]


@pytest.mark.parametrize(
    ("name", "eps"),
    # AutoAttack at a large eps: APGD breaks every image, so the slow FAB/Square never run
    [
        ("fgsm", 0.1),
        ("pgd:steps=5", 0.1),
        ("apgd:steps=5", 0.1),
        ("square:queries=20", 0.1),
        ("autoattack", 0.4),
    ],
)
def test_examples_stay_in_eps_ball_and_range(model, batch, name, eps) -> None:
    x, y = batch[0][:16], batch[1][:16]
    adv = _atk(name, model, eps)(x, y)
    assert adv.shape == x.shape
    assert ((adv - x).abs() / 2).max() <= eps + 1e-6  # distance in [0, 1] units
    assert adv.min() >= -1 - 1e-6 and adv.max() <= 1 + 1e-6


def test_adversarial_error_at_least_clean_and_pgd_at_least_fgsm(model, batch) -> None:
    rec = evaluate(model, dataset=batch, attacks=["fgsm", "pgd:steps=20,alpha=0.025"], eps=[0.1])
    clean = rec["models"]["model"]["clean_error"]
    err = {r["attack"]: r["error"] for r in rec["results"]}
    assert err["fgsm"] >= clean
    assert err["pgd:alpha=0.025,steps=20"] >= err["fgsm"] > clean
    (worst,) = rec["worst_case"]
    assert worst["error"] >= max(err.values())
    assert worst["error"] >= max(worst["error_attacks_only"], clean)  # RobustBench: clean mistakes count
    assert rec["warnings"] == []


def test_two_models_give_both_correction_rates_and_transfer(batch) -> None:
    models = {"baseline": load_trained(0), "winn": load_trained(1)}
    rec = evaluate(models, dataset=batch, attacks=["fgsm"], eps=[0.1])
    pairs = {(c["referee"], c["other"]) for c in rec["correction"]}
    assert pairs == {("baseline", "winn"), ("winn", "baseline")}
    types = {(r["source"], r["scorer"]): r["type"] for r in rec["results"]}
    assert types[("baseline", "winn")] == "transfer" and types[("winn", "winn")] == "white-box"
    for c in rec["correction"]:
        own = next(r for r in rec["results"] if r["source"] == r["scorer"] == c["referee"])
        assert c["n_a"] == own["errors"] and c["adversarial_error"] == own["error"]
        other = next(r for r in rec["results"] if r["source"] == c["referee"] and r["scorer"] == c["other"])
        assert c["n_ab"] <= min(c["n_a"], other["errors"])


def test_seeded_runs_repeat(model, batch) -> None:
    a = evaluate(model, dataset=batch, attacks=["pgd:steps=3"], eps=[0.1], seed=3)
    b = evaluate(model, dataset=batch, attacks=["pgd:steps=3"], eps=[0.1], seed=3)
    assert a["results"] == b["results"]


def test_bad_names_and_eps_are_rejected(model, batch) -> None:
    """User errors (exit 2 on the command line), never a plain KeyError/ValueError (a bug)."""
    with pytest.raises(UnknownNameError, match="choose one of: .*fgsm"):
        parse_attack("fgsn")
    with pytest.raises(BadValueError, match="takes no parameter stepz"):
        parse_attack("pgd:stepz=3")
    with pytest.raises(BadValueError, match=r"\[0, 1\]"):
        _atk("fgsm", model, 1.5)
    with pytest.raises(BadValueError, match=r"\[0, 1\]"):
        evaluate(model, dataset=batch, eps=[-0.1])
    with pytest.raises(BadValueError, match="pgd: alpha must be > 0, got -0.01"):
        evaluate(model, dataset=batch, attacks=["pgd:alpha=-0.01"])
    assert {"fgsm", "pgd", "autoattack", "square"} <= set(list_attacks())


def test_model_checks(batch) -> None:
    x, y = batch
    with pytest.raises(ModelSpecError, match=r"\(N, K\)"):
        evaluate(nn.Identity(), dataset=(x[:4], y[:4]))
    three_classes = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))
    with pytest.raises(ModelSpecError, match="3 outputs but the dataset has 10 classes"):
        evaluate(three_classes, dataset="sample", limit=4)

    softmaxed = nn.Sequential(load_trained(0), nn.Softmax(dim=1))
    rec = evaluate(softmaxed, dataset=(x[:8], y[:8]), eps=[0.05])
    assert any("softmax" in w for w in rec["warnings"])

    m = tiny_cnn().train()
    rec = evaluate(m, dataset=(x[:8], y[:8]), eps=[0.05])
    assert m.training, "train mode must be restored"
    assert any("train mode" in w for w in rec["warnings"])

    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        evaluate(m, dataset=(x * 3, y))


def test_saturated_model_triggers_zero_gradient_warning(batch) -> None:
    """Logits x 1e4 make CE exactly 0 on correct images: FGSM cannot move them (masking)."""
    x, y = batch
    saturated = _Scaled(load_trained(0), 1e4)
    rec = evaluate(saturated, dataset=batch, eps=[0.1])
    assert rec["models"]["model"]["zero_gradient_image_fraction"] > 0.5
    assert any("zero input gradient" in w for w in rec["warnings"])


class _Scaled(nn.Module):
    def __init__(self, inner: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.scale


def _row(src, scorer, attack, kind, eps, error):
    return {"source": src, "scorer": scorer, "attack": attack, "kind": kind, "eps": eps, "error": error}


def test_sanity_checks_fire_on_suspicious_results() -> None:
    rows = [
        _row("a", "a", "fgsm", "single-step", 0.1, 0.5),
        _row("a", "a", "fgsm", "single-step", 0.2, 0.3),  # falls with eps
        _row("a", "a", "pgd", "iterative", 0.1, 0.4),  # weaker than FGSM
        _row("a", "a", "pgd", "iterative", 1.0, 0.6),  # eps=1 far from 100%
        _row("b", "a", "fgsm", "single-step", 0.1, 0.9),  # transfer beats white-box
        _row("a", "a", "square", "gradient-free", 0.1, 0.8),  # beats every gradient attack
    ]
    text = " | ".join(run_sanity_checks(rows, tolerance=0.01))
    assert "falls from 50.00%" in text
    assert "below single-step FGSM" in text
    assert "eps=1 reaches only 60.00%" in text
    assert "transfer beating white-box" in text
    assert "gradient-free" in text
    clean = [_row("a", "a", "fgsm", "single-step", 0.1, 0.5), _row("a", "a", "pgd", "iterative", 0.1, 0.6)]
    assert run_sanity_checks(clean, tolerance=0.01) == []


def test_cost_counts_every_forward_pass(batch) -> None:
    """Two models, FGSM and 3-step PGD at two eps: per (attack, eps) each model forwards its own
    attack's passes (FGSM 1, PGD 3 per image) and one scoring pass of every source's examples (2
    sources); the clean pass is FGSM's first forward (issue 16), so it costs nothing more. Model
    "a" adds one image: the class count of a tensor dataset is read from a one-image forward."""
    models = {"a": load_trained(0), "b": load_trained(1)}
    rec = evaluate(models, dataset=batch, attacks=["fgsm", "pgd:steps=3"], eps=[0.05, 0.1])
    n, cost = 64, rec["cost"]
    per_eps = (1 + 3) * n + 2 * 2 * n  # attack forwards + scoring of both sources, both attacks
    assert cost["forward_images"] == {"a": 2 * per_eps + 1, "b": 2 * per_eps}
    assert cost["adversarial_images"] == 2 * 2 * 2 * n  # sources x attacks x eps x images
    assert cost["gpu_s"] is None and cost["attack_time_s:fgsm"] > 0
    phases = sum(v for k, v in cost.items() if k.endswith("time_s") or "time_s:" in k)
    assert 0 < phases <= rec["wall_time_s"]


def test_parameters_are_frozen_during_attacks_and_restored_after(batch) -> None:
    """Gradients w.r.t. the weights are wasted work in an attack; the flags come back as they were."""
    model = load_trained(0)
    first = next(model.parameters())
    first.requires_grad_(False)  # a user's partly frozen model keeps its own flags
    before = [p.requires_grad for p in model.parameters()]
    seen: list[bool] = []
    hook = model.register_forward_pre_hook(
        lambda m, args: seen.append(any(p.requires_grad for p in m.parameters()))
    )
    evaluate(model, dataset=batch, attacks=["fgsm", "pgd:steps=2"], eps=[0.1])
    hook.remove()
    assert seen and not any(seen)
    assert [p.requires_grad for p in model.parameters()] == before and any(before)
    assert all(p.grad is None for p in model.parameters())
