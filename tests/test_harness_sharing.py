"""The harness shares its clean pass with the attacks (issue 16) without changing any output.

An explicitly unshared computation (the harness's loop before issue 16, written out here: a clean
forward + backward per model per batch, then every attack, then every model scoring every set,
eps 0 included) is the reference. The harness's record (errors, correction rates, worst case,
curves, warnings) and per-example Outcomes must equal it, and must equal the harness itself with
the sharing switched off, while the images forwarded drop by the clean pass and the eps-0 scoring.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from custom_model import load_trained
from torch import nn

from robust_winn.attacks import build_attack, evaluate, parse_attack
from robust_winn.attacks import loop as loop_module
from robust_winn.attacks.harness import Outcomes
from robust_winn.data.datasets import load_dataset

N = 200  # test images; batches of 64 leave a ragged last batch of 8
BATCH = 64
ATTACKS = ["fgsm", "pgd:steps=3", "pgd:random_start=false,steps=3"]
EPS = [0.0, 0.1]
SUMMARY = ("models", "results", "correction", "worst_case", "curves", "warnings")


@pytest.fixture(scope="module")
def data() -> Any:
    return load_dataset("sample", data_dir="unused")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {"baseline": load_trained(0), "winn": load_trained(1)}


def _zero_counts(grad: torch.Tensor) -> tuple[int, int]:
    zero = grad.flatten(1) == 0  # (B, C*H*W)
    return int(zero.all(1).sum()), int(zero.sum())


def _unshared(
    models: dict[str, nn.Module],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    attacks: list[str],
    eps: list[float],
    *,
    seed: int = 0,
    reduction: str = "mean",
) -> dict[str, Any]:
    """The pre-issue-16 loop: own clean pass (forward + backward), every attack, every scorer."""
    specs = [parse_attack(a) for a in attacks]
    clean: dict[str, list[torch.Tensor]] = {n: [] for n in models}
    adv: dict[tuple[str, str, float, str], list[torch.Tensor]] = {}
    zero = dict.fromkeys(models, (0, 0))
    built: dict[tuple[str, str, float], Any] = {}
    for m in models.values():
        m.eval().requires_grad_(False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for x, y in batches:
            for name, m in models.items():
                xg = x.clone().requires_grad_(True)
                logits = m(xg)
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction=reduction), xg)
                zi, zp = _zero_counts(grad)
                zero[name] = (zero[name][0] + zi, zero[name][1] + zp)
                clean[name].append(logits.detach().argmax(1))
            for src, m in models.items():
                for spec in specs:
                    for e in eps:
                        key = (src, spec.label, e)
                        if e == 0:
                            x_adv = x
                        else:
                            if key not in built:
                                built[key] = build_attack(
                                    spec, m, eps=e, num_classes=10, image_channels=1, seed=seed
                                )
                            x_adv = built[key](x, y).detach()
                        with torch.no_grad():
                            for scorer, ms in models.items():
                                adv.setdefault((*key, scorer), []).append(ms(x_adv).argmax(1))
    for m in models.values():
        m.requires_grad_(True)
    return {
        "clean": {k: torch.cat(v) for k, v in clean.items()},
        "adv": {k: torch.cat(v) for k, v in adv.items()},
        "zero": zero,
    }


class _Scaled(nn.Module):
    def __init__(self, inner: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.scale


def _no_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness with its taps never armed: every clean pass is the harness's own."""
    monkeypatch.setattr(loop_module._Tap, "arm", lambda self, *, want_grad: None)


def _check_against(rec: dict[str, Any], out: Outcomes, ref: dict[str, Any], n: int) -> None:
    assert out.clean.keys() == ref["clean"].keys()
    for k, v in ref["clean"].items():
        assert torch.equal(out.clean[k], v), k
    assert list(out.adv) == list(ref["adv"])  # the same rows, in the same order
    for k, v in ref["adv"].items():
        assert torch.equal(out.adv[k], v), k
    for name, (zi, zp) in ref["zero"].items():
        stats = rec["models"][name]
        assert stats["zero_gradient_images"] == n
        assert stats["zero_gradient_image_fraction"] == zi / n
        assert stats["zero_gradient_pixel_fraction"] == zp / (n * 28 * 28)


