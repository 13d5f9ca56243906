"""WGAN-GP with any registered critic, and the paper's Figure 3 comparison (§4.1 / §5.3; REFERENCE §3.8).

Figure 3 asks whether a GAN discriminator is itself a generator: the critic of a WGAN-GP
(Gulrajani et al. 2017) is trained with its generator, then images are synthesised *from the
critic alone* by the same gradient ascent WINN samples with, and compared with the ascent on a
WINN-single critic of the same architecture.

Trainer (:func:`train_wgan_gp`), WGAN-GP's algorithm 1:

- per generator iteration, ``n_critic`` (5) critic steps minimising
  mean f(G(z)) - mean f(x+) + lambda * GP (lambda 10, the penalty of :mod:`robust_winn.objectives.losses`),
  then one generator step minimising -mean f(G(z)); both Adam(1e-4, betas (0, 0.9));
- positives come from :func:`robust_winn.data.positives.load_positives` (textures, folders, CelebA,
  MNIST, ...), exactly as for the unsupervised WINN;
- the critic is any registered network with one output (``build_critic``: critic64,
  wgan_resnet32, densenet, or ``pkg.module:factory``);
- the generator (:class:`DCGANGenerator`) is the DCGAN one of WGAN-GP's ``gan_64x64.py``:
  Linear -> BN -> ReLU, then stride-2 4x4 transposed convolutions with BN + ReLU, tanh output.
  BatchNorm always uses batch statistics (as tflib does), so no running statistics are kept.
- the ascent threshold range is computed as the WINN trainer does it (REFERENCE §3.6 step 3):
  after each of the last ``tau_window`` critic updates the batch mean of f over that step's
  positives is re-evaluated, and its min and max are kept (100 = the length of WINN's last pass
  at n+ = 5,000).

Figure 3 itself (the ascent on this critic next to WINN-single's) is
:func:`robust_winn.experiments.figure3.figure3_comparison`.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..config import MAX_SEED, check_number
from ..data.positives import PositiveSource
from ..models.dcgan import DCGANGenerator
from ..objectives.losses import gradient_penalty, wasserstein_loss
from ..runtime.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state,
    model_meta,
    save_checkpoint,
    versions,
)
from ..runtime.header import run_header
from ..synthesis.ascent import critic_fn
from ..synthesis.cascade import build_critic
from .loop import NonFiniteLossError, train_in_one_process
from .unsup_config import PositivesConfig, Preset

log = logging.getLogger(__name__)

__all__ = [
    "METHOD",
    "WganGpConfig",
    "critic_step",
    "WganGpTrainer",
    "train_wgan_gp",
    "save_wgan_gp",
    "load_wgan_gp",
]

METHOD = "wgan-gp"


@dataclass
class WganGpConfig(PositivesConfig):
    """Everything one WGAN-GP run depends on (defaults: Gulrajani et al.'s settings)."""

    arch: str = "critic64"  # critic: registered network with one output, or "pkg.module:factory"
    z_dim: int = 128  # generator latent size
    gen_width: int = 64  # generator width of the last hidden layer (DCGAN: 64 -> 512 at 4x4)
    iterations: int = 100_000  # generator iterations (WGAN-GP CIFAR ResNet: 100k)
    n_critic: int = 5  # critic steps per generator step
    batch_size: int = 64  # positives (and fakes) per step
    lr: float = 1e-4  # Adam lr, critic and generator
    beta1: float = 0.0  # Adam beta1
    beta2: float = 0.9  # Adam beta2
    gp_lambda: float = 10.0  # gradient-penalty weight
    tau_window: int = 100  # last critic updates whose f+ batch means give [tau_min, tau_max]
    checkpoint_every: int = 100  # generator iterations between checkpoints (resume granularity)
    seed: int = 0  # seeds everything
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs/wgan_gp"  # output folder
    progress: bool = True  # tqdm progress bar (off anyway when not a TTY)

    @classmethod
    def preset(cls, name: Preset | str, **overrides: Any) -> WganGpConfig:
        """``paper`` (the defaults) or ``quick`` (20 iterations of batch 32: minutes on a CPU)."""
        base: dict[str, Any] = {}
        if Preset(name) is Preset.QUICK:
            base = dict(iterations=20, batch_size=32)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def validate(self) -> None:
        """Raise :class:`BadValueError` naming the first bad field."""
        for name in (
            "z_dim",
            "gen_width",
            "iterations",
            "n_critic",
            "batch_size",
            "tau_window",
            "checkpoint_every",
            "image_size",
        ):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("seed", self.seed, low=0, high=MAX_SEED, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and weights_only-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WganGpConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def critic_step(
    f: Callable[[Tensor], Tensor],
    opt: torch.optim.Optimizer,
    x_pos: Tensor,
    x_neg: Tensor,
    *,
    gp_lambda: float = 10.0,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One critic update on mean f(x-) - mean f(x+) + lambda * GP (WGAN-GP Alg. 1; REFERENCE §3.4).

    Returns:
        {"loss", "wasserstein", "gp"} before the update.

    Raises:
        NonFiniteLossError: the loss is NaN or infinite (no update is made).
    """
    f_all = f(torch.cat([x_pos, x_neg]))  # (2B,)
    w = wasserstein_loss(f_all[: x_pos.shape[0]], f_all[x_pos.shape[0] :])
    gp = gradient_penalty(f, x_pos, x_neg, generator=generator)
    loss = w + gp_lambda * gp
    if not torch.isfinite(loss.detach()):
        raise NonFiniteLossError(f"non-finite WGAN-GP critic loss ({loss.item()}); try a lower --lr")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": float(loss.detach()), "wasserstein": float(w.detach()), "gp": float(gp.detach())}


def save_wgan_gp(
    path: str | Path | dict[str, Any],
    critic: nn.Module,
    gen: DCGANGenerator,
    cfg: WganGpConfig,
    *,
    image_shape: tuple[int, int, int],
    tau: tuple[float, float],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write critic, generator, config and tau range with the atomic :func:`save_checkpoint`.

    With a dict as ``path`` the state is put into it instead of a file (the trainer's
    checkpoints, which :mod:`.loop` writes).
    """
    state = {
        "method": METHOD,
        "model": {"arch": cfg.arch, "kwargs": {}, "image_shape": list(image_shape), "num_outputs": 1},
        "generator": {"z_dim": gen.z_dim, "width": cfg.gen_width, "image_size": gen.image_size},
        "config": cfg.to_dict(),
        "versions": versions(),
        "seed": cfg.seed,
        "tau_min": float(tau[0]),
        "tau_max": float(tau[1]),
        "critic_state": {k: v.detach().cpu() for k, v in critic.state_dict().items()},
        "generator_state": {k: v.detach().cpu() for k, v in gen.state_dict().items()},
        **(extra or {}),
    }
    if isinstance(path, dict):
        path.update(state)
    else:
        save_checkpoint(state, path)


def load_wgan_gp(
    checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu"
) -> tuple[nn.Module, DCGANGenerator, dict[str, Any]]:
    """Rebuild (critic, generator, checkpoint dict) from a WGAN-GP checkpoint, in eval mode.

    Its critic must be a registered architecture (a checkpoint never chooses code).
    """
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    where = checkpoint if not isinstance(checkpoint, dict) else "the checkpoint"
    if ckpt.get("method") != METHOD:
        raise CheckpointError(f"not a WGAN-GP checkpoint (method {ckpt.get('method')!r})")
    meta = model_meta(ckpt, where, keys=("image_shape",))
    shape = tuple(int(s) for s in meta["image_shape"])
    critic = build_critic(meta["arch"], shape, **meta.get("kwargs", {}))
    load_state(critic, ckpt["critic_state"], where, "critic")
    g = ckpt["generator"]
    gen = DCGANGenerator(
        z_dim=g["z_dim"], out_channels=shape[0], image_size=g["image_size"], width=g["width"]
    )
    gen.load_state_dict(ckpt["generator_state"])
    return critic.to(device).eval(), gen.to(device).eval(), ckpt


# What a WGAN-GP checkpoint must hold to be resumed, and the settings a resume may change.
RESUME_KEYS = (
    "method",
    "config",
    "model",
    "iteration",
    "critic_steps",
    "f_range",
    "history",
    "wall_time_s",
    "cost_s",
    "critic_state",
    "generator_state",
    "opt_d_state",
    "opt_g_state",
    "rng",
)
# (not iterations: the tau window is the run's last critic steps, so a longer run is another run)
RESUME_FREE = ("checkpoint_every", "device", "out", "progress", "data_dir", "download", "image", "folder")


class WganGpTrainer:
    """One WGAN-GP run; a unit is ``checkpoint_every`` generator iterations (or what is left)."""

    table_name = "iterations.csv"
    is_main = True  # WGAN-GP trains in one process

    def __init__(self, cfg: WganGpConfig, source: PositiveSource, device: torch.device) -> None:
        self.cfg, self.source, self.device, self.out = cfg, source, device, Path(cfg.out)
        shape = source.image_shape
        torch.manual_seed(cfg.seed)
        self.critic = build_critic(cfg.arch, shape).to(device)
        self.gen = DCGANGenerator(
            z_dim=cfg.z_dim, out_channels=shape[0], image_size=shape[1], width=cfg.gen_width
        ).to(device)
        self.f = critic_fn(self.critic)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.iteration, self.step = 0, 0  # generator iterations and critic steps done
        self.f_min, self.f_max = float("inf"), float("-inf")
        self.rows: list[dict[str, float]] = []
        self.wall_time_s = 0.0
        self.cost_s = {"critic_time_s": 0.0, "generator_time_s": 0.0}
        self._bar: tqdm | None = None

    # ------------------------------------------------------------------ lifecycle (.loop)
    def done(self) -> bool:
        return self.iteration >= self.cfg.iterations

    def history(self) -> list[dict[str, Any]]:
        return self.rows

    def extra_checkpoints(self, row: dict[str, Any]) -> Collection[str]:
        return ()

    def checkpoint_state(self) -> dict[str, Any]:
        """The loadable WGAN-GP checkpoint (:func:`load_wgan_gp`) plus what a resume needs."""
        state: dict[str, Any] = {}
        extra = {
            "history": self.rows,
            "wall_time_s": self.wall_time_s,
            "dataset": self.source.describe(),
            "iteration": self.iteration,
            "critic_steps": self.step,
            "f_range": [self.f_min, self.f_max],
            "cost_s": dict(self.cost_s),
            "opt_d_state": self.opt_d.state_dict(),
            "opt_g_state": self.opt_g.state_dict(),
            "rng": {"gen": self.rng.get_state(), "torch": torch.get_rng_state()},
        }
        save_wgan_gp(
            state,
            self.critic,
            self.gen,
            self.cfg,
            image_shape=self.source.image_shape,
            tau=(self.f_min, self.f_max),
            extra=extra,
        )
        return state

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint whose settings :func:`.loop.load_for_resume` checked."""
        where = self.cfg.out
        load_state(self.critic, ckpt["critic_state"], where, "critic")
        load_state(self.gen, ckpt["generator_state"], where, "generator")
        load_state(self.opt_d, ckpt["opt_d_state"], where, "critic optimizer")
        load_state(self.opt_g, ckpt["opt_g_state"], where, "generator optimizer")
        self.rng.set_state(ckpt["rng"]["gen"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.iteration, self.step = int(ckpt["iteration"]), int(ckpt["critic_steps"])
        self.f_min, self.f_max = (float(v) for v in ckpt["f_range"])
        self.rows = list(ckpt["history"])
        self.wall_time_s = float(ckpt["wall_time_s"])
        self.cost_s = {k: float(v) for k, v in ckpt["cost_s"].items()}

    def record(self, status: str, command: str | None) -> dict[str, Any]:
        cfg, step = self.cfg, self.step
        finite = math.isfinite(self.f_min)
        return {
            **run_header(command, self.device),
            "status": status,
            "method": METHOD,
            "config": cfg.to_dict(),
            "dataset": self.source.describe(),
            "seed": cfg.seed,
            "iterations_run": self.iteration,
            "critic_steps": step,
            "tau_min": self.f_min if finite else None,
            "tau_max": self.f_max if finite else None,
            "wall_time_s": self.wall_time_s,
            "cost": {
                **self.cost_s,  # critic steps (the generator's samples for them included), G steps
                "critic_steps": step,
                "generator_steps": self.iteration,
                "positives_seen": step * cfg.batch_size,
                "generated_images": (step + self.iteration) * cfg.batch_size,
                "gpu_s": self.wall_time_s if self.device.type == "cuda" else None,
            },
            "history": self.rows,
        }

    def log_unit(self, row: dict[str, Any]) -> None:
        if self.done():
            log.info(
                "WGAN-GP: %d iterations in %.1fs, tau [%.4f, %.4f]",
                self.iteration,
                self.wall_time_s,
                self.f_min,
                self.f_max,
            )

    def close(self) -> None:
        """Close the progress bar."""
        if self._bar is not None:
            self._bar.close()

    # ------------------------------------------------------------------ a block of iterations
    def run_unit(self) -> dict[str, Any]:
        """``checkpoint_every`` generator iterations, each after ``n_critic`` critic steps."""
        cfg = self.cfg
        if self._bar is None:
            self._bar = tqdm(
                total=cfg.iterations,
                initial=self.iteration,
                desc="WGAN-GP",
                disable=None if cfg.progress else True,
                file=sys.stderr,
            )
        tau_from = cfg.iterations * cfg.n_critic - cfg.tau_window  # first critic step of the window
        stop = min(cfg.iterations, self.iteration + cfg.checkpoint_every)
        self.critic.train()
        self.gen.train()
        row: dict[str, Any] = {}
        while self.iteration < stop:
            t0 = time.perf_counter()
            sums = {"loss": 0.0, "wasserstein": 0.0, "gp": 0.0}
            for _ in range(cfg.n_critic):
                xp = self.source.draw(cfg.batch_size, generator=self.rng).to(self.device)  # (B, C, H, W)
                xn = self.gen.sample(cfg.batch_size, generator=self.rng)  # (B, C, H, W), no grad to G
                terms = critic_step(self.f, self.opt_d, xp, xn, gp_lambda=cfg.gp_lambda, generator=self.rng)
                for k, v in terms.items():
                    sums[k] += v / cfg.n_critic
                if self.step >= tau_from:  # f+ batch mean after the update, as the WINN trainer does
                    with torch.no_grad():
                        fp = float(self.f(xp).mean())
                    self.f_min, self.f_max = min(self.f_min, fp), max(self.f_max, fp)
                self.step += 1
            t1 = time.perf_counter()
            self.cost_s["critic_time_s"] += t1 - t0
            self.critic.requires_grad_(False)
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=self.rng).to(self.device)
            g_loss = -self.f(self.gen(z)).mean()
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            self.critic.requires_grad_(True)
            self.cost_s["generator_time_s"] += time.perf_counter() - t1
            self.iteration += 1
            row = {"iteration": float(self.iteration), **sums, "gen_loss": float(g_loss.detach())}
            row["time_s"] = time.perf_counter() - t0
            self.wall_time_s += row["time_s"]
            self.rows.append(row)
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{row['loss']:.3f}", g=f"{row['gen_loss']:.3f}")
            log.debug(
                "WGAN-GP it %d: critic loss %.4f GP %.4f gen loss %.4f",
                self.iteration,
                row["loss"],
                row["gp"],
                row["gen_loss"],
            )
        return row


def train_wgan_gp(
    cfg: WganGpConfig,
    *,
    source: PositiveSource | None = None,
    command: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train WGAN-GP; write checkpoint-last.pt, record.json, iterations.csv (REFERENCE §3.8).

    A checkpoint is written every ``checkpoint_every`` generator iterations, so an interrupted
    run continues with ``resume=True`` exactly as it would have run uninterrupted.

    Args:
        cfg: the run's configuration (:meth:`WganGpConfig.preset` for budgets).
        source: positives to use instead of loading ``cfg.dataset``.
        command: command line stored in the record.
        resume: continue the run in ``cfg.out`` (settings but ``RESUME_FREE`` must be equal).
        overwrite: replace a run already in ``cfg.out`` (else such a folder is refused).

    Returns:
        The record written to ``cfg.out/record.json``.

    Raises:
        NonFiniteLossError: the critic loss diverged.
        UserError (ResumeError, RunDirError, DataUnavailableError, ModelSpecError, BadValueError):
        bad input.
    """

    def make_trainer(device: torch.device, ckpt: dict[str, Any] | None) -> WganGpTrainer:
        trainer = WganGpTrainer(cfg, source or cfg.load_positives(), device)
        if ckpt is not None:
            trainer.restore(ckpt)
        return trainer

    return train_in_one_process(
        cfg,
        method=METHOD,
        keys=RESUME_KEYS,
        free=RESUME_FREE,
        make_trainer=make_trainer,
        resume=resume,
        overwrite=overwrite,
        command=command,
    )
