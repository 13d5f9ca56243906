"""Metrics of REFERENCE §2 against hand computations."""

import math

import pytest
import torch

from robust_winn.evaluation.metrics import correction_rates, error_rate, worst_case_error


def t(*v: int) -> torch.Tensor:
    return torch.tensor(v)


def test_error_rate_hand_computed() -> None:
    assert error_rate(t(0, 1, 2, 3), t(0, 1, 0, 0)) == 0.5
    assert error_rate(t(5), t(5)) == 0.0
    assert math.isnan(error_rate(t(), t()))


def test_correction_rates_hand_computed() -> None:
    labels = t(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    # referee A wrong on 0, 1, 2, 3 (N_A = 4); B also wrong on 1 and 3 (N_AB = 2) and on 9
    pred_a = t(9, 0, 0, 0, 4, 5, 6, 7, 8, 9)
    pred_b = t(0, 2, 2, 1, 4, 5, 6, 7, 8, 0)
    cr = correction_rates(pred_a, pred_b, labels)
    assert (cr.n, cr.n_a, cr.n_ab) == (10, 4, 2)
    assert cr.adversarial_error == pytest.approx(0.4)
    assert cr.correction_rate == pytest.approx(0.5)  # B right on 2 of A's 4 errors
    d = cr.to_dict()
    assert d["n_a"] == 4 and d["correction_rate"] == pytest.approx(0.5)


def test_correction_rate_undefined_when_referee_never_wrong() -> None:
    labels = t(0, 1, 2)
    cr = correction_rates(labels.clone(), t(1, 1, 1), labels)
    assert (cr.n_a, cr.n_ab) == (0, 0)
    assert cr.adversarial_error == 0.0
    assert cr.correction_rate is None
    assert cr.to_dict()["correction_rate"] is None


def test_correction_rate_is_zero_when_b_repeats_every_error() -> None:
    labels = t(0, 1, 2, 3)
    pred = t(1, 1, 0, 3)
    assert correction_rates(pred, pred, labels).correction_rate == 0.0


def test_worst_case_counts_an_image_once() -> None:
    broken = torch.tensor([[True, False, False, True], [True, True, False, False]])
    assert worst_case_error(broken) == 0.75


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="1-D"):
        correction_rates(t(0, 1), t(0), t(0, 1))


def test_worst_case_counts_a_clean_mistake_that_an_attack_flips_to_correct() -> None:
    """RobustBench's robust error: clean wrong OR any attack broke it."""
    broken = torch.tensor([[False, True, False, False]])  # FGSM: image 0's example is right
    clean_wrong = torch.tensor([True, False, False, False])  # ... but image 0 was wrong clean
    assert worst_case_error(broken) == 0.25  # the attacks-only convention misses it
    assert worst_case_error(broken, clean_wrong) == 0.5
    with pytest.raises(ValueError):
        worst_case_error(broken, torch.tensor([True]))
