"""Invariants every registered attack must keep (attacks/registry.py's conventions).

On a tiny trained classifier and a dozen sample images, for every entry of
``list_attacks()`` (an attack registered later is covered without editing this file):

* the examples stay in the eps-ball and in the pixel range: the model sees [-1, 1], so the
  [0, 1] ball of radius eps is 2 * eps wide there and the range is [-1, 1];
* eps = 0 changes no image;
* the adversarial error is at least the clean error, and the attack breaks at least one image.

Budgets are cut through ``parse_attack`` parameters (3 steps, 100 queries), so the file runs
in about a second; AutoAttack at eps = 0 on correctly classified images (~3 s) is slow-marked.
"""

from __future__ import annotations

import pytest
import torch
from custom_model import load_trained
from torch import nn

from robust_winn.attacks import build_attack, list_attacks, parse_attack
from robust_winn.attacks.registry import AttackKind, AttackSpec, attack_params
from robust_winn.data.datasets import load_dataset

SMALL = {"steps": 3, "queries": 100}  # iteration budgets by parameter name
EPS = 0.2  # Square's 100 queries break 6 of the 9 correct images at 0.2, none at 0.1
# AutoAttack runs its members in turn on the images still classified correctly: at eps = 0.3
# APGD breaks all of them and FAB-T and Square (5,000 queries) never run; at 0.1 they take
# seconds. Every member that is registered alone is checked at EPS.
EPS_BY_KIND = {AttackKind.ENSEMBLE: 0.3}
ATTACKS = sorted(list_attacks())


def _cheap(name: str) -> AttackSpec:
    """``name`` with every iteration budget it takes cut to a few steps."""
    params = {k: SMALL[k] for k, p in attack_params(name).items() if k in SMALL and p.kind is int}
    return parse_attack(AttackSpec(name, params))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return load_trained(0)


@pytest.fixture(scope="module")
def images(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """12 test images in [-1, 1]: the first 3 the model gets wrong and the first 9 it gets right."""
    x, y = next(load_dataset("sample", data_dir="unused").test.batches(200))
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    idx = torch.cat([wrong.nonzero().flatten()[:3], (~wrong).nonzero().flatten()[:9]])
    assert idx.numel() == 12
    return x[idx], y[idx]


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def _attack(spec: AttackSpec, model: nn.Module, eps: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    atk = build_attack(spec, model, eps=eps, num_classes=10, image_channels=1, seed=0)
    return atk(x.clone(), y.clone())


def test_every_attack_is_covered() -> None:
    assert {"fgsm", "pgd", "apgd", "square", "autoattack"} <= set(list_attacks())


@pytest.mark.parametrize("name", ATTACKS)
def test_examples_stay_in_the_eps_ball_and_the_pixel_range(name: str, model, images) -> None:
    x, y = images
    spec = _cheap(name)
    eps = EPS_BY_KIND.get(spec.kind, EPS)
    adv = _attack(spec, model, eps, x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert (adv - x).abs().max() <= 2 * eps + 1e-6  # [0, 1] radius eps = 2 * eps in model units
    assert adv.min() >= -1 - 1e-6 and adv.max() <= 1 + 1e-6


@pytest.mark.parametrize("name", ATTACKS)
def test_adversarial_error_is_at_least_the_clean_error(name: str, model, images) -> None:
    x, y = images
    spec = _cheap(name)
    eps = EPS_BY_KIND.get(spec.kind, EPS)
    clean = _error(model, x, y)
    assert clean == 3 / 12  # the fixture's mix
    adv = _error(model, _attack(spec, model, eps, x, y), y)
    assert adv >= clean
    assert adv > clean, f"{spec.label} at eps {eps} broke none of 9 correctly classified images"


@pytest.mark.parametrize("name", ATTACKS)
def test_eps_zero_changes_nothing(name: str, model, images) -> None:
    x, y = images
    spec = _cheap(name)
    if spec.kind is AttackKind.ENSEMBLE:  # see the slow test below
        x, y = x[:3], y[:3]  # the three misclassified images: an ensemble leaves them as they are
    adv = _attack(spec, model, 0.0, x, y)
    torch.testing.assert_close(adv, x, atol=1e-6, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ATTACKS if parse_attack(n).kind is AttackKind.ENSEMBLE])
def test_eps_zero_changes_nothing_for_ensembles_on_correct_images(name: str, model, images) -> None:
    """Nothing breaks at eps 0, so every member runs its full budget on every correctly
    classified image (AutoAttack: APGD-CE, APGD-T, FAB-T, Square 5,000 queries; ~3 s)."""
    x, y = images
    adv = _attack(_cheap(name), model, 0.0, x[3:5], y[3:5])
    torch.testing.assert_close(adv, x[3:5], atol=1e-6, rtol=0)
