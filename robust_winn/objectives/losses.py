"""Losses as pure tensor functions (REFERENCE §1.4, paper §5.6 and Algorithm 1).

Supervised WINN:
    L = CE(logits(x+), y) + alpha * [ mean f(x-) - mean f(x+) + lambda * GP ]
    GP = mean_i (||grad_x f(x_hat_i)||_2 - 1)^2,  x_hat_i = e_i x+_i + (1 - e_i) x-_i,  e_i ~ U[0, 1]
with batch means, alpha = 0.01 and lambda = 10 as in the released code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cross_entropy",
    "wasserstein_loss",
    "gradient_penalty",
    "WinnLoss",
    "winn_supervised_loss",
]


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean softmax cross-entropy over the batch."""
    return F.cross_entropy(logits, labels)


def wasserstein_loss(f_pos: Tensor, f_neg: Tensor) -> Tensor:
    """Critic's Wasserstein term mean f(x-) - mean f(x+) (minimised: positives up)."""
    return f_neg.mean() - f_pos.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    x_pos: Tensor,
    x_neg: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty on per-sample interpolates (Gulrajani et al. 2017; REFERENCE §1.4).

    Args:
        critic: maps (N, C, H, W) images to (N,) scalars f(x).
        x_pos, x_neg: (N, C, H, W) positives and pseudo-negatives, paired by index.
        generator: RNG for the interpolation weights (one per sample).

    Returns:
        Scalar mean over samples of (||grad_x f(x_hat)||_2 - 1)^2, differentiable (create_graph).
    """
    n = x_pos.shape[0]
    eps = torch.rand(n, 1, 1, 1, generator=generator).to(x_pos)  # (N, 1, 1, 1)
    x_hat = (eps * x_pos + (1 - eps) * x_neg).detach().requires_grad_(True)
    f_hat = critic(x_hat)  # (N,)
    (grad,) = torch.autograd.grad(f_hat.sum(), x_hat, create_graph=True)  # (N, C, H, W)
    norms = grad.flatten(1).norm(2, dim=1)  # (N,)
    return ((norms - 1.0) ** 2).mean()


@dataclass
class WinnLoss:
    """The total loss and its parts (parts detached, for logging)."""

    total: Tensor
    ce: Tensor
    wasserstein: Tensor
    gp: Tensor
    f_pos_mean: Tensor


def winn_supervised_loss(
    logits_pos: Tensor,
    f_pos: Tensor,
    f_neg: Tensor,
    gp: Tensor,
    labels: Tensor,
    *,
    alpha: float = 0.01,
    gp_lambda: float = 10.0,
) -> WinnLoss:
    """CE on positives + alpha * (Wasserstein term + lambda * GP) (paper §5.6, REFERENCE §1.4).

    Pseudo-negatives enter only through the critic terms: no CE on negatives.
    """
    ce = cross_entropy(logits_pos, labels)
    w = wasserstein_loss(f_pos, f_neg)
    total = ce + alpha * (w + gp_lambda * gp)
    return WinnLoss(total, ce.detach(), w.detach(), gp.detach(), f_pos.detach().mean())
