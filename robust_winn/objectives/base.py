"""What a supervised training objective is, and the registry of them (DESIGN §5.1).

A supervised objective turns one batch of labelled positives into named loss terms; the
trainer (:mod:`robust_winn.training.supervised`) owns everything else: the model, the
optimizer, data order, collectives, checkpoints and records. An objective may also keep state
that survives a resume (WINN's pool of pseudo-negatives) and do work once per epoch (WINN's
synthesis). A new training method is one :class:`Objective` subclass plus its registration::

    @register_objective("my-method")
    class MyObjective(Objective):
        terms = ("loss", "ce", "my_term")
        def loss_terms(self, x, y): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..config import TrainConfig
from ..data import DataSplits
from ..models import Introspective
from ..registry import Registry
from ..runtime.distributed import DistContext
from ..runtime.fastpaths import FastPaths

__all__ = ["Objective", "ObjectiveContext", "create_objective", "list_objectives", "register_objective"]


@dataclass
class ObjectiveContext:
    """What an objective works with, built once by the trainer.

    ``fwd`` is the model's forward with the fast paths (the model itself by default),
    ``gen`` the run's shared generator (same on every rank: order, tau, z), ``local_gen`` the
    rank's own generator (pool picks, GP weights; ``gen`` itself in one process) and ``cost``
    the run's per-phase cost counters, which an objective may add to.
    """

    cfg: TrainConfig
    data: DataSplits
    model: Introspective
    fwd: Introspective
    fast: FastPaths
    device: torch.device
    dist: DistContext
    gen: torch.Generator
    local_gen: torch.Generator
    cost: dict[str, float]


class Objective:
    """One supervised training method: named loss terms per batch, optional per-epoch work."""

    terms: ClassVar[tuple[str, ...]] = ("loss",)  # names loss_terms returns; "loss" is minimised
    averaged: ClassVar[tuple[str, ...]] = ("loss",)  # the terms reported as epoch means

    def __init__(self, ctx: ObjectiveContext) -> None:
        self.ctx = ctx

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Scalar terms (with ``"loss"`` the one to minimise) for positives ``x`` labelled ``y``."""
        raise TypeError(f"{type(self).__name__} must implement loss_terms()")

    def describe(self) -> dict[str, Any]:
        """What the record should say about this objective (its name and any choices made)."""
        return {"name": type(self).__name__}

    def end_epoch(self, steps: dict[str, list[float]]) -> dict[str, float]:
        """Work after an epoch's steps (``steps``: each term's global value per step); metrics."""
        del steps
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """State that a resume must restore (None: none)."""
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict`'s state."""
        del state


_OBJECTIVES: Registry[type[Objective]] = Registry("method")


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator registering an objective as ``robust-winn train --method NAME``."""
    return _OBJECTIVES.register(name)


def list_objectives() -> dict[str, str]:
    """Registered objective (method) names -> one-line description."""
    return _OBJECTIVES.describe()


def create_objective(name: str, ctx: ObjectiveContext) -> Objective:
    """The registered objective ``name`` for this run (UnknownNameError lists the choices)."""
    return _OBJECTIVES[name](ctx)
