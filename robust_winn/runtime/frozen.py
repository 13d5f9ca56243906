"""Eval mode with frozen parameters for a block of code (synthesis, attacks).

Gradient ascent in image space (paper §3, REFERENCE §1.6/§3.6) and adversarial attacks need
gradients w.r.t. the images only; with the parameters frozen, backward skips the weight
gradients. Each model's train/eval mode and ``requires_grad`` flags are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["frozen_eval"]


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
