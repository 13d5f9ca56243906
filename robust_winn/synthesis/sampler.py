"""Image-space synthesis by Adam: the shared optimiser and the pseudo-negative sampler.

:class:`ImageSynthesizer` is the one image-space optimiser (DESIGN §1 ``synthesis/``, §3 "a
synthesis rule", shaped like torchattacks' ``Attack``): it freezes the models in eval mode
(:func:`~robust_winn.runtime.frozen.frozen_eval`), keeps per-image Adam moments that are fresh for
every call, takes the Adam step on the images and clips them to [-1, 1]. A sampler says what to
minimise and when an image is done (:meth:`ImageSynthesizer.run`'s ``objective``). Three samplers
use it: :class:`PseudoNegativeSampler` here (supervised WINN), :class:`~.ascent.AscentSampler`
(unsupervised WINN) and :func:`~.anysize.synthesize_anysize` (any-size textures).

Pseudo-negatives (paper §4.1, REFERENCE §1.6): for each group g of images (in the supervised code:
the 100 images of one class) a threshold tau_g is drawn, and the images minimise

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import StopRule
from ..models.introspective import Introspective
from ..runtime.frozen import frozen_eval

__all__ = [
    "Evaluation",
    "ImageSynthesizer",
    "Objective",
    "PseudoNegativeSampler",
    "SynthesisStats",
    "Trajectory",
]


@dataclass
class Evaluation:
    """What an objective says about the active images at one step (see :meth:`ImageSynthesizer.run`)."""

    loss: Tensor  # scalar to minimise; its gradient w.r.t. the active images drives Adam
    done: Tensor  # (Na,) bool, the stop rule: a done image is frozen and leaves later forwards
    value: float  # a summary of this step (a gap, a mean f), reported for the last step
    grad: Callable[[], Tensor] | None = None  # custom descent direction (Na, ...); default d loss / d x


Objective = Callable[[Tensor, Tensor | None], Evaluation]  # (active images, their rows) -> Evaluation


@dataclass
class Trajectory:
    """What :meth:`ImageSynthesizer.run` did."""

    images: Tensor  # (N, ...) the result in [-1, 1]
    steps: int  # Adam steps taken
    evaluations: int  # objective calls (forward passes)
    image_steps: int  # sum over steps of the images updated (the work done)
    converged: Tensor  # (N,) bool: images the stop rule marked done
    value: float  # Evaluation.value of the last objective call (nan without any)


class ImageSynthesizer:
    """Adam on images in [-1, 1] against frozen models: the base of every sampler.

    One iteration of :meth:`run`: the objective is evaluated on the images still active; those
    it marks done are frozen; the run stops when none is left to update or after ``max_steps``
    Adam steps; otherwise one Adam step (bias-corrected, per-image moments) moves the others,
    clipped to [-1, 1]. ``final_evaluation`` says whether the step cap is checked after the
    objective (the stop rule sees the final images: "was tau reached?") or before it (no
    forward pass after the last step).

    Args:
        lr: Adam learning rate on images.
        beta1, beta2: Adam betas.
        adam_eps: Adam epsilon.
        max_steps: cap on Adam steps per run (>= 0).
    """

    final_evaluation: ClassVar[bool] = True

    def __init__(self, *, lr: float, beta1: float, beta2: float, adam_eps: float, max_steps: int) -> None:
        if max_steps < 0:
            raise ValueError("max_steps must be >= 0")
        self.lr, self.beta1, self.beta2, self.adam_eps = lr, beta1, beta2, adam_eps
        self.max_steps = max_steps

    def adam_step(self, x: Tensor, m: Tensor, v: Tensor, grad: Tensor, step: int) -> None:
        """One in-place Adam step (the ``step``-th) on images ``x`` with moments ``m``, ``v``; clip."""
        m.mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        denom = (v / (1 - self.beta2**step)).sqrt_().add_(self.adam_eps)
        x.addcdiv_(m, denom, value=-self.lr / (1 - self.beta1**step)).clamp_(-1, 1)

    def run(self, x0: Tensor, objective: Objective, models: Sequence[nn.Module] = ()) -> Trajectory:
        """Optimise ``x0`` (N, ...) with ``models`` in eval mode and frozen (restored afterwards).

        ``objective(x, index)`` gets the active images (Na, ...) as a leaf that requires grad and
        their rows in ``x0`` (``None`` while all are active) and returns an :class:`Evaluation`.
        """
        with frozen_eval(*models):
            return self._loop(x0, objective)

    def _loop(self, x0: Tensor, objective: Objective) -> Trajectory:
        x = x0.detach().clone().clamp_(-1, 1)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        n = x.shape[0]
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        converged = torch.zeros_like(active)
        step, evaluations, image_steps, value = 0, 0, 0, float("nan")
        while self.final_evaluation or step < self.max_steps:
            idx = None if bool(active.all()) else active.nonzero().squeeze(1)
            xa = (x if idx is None else x[idx]).detach().requires_grad_(True)
            ev = objective(xa, idx)
            evaluations, value = evaluations + 1, ev.value
            rows = torch.arange(n, device=x.device) if idx is None else idx
            finished = rows[ev.done]
            converged[finished] = True
            active[finished] = False
            upd = ~ev.done
            if not bool(upd.any()) or step >= self.max_steps:
                break
            grad = ev.grad() if ev.grad is not None else torch.autograd.grad(ev.loss, xa)[0]
            step += 1
            if idx is None and bool(upd.all()):  # common case: update everything in place
                self.adam_step(x, m, v, grad, step)
                image_steps += n
            else:
                sel = rows[upd]
                xs, ms, vs = x[sel], m[sel], v[sel]
                self.adam_step(xs, ms, vs, grad[upd], step)
                x[sel], m[sel], v[sel] = xs, ms, vs
                image_steps += int(sel.numel())
        return Trajectory(x.detach(), step, evaluations, image_steps, converged, value)


@dataclass
class SynthesisStats:
    """What one synthesis pass did."""

    steps: int  # ascent steps run (max over groups)
    image_steps: int  # sum over steps of images updated (the work done)
    converged: float  # share of images whose group (or self) met the tolerance
    final_gap: float  # mean |f - tau| gap at the end (per group or per image)


class PseudoNegativeSampler(ImageSynthesizer):
    """Batched, early-stopping image-space synthesis for an :class:`Introspective` model.

    The step cap is checked before the objective (no forward pass after the last step), so
    ``steps`` in :class:`SynthesisStats` counts forward passes, one more than the Adam steps when
    the last pass found every image done.
    """

    final_evaluation = False

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
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, adam_eps=adam_eps, max_steps=max_steps)
        self.tol, self.ce_weight = tol, ce_weight
        self.stop_rule = StopRule(stop_rule)

    def _gaps(self, f: Tensor, ga: Tensor, taus: Tensor, group_size: Tensor) -> tuple[Tensor, Tensor]:
        """Return (objective's gap term, per-image 'done' mask) for the active images."""
        if self.stop_rule is StopRule.BATCH_MEAN:
            means = torch.zeros_like(taus).index_add_(0, ga, f) / group_size  # (G,)
            gap = (means - taus).abs()  # (G,)
            return gap.sum(), gap[ga] <= self.tol
        gap_i = (f - taus[ga]).abs()  # (Na,)
        return (gap_i / group_size[ga]).sum(), gap_i <= self.tol

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
        targets, groups, taus = targets.to(dev), groups.to(dev), taus.to(dev).float()
        group_size = torch.bincount(groups, minlength=taus.numel()).clamp_min(1).to(x0)  # (G,)

        def objective(xa: Tensor, idx: Tensor | None) -> Evaluation:
            ga = groups if idx is None else groups[idx]
            ta = targets if idx is None else targets[idx]
            logits, f = model.logits_and_critic(xa)  # (Na, K), (Na,)
            gap_term, done = self._gaps(f, ga, taus, group_size)
            ce = F.cross_entropy(logits, ta, reduction="none") / group_size[ga]  # (Na,)
            loss = gap_term + self.ce_weight * ce.sum()
            return Evaluation(loss, done, float((f.detach() - taus[ga]).abs().mean()))

        out = self.run(x0, objective, (model,))
        converged = float(out.converged.float().mean())
        return out.images, SynthesisStats(out.evaluations, out.image_steps, converged, out.value)
