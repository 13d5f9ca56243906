"""Eval mode with frozen parameters for a block of code (synthesis, attacks).

Gradient ascent in image space (paper §3, REFERENCE §1.6/§3.6) and adversarial attacks need
gradients w.r.t. the images only; with the parameters frozen, backward skips the weight
gradients. Each model's train/eval mode and ``requires_grad`` flags are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["batchnorm_eval", "frozen_eval", "has_batchnorm"]


@contextmanager
def frozen_eval(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode with ``requires_grad=False``; restore both on exit."""
    saved = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in models]
    for m in models:
        m.eval().requires_grad_(False)
    try:
        yield
    finally:
        for m, training, flags in saved:
            m.train(training)
            for p, flag in zip(m.parameters(), flags, strict=True):
                p.requires_grad_(flag)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` holds a BatchNorm layer (whose train mode mixes a batch's statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@contextmanager
def batchnorm_eval(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``model`` in eval mode (running statistics, none updated); restored."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.training for m in layers]
    for m in layers:
        m.eval()
    try:
        yield
    finally:
        for m, training in zip(layers, saved, strict=True):
            m.train(training)
