"""The defences WINN is compared with, as objectives: PGD adversarial training, TRADES, WINN+AT.

Conventions (DESIGN §2): the settings give eps and step sizes in [0, 1] pixel units (MNIST
standard: eps 0.3, 40 steps of 0.01, random start); models see [-1, 1], so both are doubled
here. The training-time attack runs with the model in eval mode and its parameters frozen
(:func:`robust_winn.runtime.frozen.frozen_eval`: only the input gradient is needed; BatchNorm
layers use their running statistics, as TRADES's reference code does), and draws its random
starts from a generator of its own, checkpointed with the objective, so a resume is exact and
the attack's draws do not shift the run's data order.

- ``pgd-at`` (Madry et al. 2018): minimise cross-entropy on PGD examples made on the fly,
  ``x_adv = argmax_{||d||_inf <= eps} CE(f(x + d), y)`` by ``steps`` signed-gradient steps from a
  uniform random start in the eps-ball, projected onto the ball and [-1, 1] after each step.
- ``trades`` (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(p(x) || p(x_adv))`` with x_adv
  maximising that KL by the same projected steps from ``x + 0.001 * N(0, 1)`` (pixel units),
  the reference implementation's start; the KL is averaged over the batch.
- ``winn-at``: PGD-AT plus WINN's critic term, ``CE(f(x_adv), y) + alpha * (W + lambda * GP)``.
  The critic's positives are the **clean** images: f is trained to score the data distribution
  above the network's own pseudo-negatives, which is WINN's generative half; adversarial
  examples are not data, and scoring them as positives would teach f to accept what fools the
  classifier. The adversarial examples shape the classification head through the
  cross-entropy, as in PGD-AT. Pseudo-negatives, pool and per-epoch synthesis are WINN's
  (:class:`robust_winn.objectives.winn.WinnObjective`), drawn from their own generators, so
  with ``alpha = 0`` the run is PGD-AT's bit for bit (the WINN terms enter with weight 0).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..runtime.frozen import batchnorm_eval, frozen_eval
from .base import Objective, ObjectiveContext, register_objective
from .losses import cross_entropy, gradient_penalty, wasserstein_loss
from .winn import WinnObjective

__all__ = ["PgdAtObjective", "TradesObjective", "WinnAtObjective", "pgd_examples", "trades_examples"]

TRADES_START = 0.001  # std of the random start, pixel units (TRADES reference code)


def _project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Onto the L-inf ball of radius ``eps`` around ``x`` and into [-1, 1] (model units)."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(-1.0, 1.0)


def pgd_examples(ctx: ObjectiveContext, x: Tensor, y: Tensor, *, generator: torch.Generator) -> Tensor:
    """PGD examples of ``(x, y)`` under the run's adversarial settings (Madry et al. 2018)."""
    a = ctx.cfg.adversarial
    eps, step = 2.0 * a.eps, 2.0 * a.step_size  # pixel units -> model units
    if a.random_start:
        start = (torch.rand(x.shape, generator=generator) * 2.0 - 1.0).to(x) * eps
        x_adv = (x + start).clamp(-1.0, 1.0)
    else:
        x_adv = x.clone()
    with frozen_eval(ctx.model):
        for _ in range(a.steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(ctx.fwd(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = _project(x_adv.detach() + step * grad.sign(), x, eps)
    ctx.cost["adv_image_steps"] = ctx.cost.get("adv_image_steps", 0.0) + a.steps * x.shape[0]
    return x_adv.detach()


def trades_examples(ctx: ObjectiveContext, x: Tensor, *, generator: torch.Generator) -> Tensor:
    """Examples maximising KL(p(x) || p(x_adv)) in the eps-ball (Zhang et al. 2019)."""
    a = ctx.cfg.adversarial
    eps, step = 2.0 * a.eps, 2.0 * a.step_size
    with frozen_eval(ctx.model):
        p_clean = F.softmax(ctx.fwd(x), dim=1).detach()
        noise = torch.randn(x.shape, generator=generator).to(x)
        x_adv = _project(x + 2.0 * TRADES_START * noise, x, eps)
        for _ in range(a.steps):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(ctx.fwd(x_adv), dim=1), p_clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = _project(x_adv.detach() + step * grad.sign(), x, eps)
    ctx.cost["adv_image_steps"] = ctx.cost.get("adv_image_steps", 0.0) + (a.steps + 1) * x.shape[0]
    return x_adv.detach()


def _attack_generator(ctx: ObjectiveContext) -> torch.Generator:
    """The training attack's own generator: one stream per rank, checkpointed by the objective."""
    return torch.Generator().manual_seed(ctx.cfg.seed + 5 + 7_919 * ctx.dist.rank)


def _describe(name: str, ctx: ObjectiveContext, **extra: Any) -> dict[str, Any]:
    return {"name": name, **dataclasses.asdict(ctx.cfg.adversarial), **extra}


@register_objective("pgd-at")
class PgdAtObjective(Objective):
    """Madry PGD adversarial training: cross-entropy on PGD examples made on the fly."""

    terms = ("loss", "ce_adv")
    averaged = ("loss", "ce_adv")

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__(ctx)
        self.attack_gen = _attack_generator(ctx)

    def describe(self) -> dict[str, Any]:
        """The record's objective entry: the training attack's settings."""
        return _describe("pgd-at", self.ctx)

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Cross-entropy of the classifier on PGD examples of ``(x, y)``."""
        x_adv = pgd_examples(self.ctx, x, y, generator=self.attack_gen)
        ce = cross_entropy(self.ctx.fwd(x_adv), y)
        return {"loss": ce, "ce_adv": ce}

    def state_dict(self) -> dict[str, Any]:
        """The training attack's generator (exact resume)."""
        return {"attack_gen": self.attack_gen.get_state()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the training attack's generator."""
        if state is not None:
            self.attack_gen.set_state(state["attack_gen"])


@register_objective("trades")
class TradesObjective(PgdAtObjective):
    """TRADES: cross-entropy on clean images plus beta * KL(p(x) || p(x_adv))."""

    terms = ("loss", "ce", "kl")
    averaged = ("loss", "ce", "kl")

    def describe(self) -> dict[str, Any]:
        """The record's objective entry: attack settings and beta."""
        return _describe("trades", self.ctx)

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``CE(f(x), y) + beta * KL(softmax f(x) || softmax f(x_adv))`` (batch mean)."""
        x_adv = trades_examples(self.ctx, x, generator=self.attack_gen)
        logits = self.ctx.fwd(x)
        ce = cross_entropy(logits, y)
        kl = F.kl_div(
            F.log_softmax(self.ctx.fwd(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean"
        )
        return {"loss": ce + self.ctx.cfg.adversarial.trades_beta * kl, "ce": ce, "kl": kl}


@register_objective("winn-at")
class WinnAtObjective(WinnObjective):
    """PGD adversarial training plus WINN's critic term on clean positives and pseudo-negatives."""

    terms = ("loss", "ce_adv", "wasserstein", "gp", "f_pos_mean")
    averaged = ("loss", "ce_adv", "wasserstein", "gp")

    def __init__(self, ctx: ObjectiveContext) -> None:
        self.attack_gen = _attack_generator(ctx)
        # WINN's draws (initial pool, picks, GP weights, tau, z) from generators of their own, so
        # that they never shift the data order or the attack's starts (alpha 0 == PGD-AT).
        self.winn_gen = torch.Generator().manual_seed(ctx.cfg.seed + 4)
        self.winn_local = (
            torch.Generator().manual_seed(ctx.cfg.seed + 6 + 7_919 * ctx.dist.rank)
            if ctx.dist.enabled
            else self.winn_gen
        )
        super().__init__(dataclasses.replace(ctx, gen=self.winn_gen, local_gen=self.winn_local))

    def describe(self) -> dict[str, Any]:
        """The record's objective entry: attack settings, alpha and the critic's positives."""
        return _describe(
            "winn-at",
            self.ctx,
            critic_positives="clean",
            alpha=self.ctx.cfg.alpha,
            batchnorm=super().describe()["batchnorm"],
        )

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``CE(f(x_adv), y) + alpha * (mean f(neg) - mean f(x) + lambda * GP(x, neg))``."""
        c = self.ctx
        x_adv = pgd_examples(c, x, y, generator=self.attack_gen)
        ce = cross_entropy(c.fwd(x_adv), y)  # the same forward as PGD-AT's
        x_neg = c.fast.batch(self.pool.sample(y.cpu(), generator=c.local_gen))
        n = x.shape[0]
        with batchnorm_eval(c.model) if self.batchnorm else contextlib.nullcontext():
            f = c.fwd.logits_and_critic(torch.cat([x, x_neg]))[1]  # (2N,)
            gp = gradient_penalty(c.model.critic, x, x_neg, generator=c.local_gen)
        w = wasserstein_loss(f[:n], f[n:])
        loss = ce + c.cfg.alpha * (w + c.cfg.gp_lambda * gp)
        return {
            "loss": loss,
            "ce_adv": ce.detach(),
            "wasserstein": w.detach(),
            "gp": gp.detach(),
            "f_pos_mean": f[:n].detach().mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Pool and the three generators (exact resume)."""
        gens = {
            "attack_gen": self.attack_gen.get_state(),
            "winn_gen": self.winn_gen.get_state(),
            "winn_local": self.winn_local.get_state(),
        }
        return {"pool": super().state_dict(), **gens}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore pool and generators."""
        if state is None:
            super().load_state_dict(None)
            return
        super().load_state_dict(state["pool"])
        for name in ("attack_gen", "winn_gen", "winn_local"):
            getattr(self, name).set_state(state[name])