def test_sharing_changes_no_output(data, models, monkeypatch: pytest.MonkeyPatch) -> None:
    """FGSM, PGD with and without random start, two models (transfer, correction), eps 0; the
    second model's logits x 30 saturate its softmax, so the gradient statistics and warnings
    have something to show."""
    models = {"baseline": models["baseline"], "winn": _Scaled(models["winn"], 30.0)}
    batches = list(data.test.subset(slice(0, N)).batches(BATCH))
    ref = _unshared(models, batches, ATTACKS, EPS)
    kw: dict[str, Any] = {"dataset": data, "limit": N, "attacks": ATTACKS, "eps": EPS, "batch_size": BATCH}
    shared_out = Outcomes()
    shared = evaluate(models, outcomes=shared_out, **kw)
    _check_against(shared, shared_out, ref, N)
    assert shared["cost"]["clean_shared_images"] == {"baseline": N, "winn": N}
    assert shared["models"]["winn"]["zero_gradient_image_fraction"] > 0.5
    assert any("winn: " in w and "zero input gradient" in w for w in shared["warnings"])
    assert shared["cost"]["clean_time_s"] < shared["cost"]["attack_time_s:fgsm"]

    _no_sharing(monkeypatch)
    plain_out = Outcomes()
    plain = evaluate(models, outcomes=plain_out, **kw)
    _check_against(plain, plain_out, ref, N)
    assert plain["cost"]["clean_shared_images"] == {"baseline": 0, "winn": 0}
    for key in SUMMARY:
        assert shared[key] == plain[key], key
    assert {(c["referee"], c["other"]) for c in shared["correction"]} == {
        ("baseline", "winn"),
        ("winn", "baseline"),
    }


def test_forward_counts_drop_by_the_clean_pass_and_eps0_scoring(data, models) -> None:
    """Per model: the attacks' own forwards (FGSM 1, PGD 3 each per image) and one scoring
    pass of every source's (attack, eps > 0) set. Before sharing it was N more (the clean pass)
    plus 2 sources x 3 attacks x N (scoring the eps-0 'attack', i.e. the clean set again)."""
    rec = evaluate(models, dataset=data, limit=N, attacks=ATTACKS, eps=EPS, batch_size=BATCH)
    own = (1 + 3 + 3) * N
    scoring = 2 * 3 * N
    assert rec["cost"]["forward_images"] == {"baseline": own + scoring, "winn": own + scoring}
    assert rec["cost"]["adversarial_images"] == 2 * 3 * N
    before = own + scoring + N + 2 * 3 * N  # the pre-sharing count (tests/test_attacks.py, issue 12)
    assert (own + scoring) / before < 0.7


def test_without_a_clean_gradient_attack_statistics_are_sampled(data, models) -> None:
    """Random-start PGD and APGD never take the gradient at the clean batch: the statistics
    need an extra pass, run on the first ``gradient_sample`` images (whole batches) and said so;
    APGD's clean-accuracy forward still gives the clean predictions for free."""
    one = {"baseline": models["baseline"]}
    batches = list(data.test.subset(slice(0, N)).batches(BATCH))
    attacks = ["pgd:steps=2", "apgd:steps=2"]
    out = Outcomes()
    rec = evaluate(
        one,
        dataset=data,
        limit=N,
        attacks=attacks,
        eps=[0.1],
        batch_size=BATCH,
        gradient_sample=100,
        outcomes=out,
    )
    assert torch.equal(out.clean["baseline"], _unshared(one, batches, [], [])["clean"]["baseline"])
    sampled = _unshared(one, batches[:2], [], [])  # the first 2 batches: 128 >= 100 images
    stats = rec["models"]["baseline"]
    assert stats["zero_gradient_images"] == 2 * BATCH
    zi, zp = sampled["zero"]["baseline"]
    assert stats["zero_gradient_image_fraction"] == zi / (2 * BATCH)
    assert stats["zero_gradient_pixel_fraction"] == zp / (2 * BATCH * 28 * 28)
    # APGD's first forward is the clean batch (no gradient): the logits are shared on every batch
    assert rec["cost"]["clean_shared_images"] == {"baseline": N}
    full = evaluate(
        one, dataset=data, limit=N, attacks=attacks, eps=[0.1], batch_size=BATCH, gradient_sample=None
    )
    assert full["models"]["baseline"]["zero_gradient_images"] == N
    assert full["results"] == rec["results"]
    extra = full["cost"]["forward_images"]["baseline"] - rec["cost"]["forward_images"]["baseline"]
    assert extra == N - 2 * BATCH  # the sampled run skipped the extra pass after 128 images


