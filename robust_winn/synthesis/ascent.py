"""Unsupervised pseudo-negative synthesis: gradient *ascent* on f (Alg. 1; REFERENCE §3.5-3.7).

Images are split into batches of ``batch_size`` (100 in the code). For each batch a threshold
tau ~ U[tau_min, tau_max] is drawn, Adam (lr 0.01, betas (0.9, 0.999) -- TF's default beta2; the
paper says 0.99) starts from fresh moments, and every step maximises the batch mean of f and
clips the images to [-1, 1]. The batch stops as soon as its mean f >= tau (checked before each
step, so a batch already above tau takes no step), or after ``max_steps`` steps.

This is the unsupervised counterpart of :class:`~robust_winn.synthesis.PseudoNegativeSampler`
(which drives |mean f - tau| to zero plus a class term); the Adam update is the same hand-written
one so that moments are per image and exactly reset per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..runtime.frozen import frozen_eval

__all__ = ["AscentSampler", "AscentStats", "critic_fn"]


def critic_fn(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """f(x) as (N,) from a network with one output per image ((N, 1) or (N,))."""

    def f(x: Tensor) -> Tensor:
        out = model(x)
        return out.reshape(out.shape[0], -1)[:, 0] if out.dim() > 1 else out

    return f


@dataclass
class AscentStats:
    """What one synthesis call did (aggregated over its batches)."""

    batches: int  # number of batches synthesised
    mean_steps: float  # mean Adam steps per batch
    max_steps_hit: float  # share of batches that ran out of steps before reaching tau
    mean_f: float  # mean f of the returned images
    taus: list[float]  # the threshold drawn for each batch
    image_steps: int = 0  # sum over batches of Adam steps x images: forward+backward image passes


class AscentSampler:
    """Batched early-stopping gradient ascent on the critic f (REFERENCE §3.6 step 4).

    Args:
        lr: Adam learning rate on images (code 0.01).
        beta1, beta2: Adam betas (code 0.9, 0.999).
        adam_eps: Adam epsilon (TF default 1e-8).
        max_steps: step cap per batch (code 2000).
        batch_size: images per batch, each batch with its own tau and fresh Adam (code 100).
    """

    def __init__(
        self,
        *,
        lr: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        adam_eps: float = 1e-8,
        max_steps: int = 2000,
        batch_size: int = 100,
    ) -> None:
        if max_steps < 0:
            raise ValueError("max_steps must be >= 0")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lr, self.beta1, self.beta2, self.adam_eps = lr, beta1, beta2, adam_eps
        self.max_steps, self.batch_size = max_steps, batch_size

    def synthesize(
        self,
        model: nn.Module,
        x0: Tensor,
        *,
        tau_min: float,
        tau_max: float,
        generator: torch.Generator,
    ) -> tuple[Tensor, AscentStats]:
        """Push ``x0`` (N, C, H, W) up f until each batch's mean f >= its tau.

        Args:
            model: network whose single output is f(x); set to eval with frozen parameters
                during synthesis and restored afterwards.
            x0: initial images in [-1, 1], on the model's device.
            tau_min, tau_max: range of the per-batch threshold (from f+ on the positives).
            generator: CPU RNG for the thresholds.

        Returns:
            (images in [-1, 1] on x0's device, stats).
        """
        if tau_max < tau_min:
            raise ValueError(f"tau_max ({tau_max}) < tau_min ({tau_min})")
        f = critic_fn(model)
        with frozen_eval(model):
            outs, steps, hit, taus, fs = [], [], 0, [], []
            for start in range(0, x0.shape[0], self.batch_size):
                tau = tau_min + (tau_max - tau_min) * float(torch.rand((), generator=generator))
                x, n_steps, reached, f_end = self._batch(f, x0[start : start + self.batch_size], tau)
                outs.append(x)
                steps.append(n_steps)
                hit += int(not reached)
                taus.append(tau)
                fs.append(f_end)
        if not outs:
            return x0.detach().clone(), AscentStats(0, 0.0, 0.0, float("nan"), [])
        x = torch.cat(outs)
        nb = len(outs)
        sizes = [o.shape[0] for o in outs]
        mean_f = sum(v * s for v, s in zip(fs, sizes, strict=True)) / sum(sizes)
        image_steps = sum(n * s for n, s in zip(steps, sizes, strict=True))
        return x, AscentStats(nb, sum(steps) / nb, hit / nb, mean_f, taus, image_steps)

    def _batch(
        self, f: Callable[[Tensor], Tensor], x0: Tensor, tau: float
    ) -> tuple[Tensor, int, bool, float]:
        """Ascent on one batch; returns (images, steps run, reached tau, final batch mean f)."""
        x = x0.detach().clone().clamp_(-1, 1)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        step = 0
        while True:
            xa = x.detach().requires_grad_(True)
            mean_f = f(xa).mean()
            value = float(mean_f.detach())
            if value >= tau:
                return x, step, True, value
            if step >= self.max_steps:
                return x, step, False, value
            (g,) = torch.autograd.grad(-mean_f, xa)  # minimise -mean f
            step += 1
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v / (1 - self.beta2**step)).sqrt_().add_(self.adam_eps)
            x.addcdiv_(m, denom, value=-self.lr / (1 - self.beta1**step)).clamp_(-1, 1)
