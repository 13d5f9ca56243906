"""Unsupervised pseudo-negative synthesis: gradient *ascent* on f (Alg. 1; REFERENCE §3.5-3.7).

Images are split into batches of ``batch_size`` (100 in the code). For each batch a threshold
tau ~ U[tau_min, tau_max] is drawn, Adam (lr 0.01, betas (0.9, 0.999) -- TF's default beta2; the
paper says 0.99) starts from fresh moments, and every step maximises the batch mean of f and
clips the images to [-1, 1]. The batch stops as soon as its mean f >= tau (checked before each
step, so a batch already above tau takes no step), or after ``max_steps`` steps.

This is the unsupervised counterpart of :class:`~robust_winn.synthesis.PseudoNegativeSampler`
(which drives |mean f - tau| to zero plus a class term); both run on the same image-space optimiser
(:class:`~robust_winn.synthesis.sampler.ImageSynthesizer`), so moments are per image and exactly
reset per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .sampler import Evaluation, ImageSynthesizer, Objective

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


class AscentSampler(ImageSynthesizer):
    """Batched early-stopping gradient ascent on the critic f (REFERENCE §3.6 step 4).

    The stop rule is checked on the batch's images before each step, the final ones included
    (``final_evaluation``): a batch that reaches tau with its last allowed step counts as reached.

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
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, adam_eps=adam_eps, max_steps=max_steps)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size

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
        outs, steps, hit, taus, fs = [], [], 0, [], []
        for start in range(0, x0.shape[0], self.batch_size):
            tau = tau_min + (tau_max - tau_min) * float(torch.rand((), generator=generator))
            out = self.run(x0[start : start + self.batch_size], _mean_f_reaches(f, tau), (model,))
            outs.append(out.images)
            steps.append(out.steps)
            hit += int(not bool(out.converged.all()))
            taus.append(tau)
            fs.append(out.value)
        if not outs:
            return x0.detach().clone(), AscentStats(0, 0.0, 0.0, float("nan"), [])
        x = torch.cat(outs)
        nb = len(outs)
        sizes = [o.shape[0] for o in outs]
        mean_f = sum(v * s for v, s in zip(fs, sizes, strict=True)) / sum(sizes)
        image_steps = sum(n * s for n, s in zip(steps, sizes, strict=True))
        return x, AscentStats(nb, sum(steps) / nb, hit / nb, mean_f, taus, image_steps)


def _mean_f_reaches(f: Callable[[Tensor], Tensor], tau: float) -> Objective:
    """Objective of one batch: maximise its mean f; the whole batch is done once mean f >= tau."""

    def objective(x: Tensor, idx: Tensor | None) -> Evaluation:
        del idx  # a batch stops as a whole: every image stays active until then
        mean_f = f(x).mean()
        value = float(mean_f.detach())
        done = torch.full((x.shape[0],), value >= tau, dtype=torch.bool, device=x.device)
        return Evaluation(-mean_f, done, value)  # minimise -mean f

    return objective
