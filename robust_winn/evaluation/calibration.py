"""Calibration of a classifier's probabilities: ECE, NLL, Brier score, reliability diagrams.

Issue 14 §2 (not in the WINN paper: the energy-model classifiers that followed it, JEM and its
successors, report calibration beside accuracy). All three scores take the softmax of the
logits, so a model that returns logits (the harness's contract) is scored as it predicts.

- Expected calibration error (Naeini et al. 2015; Guo et al. 2017): the confidences
  max_k p(k|x) are put into ``bins`` equal-width bins of (0, 1]; ECE = sum over bins of
  (n_b / N) * |accuracy_b - mean confidence_b|. 15 bins is Guo et al.'s choice.
- Negative log-likelihood: mean of -log p(y|x), computed from log-softmax (no log(0)).
- Brier score: mean over images of sum_k (p(k|x) - 1[k = y])^2 (Brier 1950, multi-class form;
  0 is perfect, 2 the worst).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import BadValueError
from ..runtime.atomic import figure_png

__all__ = [
    "calibration_metrics",
    "calibration_terms",
    "metrics_from_terms",
    "reliability_bins",
    "reliability_from_terms",
    "summarise_terms",
    "reliability_diagram_png",
]


def calibration_terms(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-image terms every score here is a mean or a binning of: (N, 4) float64 on the CPU.

    Columns: confidence max_k p(k|x), correct (1.0 / 0.0), -log p(y|x), and the Brier term
    sum_k (p(k|x) - 1[k = y])^2. Batches' terms concatenate (``torch.cat``) into the terms of
    the whole set, so a streaming evaluation (the attack harness) keeps 4 numbers per image
    instead of K logits and gets exactly the scores of :func:`calibration_metrics` on the lot.
    """
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise BadValueError(f"logits must be a non-empty (N, K) tensor, got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise BadValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    logits = logits.detach().double()
    labels = labels.to(logits.device).long()
    logp = F.log_softmax(logits, dim=1)  # (N, K)
    probs = logp.exp()
    conf, pred = probs.max(dim=1)  # (N,), (N,)
    onehot = F.one_hot(labels, logits.shape[1]).double()  # (N, K)
    nll = -logp.gather(1, labels[:, None])[:, 0]  # (N,)
    brier = ((probs - onehot) ** 2).sum(dim=1)  # (N,)
    return torch.stack([conf, (pred == labels).double(), nll, brier], dim=1).cpu()  # (N, 4)


def _check_terms(terms: Tensor, bins: int) -> None:
    if terms.dim() != 2 or terms.shape[1] != 4 or terms.shape[0] == 0:
        raise BadValueError(f"terms must be a non-empty (N, 4) tensor, got {tuple(terms.shape)}")
    if bins < 1:
        raise BadValueError(f"bins must be >= 1, got {bins}")


def _bins_of(terms: Tensor, bins: int) -> dict[str, Any]:
    conf, correct = terms[:, 0], terms[:, 1]
    # bin index: ceil(conf * bins) - 1, so that conf = 1 falls in the last bin
    idx = (torch.ceil(conf * bins).long() - 1).clamp(0, bins - 1)  # (N,)
    count = torch.bincount(idx, minlength=bins)  # (bins,)
    conf_sum = torch.bincount(idx, weights=conf, minlength=bins)
    acc_sum = torch.bincount(idx, weights=correct, minlength=bins)
    return {
        "edges": [b / bins for b in range(bins + 1)],
        "confidence": [float(c / n) if n else None for c, n in zip(conf_sum, count, strict=True)],
        "accuracy": [float(a / n) if n else None for a, n in zip(acc_sum, count, strict=True)],
        "count": [int(n) for n in count],
    }


def summarise_terms(terms: Tensor, *, bins: int = 15) -> tuple[dict[str, float], dict[str, Any]]:
    """:func:`metrics_from_terms` and :func:`reliability_from_terms` at once (one binning)."""
    _check_terms(terms, bins)
    n = terms.shape[0]
    rel = _bins_of(terms, bins)
    ece = sum(
        (c / n) * abs(a - p)
        for c, a, p in zip(rel["count"], rel["accuracy"], rel["confidence"], strict=True)
        if c
    )
    mean = terms.mean(dim=0)  # (4,)
    metrics = {
        "ece": float(ece),
        "nll": float(mean[2]),
        "brier": float(mean[3]),
        "accuracy": float(mean[1]),
        "confidence": float(mean[0]),
    }
    return metrics, rel


def metrics_from_terms(terms: Tensor, *, bins: int = 15) -> dict[str, float]:
    """:func:`calibration_metrics` from :func:`calibration_terms` (N, 4), e.g. concatenated batches."""
    return summarise_terms(terms, bins=bins)[0]


def reliability_from_terms(terms: Tensor, *, bins: int = 15) -> dict[str, Any]:
    """:func:`reliability_bins` from :func:`calibration_terms` (N, 4)."""
    _check_terms(terms, bins)
    return _bins_of(terms, bins)


def reliability_bins(logits: Tensor, labels: Tensor, *, bins: int = 15) -> dict[str, Any]:
    """Per-bin mean confidence, accuracy and count over equal-width confidence bins of (0, 1].

    Bin b holds the images whose confidence lies in (b/bins, (b+1)/bins]; a confidence of
    exactly 0 cannot occur (a softmax maximum is at least 1/K). Empty bins have count 0 and
    ``None`` for confidence and accuracy.

    Returns:
        ``{"edges": [bins + 1 floats], "confidence": [...], "accuracy": [...], "count": [...]}``.
    """
    return reliability_from_terms(calibration_terms(logits, labels), bins=bins)


def calibration_metrics(logits: Tensor, labels: Tensor, *, bins: int = 15) -> dict[str, float]:
    """ECE (``bins`` equal-width bins), NLL, Brier score, accuracy and mean confidence.

    Args:
        logits: (N, K) unnormalised scores; the softmax is taken here.
        labels: (N,) integer classes.
        bins: confidence bins of the ECE (Guo et al. 2017 use 15).

    Returns:
        ``{"ece", "nll", "brier", "accuracy", "confidence"}``, plain floats.
    """
    return metrics_from_terms(calibration_terms(logits, labels), bins=bins)


def reliability_diagram_png(curves: Mapping[str, Mapping[str, Any]]) -> bytes:
    """A reliability diagram as PNG bytes: accuracy against confidence, one line per label.

    Args:
        curves: ``{label: reliability_bins(...)}`` (e.g. ``"winn clean"``, ``"winn fgsm 0.125"``);
            optionally with an ``"ece"`` entry shown in the legend.
    """
    if not curves:
        raise BadValueError("no reliability curve to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for label, rel in curves.items():
        pts = [(c, a) for c, a, n in zip(rel["confidence"], rel["accuracy"], rel["count"], strict=True) if n]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        name = f"{label} (ECE {100 * rel['ece']:.2f}%)" if "ece" in rel else label
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    bins = len(next(iter(curves.values()))["edges"]) - 1
    ax.set_title(f"Reliability diagram ({bins} equal-width bins)")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return figure_png(fig, dpi=120)
