"""Pure tensor metrics for classification under attack (paper §5.6, Tables 3-4; REFERENCE §2).

Every function takes predicted labels and true labels as 1-D integer tensors; nothing here
touches a model. "Wrong" always means ``prediction != true label``.

Correction rates follow the released FGSM script exactly (REFERENCE §2): adversarial examples
are made on a *referee* model A and classified by A and by another model B.

- ``N``: number of examples;
- ``N_A``: examples A gets wrong;
- ``N_AB``: examples A *and* B get wrong;
- adversarial error of A = ``N_A / N``;
- correction rate by B = ``#(B right and A wrong) / N_A = 1 - N_AB / N_A``.

With ``N_A = 0`` the correction rate is undefined (0 / 0) and is reported as ``None``
(JSON ``null``), never as a number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

__all__ = ["CorrectionRates", "correction_rates", "error_rate", "wrong_mask", "worst_case_error"]


def _check_pair(pred: Tensor, labels: Tensor) -> None:
    if pred.dim() != 1 or pred.shape != labels.shape:
        raise ValueError(
            f"predictions and labels must be 1-D of equal length, got {tuple(pred.shape)} "
            f"and {tuple(labels.shape)}"
        )


def wrong_mask(pred: Tensor, labels: Tensor) -> Tensor:
    """Boolean (N,) mask of misclassified examples (``pred != labels``)."""
    _check_pair(pred, labels)
    return pred.to(labels.device) != labels  # (N,)


def error_rate(pred: Tensor, labels: Tensor) -> float:
    """Top-1 error ``#(pred != labels) / N`` (REFERENCE §1.8); ``nan`` for N = 0."""
    wrong = wrong_mask(pred, labels)
    return int(wrong.sum()) / wrong.numel() if wrong.numel() else float("nan")


@dataclass(frozen=True)
class CorrectionRates:
    """Counts and rates of REFERENCE §2 for one referee A and one other model B."""

    n: int  # examples classified
    n_a: int  # examples the referee A gets wrong
    n_ab: int  # examples both A and B get wrong

    @property
    def adversarial_error(self) -> float:
        """``N_A / N``: the referee's error on its own adversarial examples."""
        return self.n_a / self.n if self.n else float("nan")

    @property
    def correction_rate(self) -> float | None:
        """``1 - N_AB / N_A``: share of A's errors that B classifies correctly; None if N_A = 0."""
        return 1.0 - self.n_ab / self.n_a if self.n_a else None

    def to_dict(self) -> dict[str, float | int | None]:
        """Counts plus both rates, JSON-ready."""
        return {
            **asdict(self),
            "adversarial_error": self.adversarial_error,
            "correction_rate": self.correction_rate,
        }


def correction_rates(pred_a: Tensor, pred_b: Tensor, labels: Tensor) -> CorrectionRates:
    """Correction rate of model B on examples made against referee A (paper Tab. 3, REFERENCE §2).

    Args:
        pred_a: (N,) predictions of the referee A on the adversarial set made on A.
        pred_b: (N,) predictions of B on the *same* adversarial set.
        labels: (N,) true labels.

    Returns:
        N, N_A (A wrong), N_AB (A and B wrong); ``.adversarial_error = N_A / N`` and
        ``.correction_rate = 1 - N_AB / N_A`` (``None`` when N_A = 0).
    """
    wrong_a = wrong_mask(pred_a, labels)  # (N,)
    wrong_b = wrong_mask(pred_b, labels)  # (N,)
    return CorrectionRates(n=int(labels.numel()), n_a=int(wrong_a.sum()), n_ab=int((wrong_a & wrong_b).sum()))


def worst_case_error(broken: Tensor, clean_wrong: Tensor | None = None) -> float:
    """Per-example worst case (RobustBench's robust error when ``clean_wrong`` is given).

    An image counts as broken if its clean prediction is wrong *or* any attack's example of it
    is misclassified (RobustBench, Croce et al. 2021): a clean mistake that an attack happens
    to flip to the right class is not robust. Without ``clean_wrong`` only the attacks count.

    Args:
        broken: (n_attacks, N) boolean, ``True`` where that attack's example is misclassified.
        clean_wrong: (N,) boolean, ``True`` where the clean prediction is wrong.

    Returns:
        Mean over the N images (``nan`` for N = 0).
    """
    if broken.dim() != 2 or broken.dtype != torch.bool:
        raise ValueError("broken must be a (n_attacks, N) boolean tensor")
    any_broken = broken.any(dim=0)  # (N,)
    if clean_wrong is not None:
        if clean_wrong.shape != any_broken.shape or clean_wrong.dtype != torch.bool:
            raise ValueError("clean_wrong must be an (N,) boolean tensor")
        any_broken = any_broken | clean_wrong
    return int(any_broken.sum()) / any_broken.numel() if any_broken.numel() else float("nan")
