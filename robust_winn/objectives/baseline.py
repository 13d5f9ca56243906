"""The baseline: cross-entropy alone, the same-architecture reference of paper Table 2 (§5.6)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .base import Objective, register_objective
from .losses import cross_entropy

__all__ = ["BaselineObjective"]


@register_objective("baseline")
class BaselineObjective(Objective):
    """Cross-entropy only (the critic head is never trained)."""

    terms = ("loss", "ce")
    averaged = ("loss", "ce")

    def describe(self) -> dict[str, Any]:
        """The record's objective entry."""
        return {"name": "baseline"}

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``loss`` = ``ce`` = mean cross-entropy of the classifier on ``(x, y)``."""
        ce = cross_entropy(self.ctx.fwd(x), y)
        return {"loss": ce, "ce": ce}
