"""Supervised WINN (paper §3.3, §5.6; REFERENCE §1.4-1.6): CE + alpha * (W + lambda * GP).

Each step pairs the batch's positives with as many class-matched pseudo-negatives drawn from
the pool and minimises ``CE(positives) + alpha * (mean f(neg) - mean f(pos) + lambda * GP)``.
After every epoch, ``per_class`` new pseudo-negatives per class are synthesised by
image-space ascent on the classifier itself (:class:`PseudoNegativeSampler`), each class batch
stopping at a threshold tau drawn from [min, max] of the epoch's pre-update positive batch means
of f (REFERENCE §1.6), and appended to the pool. The pool is what a resume must restore.

Under torchrun each rank synthesises a contiguous share of every class and the images are
all-gathered, so the pool is identical on every rank.

A classifier with BatchNorm (a user's ``--arch``) would, forwarded in train mode on positives
and pseudo-negatives together, normalise each with the other's batch statistics and let its
running statistics absorb pseudo-negatives and GP interpolates. Here such a model sees in train
mode only the positives (the cross-entropy forward, as its own training would), and the critic
terms (f on positives and negatives, the gradient penalty) are computed with BatchNorm in eval
mode, one normalisation for all of them; the record says so (``objective.batchnorm``). Models
without BatchNorm (all built-in ones) take the paper's single joint forward.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import BadValueError, CheckpointError
from ..models.init_nets import DCGANInitGenerator
from ..runtime.device import synchronize
from ..runtime.distributed import DistContext, all_gather_cat, all_reduce_, broadcast_module_, shard_bounds
from ..runtime.frozen import batchnorm_eval, has_batchnorm
from ..synthesis import NegativePool, PseudoNegativeSampler
from ..synthesis.sampler import SynthesisStats
from .base import Objective, ObjectiveContext, register_objective
from .losses import gradient_penalty, winn_supervised_loss

__all__ = ["WinnObjective"]

log = logging.getLogger(__name__)


@register_objective("winn")
class WinnObjective(Objective):
    """CE + alpha * (Wasserstein term + lambda * GP) against synthesised pseudo-negatives."""

    terms = ("loss", "ce", "wasserstein", "gp", "f_pos_mean")
    averaged = ("loss", "ce", "wasserstein", "gp")

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__(ctx)
        cfg, data, s = ctx.cfg, ctx.data, ctx.cfg.synthesis
        if ctx.dist.enabled and s.per_class < ctx.dist.world_size:
            raise BadValueError(
                f"synthesis per_class ({s.per_class}) must be at least the number of "
                f"processes ({ctx.dist.world_size}): every rank synthesizes a share of every class"
            )
        self.init_gen = DCGANInitGenerator(
            data.image_shape, generator=torch.Generator().manual_seed(cfg.seed + 2)
        ).to(ctx.device)
        self.sampler = PseudoNegativeSampler(
            lr=s.lr,
            beta1=s.beta1,
            beta2=s.beta2,
            max_steps=s.max_steps,
            tol=s.tol,
            ce_weight=s.ce_weight,
            stop_rule=s.stop_rule,
        )
        self.pool = NegativePool(data.num_classes, capacity=s.pool_capacity, dtype=s.pool_dtype)
        labels = torch.arange(data.num_classes).repeat_interleave(s.init_per_class)
        self.pool.add(self.init_gen.sample(labels.numel(), generator=ctx.gen), labels)
        broadcast_module_(self.init_gen)
        self.batchnorm = has_batchnorm(ctx.model)
        if self.batchnorm and ctx.dist.is_main:
            log.warning(
                "the classifier has BatchNorm: WINN trains it in train mode on positives only and "
                "computes the critic terms with BatchNorm in eval mode (recorded as objective.batchnorm)"
            )

    def describe(self) -> dict[str, Any]:
        """How the critic terms were computed, for the record."""
        return {"name": "winn", "batchnorm": "critic terms in eval mode" if self.batchnorm else None}

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The WINN loss on positives ``x`` and as many pool negatives of the same classes."""
        c = self.ctx
        x_neg = c.fast.batch(self.pool.sample(y.cpu(), generator=c.local_gen))
        n = x.shape[0]
        if self.batchnorm:  # positives alone in train mode; critic terms on running statistics
            logits = c.fwd(x)  # (N, K)
            with batchnorm_eval(c.model):
                f = c.fwd.logits_and_critic(torch.cat([x, x_neg]))[1]  # (2N,)
                gp = gradient_penalty(c.model.critic, x, x_neg, generator=c.local_gen)
        else:
            logits, f = c.fwd.logits_and_critic(torch.cat([x, x_neg]))  # (2N, K), (2N,) fp32
            # GP through the plain model: float32, eager, outside autocast (see runtime.fastpaths)
            gp = gradient_penalty(c.model.critic, x, x_neg, generator=c.local_gen)
        out = winn_supervised_loss(
            logits[:n], f[:n], f[n:], gp, y, alpha=c.cfg.alpha, gp_lambda=c.cfg.gp_lambda
        )
        return {
            "loss": out.total,
            "ce": out.ce,
            "wasserstein": out.wasserstein,
            "gp": out.gp,
            "f_pos_mean": out.f_pos_mean,
        }

    def end_epoch(self, steps: dict[str, list[float]]) -> dict[str, float]:
        """Append ``per_class`` new pseudo-negatives per class to the pool (REFERENCE §1.6)."""
        c, s, k = self.ctx, self.ctx.cfg.synthesis, self.ctx.data.num_classes
        f_pos_means = steps["f_pos_mean"]  # pre-update batch means of f on positives
        lo, hi = min(f_pos_means), max(f_pos_means)
        taus = lo + (hi - lo) * torch.rand(k, generator=c.gen)  # one tau per class batch
        targets = torch.arange(k).repeat_interleave(s.per_class)  # (K * per_class,)
        synchronize(c.device)
        t0 = time.perf_counter()
        x0 = c.fast.batch(self.init_gen.sample(targets.numel(), generator=c.gen))
        if c.dist.enabled:
            x, stats = self._synthesize_sharded(x0, targets, taus)
        else:
            x, stats = self.sampler.synthesize(c.fwd, x0, targets.to(c.device), targets, taus)
        self.pool.add(x, targets)
        synchronize(c.device)
        dt = time.perf_counter() - t0
        c.cost["synth_time_s"] += dt
        c.cost["synth_steps"] += stats.steps
        c.cost["synth_image_steps"] += stats.image_steps
        c.cost["images_synthesized"] += targets.numel()
        return {
            "synth_steps": float(stats.steps),
            "synth_image_steps": float(stats.image_steps),
            "synth_converged": stats.converged,
            "synth_final_gap": stats.final_gap,
            "tau_min": lo,
            "tau_max": hi,
            "pool_size": float(len(self.pool)),
            "synth_time_s": dt,
        }

    def _synthesize_sharded(self, x0: Tensor, targets: Tensor, taus: Tensor) -> tuple[Tensor, SynthesisStats]:
        """Each rank runs its contiguous share of every class; all ranks get every image back.

        The batch-mean stop rule (REFERENCE §1.6 step 6) then holds over a rank's share of a
        class rather than the whole class: with N ranks, groups of per_class / N images.
        """
        c, per_class = self.ctx, self.ctx.cfg.synthesis.per_class
        pos = torch.arange(targets.numel()) % per_class  # (K * per_class,) index within class

        def share(rank: int) -> Tensor:
            lo, hi = shard_bounds(per_class, DistContext(rank, c.dist.world_size))
            return ((pos >= lo) & (pos < hi)).nonzero().squeeze(1)

        mine = share(c.dist.rank)
        x_mine, st = self.sampler.synthesize(c.fwd, x0[mine], targets[mine].to(c.device), targets[mine], taus)
        order = torch.cat([share(r) for r in range(c.dist.world_size)])
        x = torch.empty_like(x0)
        x[order.to(x0.device)] = all_gather_cat(x_mine)
        n = float(mine.numel())
        sums = all_reduce_(
            torch.tensor([st.image_steps, st.converged * n, st.final_gap * n, n], dtype=torch.float64)
        )
        steps = all_reduce_(torch.tensor([st.steps]), dist.ReduceOp.MAX)
        total = float(sums[3])
        return x, SynthesisStats(int(steps), int(sums[0]), float(sums[1]) / total, float(sums[2]) / total)

    def state_dict(self) -> dict[str, Any]:
        """The pool of pseudo-negatives."""
        return self.pool.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the pool."""
        if state is None:
            raise CheckpointError("the checkpoint holds no pseudo-negative pool (pool_state)")
        self.pool.load_state_dict(state)