def test_inputs_off_the_8bit_grid_fall_back_to_the_own_clean_pass(models) -> None:
    """torchattacks' [-1, 1] -> [0, 1] -> [-1, 1] round trip is exact on the 8-bit grid only;
    elsewhere the attack's forward is not the clean batch, and the harness's own pass runs."""
    x, y = next(load_dataset("sample", data_dir="unused").test.batches(64))
    x = x * 0.9 + 0.0123  # (64, 1, 28, 28), off the grid, inside [-1, 1]
    assert not torch.equal((x * 0.5 + 0.5 - 0.5) / 0.5, x)
    out = Outcomes()
    rec = evaluate(models, dataset=(x, y), attacks=ATTACKS, eps=EPS, batch_size=BATCH, outcomes=out)
    assert rec["cost"]["clean_shared_images"] == {"baseline": 0, "winn": 0}
    _check_against(rec, out, _unshared(models, [(x, y)], ATTACKS, EPS), 64)


def test_zero_gradient_statistic_is_the_batch_mean_gradient_fgsm_uses(data, models) -> None:
    """Documented difference (loop.py): the statistic is the zero pattern of the gradient of
    the batch-mean CE, the one FGSM's sign is taken of; before issue 16 it was the sum's. They
    agree on an unsaturated model; on a saturated one the mean's per-image gradients underflow
    to zero earlier, so more images count as zero-gradient, and exactly those FGSM cannot move."""
    batch = list(data.test.subset(slice(0, N)).batches(N))
    x, y = batch[0]
    plain = {"m": models["baseline"]}
    assert _unshared(plain, batch, [], [])["zero"] == _unshared(plain, batch, [], [], reduction="sum")["zero"]

    saturated = {"m": _Scaled(models["baseline"], 10.0)}
    rec = evaluate(saturated, dataset=data, limit=N, eps=[0.1], batch_size=N)
    mean = _unshared(saturated, batch, [], [])["zero"]["m"]
    total = _unshared(saturated, batch, [], [], reduction="sum")["zero"]["m"]
    stats = rec["models"]["m"]
    assert stats["zero_gradient_image_fraction"] * N == mean[0] > total[0]
    assert stats["zero_gradient_pixel_fraction"] * N * 28 * 28 == mean[1] > total[1]
    # The images whose whole mean gradient is zero are the ones FGSM leaves exactly as they were.
    atk = build_attack("fgsm", saturated["m"], eps=0.1, num_classes=10, image_channels=1)
    unmoved = (atk(x, y) == x).flatten(1).all(1)
    assert int(unmoved.sum()) == mean[0]


@pytest.mark.slow
def test_peers_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/peers.py --smoke runs the three tools and merges ``peers`` into the results."""
    pytest.importorskip("art")
    results = tmp_path / "speed.json"
    results.write_text(json.dumps({"kept": 1}))
    cmd = [
        sys.executable,
        "benchmarks/peers.py",
        "--smoke",
        "--dataset",
        "sample",
        "--attacks",
        "fgsm,pgd40",
        "--threads",
        "1",
    ]
    cmd += ["--work-dir", str(tmp_path / "work"), "--results", str(results)]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    rec = json.loads(results.read_text())
    assert rec["kept"] == 1
    fgsm = rec["peers"]["attacks"]["fgsm"]
    assert fgsm["check"]["identical_counts"] and fgsm["images"] == 100
    assert rec["peers"]["attacks"]["pgd40"]["check"]["harness_equals_bare"]
