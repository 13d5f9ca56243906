"""Pseudo-negative synthesis by Adam in image space (paper §4.1, REFERENCE §1.6).

For each group g of images (in the supervised code: the 100 images of one class) a threshold
tau_g is drawn, and the images minimise

    |mean_{i in g} f(x_i) - tau_g| + ce_weight * mean_{i in g} CE(logits(x_i), c_i)

with Adam, clipping to [-1, 1] after each step, until the gap is at most ``tol`` or
``max_steps`` is reached. All groups run in one batched pass (DESIGN §4); a finished group or
image is frozen and drops out of the forward pass. The gradient an image receives is the same
as when its group runs alone (losses are summed over groups, averaged within a group).

Adam runs here on the images' own moment buffers, fresh for every call. The released code
shares one Adam instance across all synthesis batches and epochs, so that an image's first
step used moments left by *other* images; that coupling is an artefact of the TF graph and is
not reproduced (noted in README "Deviations").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import StopRule
from ..models.introspective import Introspective
from ..runtime.frozen import frozen_eval

__all__ = ["PseudoNegativeSampler", "SynthesisStats"]


@dataclass
class SynthesisStats:
    """What one synthesis pass did."""

    steps: int  # ascent steps run (max over groups)
    image_steps: int  # sum over steps of images updated (the work done)
    converged: float  # share of images whose group (or self) met the tolerance
    final_gap: float  # mean |f - tau| gap at the end (per group or per image)


class PseudoNegativeSampler:
    """Batched, early-stopping image-space synthesis for an :class:`Introspective` model."""

    def __init__(
        self,
        *,
        lr: float = 0.02,
        beta1: float = 0.9,
        beta2: float = 0.9,
        adam_eps: float = 1e-8,
        max_steps: int = 2000,
        tol: float = 1e-3,
        ce_weight: float = 0.5,
        stop_rule: StopRule = StopRule.BATCH_MEAN,
    ) -> None:
        if max_steps < 0:
            raise ValueError("max_steps must be >= 0")
        self.lr, self.beta1, self.beta2, self.adam_eps = lr, beta1, beta2, adam_eps
        self.max_steps, self.tol, self.ce_weight = max_steps, tol, ce_weight
        self.stop_rule = StopRule(stop_rule)

    def _gaps(
        self, f: Tensor, ga: Tensor, taus: Tensor, group_size: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return (objective's gap term, per-image 'done' mask) for the active images."""
        if self.stop_rule is StopRule.BATCH_MEAN:
            means = torch.zeros_like(taus).index_add_(0, ga, f) / group_size  # (G,)
            gap = (means - taus).abs()  # (G,)
            return gap.sum(), gap[ga] <= self.tol
        gap_i = (f - taus[ga]).abs()  # (Na,)
        return (gap_i / group_size[ga]).sum(), gap_i <= self.tol

    def _adam(self, x: Tensor, m: Tensor, v: Tensor, g: Tensor, step: int) -> None:
        """One in-place Adam step on images x with moments m, v, then clip to [-1, 1]."""
        m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        denom = (v / (1 - self.beta2**step)).sqrt_().add_(self.adam_eps)
        x.addcdiv_(m, denom, value=-self.lr / (1 - self.beta1**step)).clamp_(-1, 1)

    def synthesize(
        self,
        model: Introspective,
        x0: Tensor,
        targets: Tensor,
        groups: Tensor,
        taus: Tensor,
    ) -> tuple[Tensor, SynthesisStats]:
        """Run synthesis from ``x0``.

        Args:
            model: introspective classifier (switched to eval during synthesis, then restored).
            x0: (N, C, H, W) initial images in [-1, 1].
            targets: (N,) class each image is pushed towards by the CE term.
            groups: (N,) group index in [0, G) of each image (one tau per group).
            taus: (G,) thresholds.

        Returns:
            (images (N, C, H, W) in [-1, 1], stats).
        """
        dev = x0.device
        with frozen_eval(model):
            return self._run(model, x0, targets.to(dev), groups.to(dev), taus.to(dev).float())

    def _run(
        self, model: Introspective, x0: Tensor, targets: Tensor, groups: Tensor, taus: Tensor
    ) -> tuple[Tensor, SynthesisStats]:
        x = x0.detach().clone().clamp_(-1, 1)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        group_size = torch.bincount(groups, minlength=taus.numel()).clamp_min(1).to(x)  # (G,)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        converged = torch.zeros_like(active)
        image_steps, steps, last_gap = 0, 0, float("nan")
        for step in range(1, self.max_steps + 1):
            idx = None if bool(active.all()) else active.nonzero().squeeze(1)
            xa = (x if idx is None else x[idx]).detach().requires_grad_(True)
            ga = groups if idx is None else groups[idx]
            ta = targets if idx is None else targets[idx]
            logits, f = model.logits_and_critic(xa)  # (Na, K), (Na,)
            gap_term, done = self._gaps(f, ga, taus, group_size)
            ce = F.cross_entropy(logits, ta, reduction="none") / group_size[ga]  # (Na,)
            loss = gap_term + self.ce_weight * ce.sum()
            (grad,) = torch.autograd.grad(loss, xa)
            last_gap = float((f.detach() - taus[ga]).abs().mean())
            upd = ~done
            if idx is None and bool(upd.all()):  # common case: update everything in place
                self._adam(x, m, v, grad, step)
                image_steps += x.shape[0]
            else:
                all_idx = torch.arange(x.shape[0], device=x.device) if idx is None else idx
                sel = all_idx[upd]
                if sel.numel() > 0:
                    xs, ms, vs = x[sel], m[sel], v[sel]
                    self._adam(xs, ms, vs, grad[upd], step)
                    x[sel], m[sel], v[sel] = xs, ms, vs
                    image_steps += int(sel.numel())
            finished = (torch.arange(x.shape[0], device=x.device) if idx is None else idx)[done]
            converged[finished] = True
            active[finished] = False
            steps = step
            if not bool(active.any()):
                break
        stats = SynthesisStats(steps, image_steps, float(converged.float().mean()), last_gap)
        return x.detach(), stats
