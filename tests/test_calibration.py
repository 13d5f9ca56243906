"""Calibration metrics against hand-computed cases (issue 14 §2, §5)."""

from __future__ import annotations

import math

import pytest
import torch

from robust_winn.errors import BadValueError
from robust_winn.evaluation.calibration import (
    calibration_metrics,
    calibration_terms,
    metrics_from_terms,
    reliability_bins,
    reliability_diagram_png,
    reliability_from_terms,
)


def _logits_with_confidence(conf: float, k: int, n: int, pred: int = 0) -> torch.Tensor:
    """n rows of K logits whose softmax puts ``conf`` on class ``pred``, the rest spread evenly."""
    rest = (1 - conf) / (k - 1)
    p = torch.full((n, k), rest, dtype=torch.float64)
    p[:, pred] = conf
    return p.log()


def test_perfectly_calibrated_toy_has_zero_ece() -> None:
    # 10 images at confidence 0.8 of which 8 are right: accuracy equals confidence in the bin
    logits = _logits_with_confidence(0.8, k=4, n=10)
    labels = torch.tensor([0] * 8 + [1] * 2)
    m = calibration_metrics(logits, labels)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["confidence"] == pytest.approx(0.8)


def test_ece_of_an_overconfident_toy_is_the_gap() -> None:
    # confidence 0.9, accuracy 0.5 in one bin -> ECE 0.4; a second bin perfectly calibrated
    # (confidence 0.6, 3 of 5 right) adds nothing, weights 10/15 and 5/15
    a = _logits_with_confidence(0.9, k=3, n=10)
    b = _logits_with_confidence(0.6, k=3, n=5)
    logits = torch.cat([a, b])
    labels = torch.tensor([0] * 5 + [1] * 5 + [0] * 3 + [2] * 2)
    assert calibration_metrics(logits, labels)["ece"] == pytest.approx(10 / 15 * 0.4)


def test_nll_and_brier_by_hand() -> None:
    logits = _logits_with_confidence(0.7, k=2, n=2)  # p = (0.7, 0.3) for both
    labels = torch.tensor([0, 1])
    m = calibration_metrics(logits, labels)
    assert m["nll"] == pytest.approx((-math.log(0.7) - math.log(0.3)) / 2)
    # right: (0.3^2 + 0.3^2); wrong: (0.7^2 + 0.7^2)
    assert m["brier"] == pytest.approx((2 * 0.09 + 2 * 0.49) / 2)


def test_confident_and_right_is_perfect() -> None:
    logits = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    m = calibration_metrics(logits, torch.tensor([0, 1]))
    assert m["ece"] < 1e-12 and m["nll"] < 1e-12 and m["brier"] < 1e-12


def test_bins_edges_and_confidence_one_lands_in_last_bin() -> None:
    rel = reliability_bins(torch.tensor([[100.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]), bins=4)
    assert rel["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert rel["count"] == [0, 1, 0, 1]  # confidence 0.5 -> (0.25, 0.5]; 1.0 -> last bin
    assert rel["accuracy"][0] is None and rel["accuracy"][3] == 1.0


def test_bad_shapes_are_user_errors() -> None:
    with pytest.raises(BadValueError, match="labels must have shape"):
        calibration_metrics(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(BadValueError, match="non-empty"):
        calibration_metrics(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(BadValueError, match="bins"):
        calibration_metrics(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), bins=0)


def test_reliability_diagram_is_a_png() -> None:
    logits = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(50) % 3
    rel = {**reliability_bins(logits, labels), "ece": calibration_metrics(logits, labels)["ece"]}
    assert reliability_diagram_png({"clean": rel})[:8] == b"\x89PNG\r\n\x1a\n"


def test_batch_terms_concatenate_to_the_whole_sets_scores() -> None:
    # the attack harness streams: terms of batches of 7, concatenated, give the one-shot scores
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(50, 5, generator=g)
    labels = torch.randint(0, 5, (50,), generator=g)
    terms = torch.cat([calibration_terms(logits[i : i + 7], labels[i : i + 7]) for i in range(0, 50, 7)])
    assert terms.shape == (50, 4)
    whole = calibration_metrics(logits, labels)
    streamed = metrics_from_terms(terms)
    assert streamed.keys() == whole.keys()
    for k in whole:
        assert streamed[k] == pytest.approx(whole[k], rel=1e-12, abs=1e-15), k
    assert reliability_from_terms(terms) == reliability_bins(logits, labels)


def test_terms_reject_a_wrong_shape() -> None:
    with pytest.raises(BadValueError, match=r"\(N, 4\)"):
        metrics_from_terms(torch.zeros(3, 2))
    with pytest.raises(BadValueError, match="non-empty"):
        reliability_from_terms(torch.zeros(0, 4))
