"""Unsupervised WINN: WINN-single and cascades (Algorithm 1; REFERENCE §3.4-3.7).

One *iteration* (the code's inner loop, ``it`` = 0..iterations-1 inside each cascade):

1. n+ = min(it + 1, ramp_max) * pos_per_step positives (1k..5k in the paper) and as many
   negatives drawn with replacement from the pool S- of every pseudo-negative so far.
2. ``k_passes`` passes over this fixed set in the same 50 + 50 batches, each step minimising
   mean f(x-) - mean f(x+) + 10 * GP with Adam(1e-4, betas (0, 0.9)); during the last pass the
   batch mean of f over the positives is re-evaluated after every update and its min and max
   kept.
3. Synthesis: ``new_per_iter`` images (``new_last_iter`` at the cascade's last iteration) are
   taken from the init source and pushed up f by :class:`AscentSampler` with
   tau ~ U[min, max] per 100-image batch; they join S- (uint8 storage = the PNG quantisation).

At the end of a cascade the init source becomes that cascade's last synthesised images and a
snapshot of the critic with its tau range is stored, so sampling can run the chain
(:func:`generate`). The same network and Adam state carry on into the next cascade (the code's
behaviour; paper Eq. 8 reads as separate classifiers, REFERENCE §3.6).

The whole state (model, optimizer, pool, init source, snapshots, RNG) is checkpointed
atomically after every iteration, so ``resume=True`` continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.positives import PositiveSource
from ..errors import ResumeError
from ..models.appd import quantize_uint8, sample_p0
from ..objectives.losses import gradient_penalty, wasserstein_loss
from ..runtime.checkpoint import load_state, versions
from ..runtime.header import run_header
from ..synthesis import NegativePool
from ..synthesis.ascent import AscentSampler, critic_fn
from ..synthesis.cascade import METHOD, build_critic
from .loop import NonFiniteLossError, train_in_one_process
from .unsup_config import Preset, TauFrom, UnsupConfig

log = logging.getLogger(__name__)

__all__ = ["Preset", "UnsupConfig", "train_unsupervised"]  # config re-exported

# What an unsupervised checkpoint must hold to be resumed.
RESUME_KEYS = (
    "method",
    "config",
    "model",
    "iteration",
    "cascade",
    "history",
    "cascades",
    "wall_time_s",
    "model_state",
    "optimizer_state",
    "pool_state",
    "init_source",
    "rng",
)
# Settings a resumed run may change: how many cascades, where and how fast (see .resume).
RESUME_FREE = ("cascades", "device", "out", "progress", "data_dir", "download", "image", "folder")


@dataclass
class _State:
    cascade: int = 0  # current cascade (0-based)
    iteration: int = 0  # next iteration inside it
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # one per finished cascade
    wall_time_s: float = 0.0


class UnsupervisedTrainer:
    """One unsupervised run: critic, optimizer, pool, init source, snapshots; a unit is one iteration."""

    table_name = "iterations.csv"
    is_main = True  # unsupervised training runs in one process

    def __init__(self, cfg: UnsupConfig, source: PositiveSource, device: torch.device) -> None:
        self.cfg, self.source, self.device = cfg, source, device
        self.out = Path(cfg.out)
        self._bar: tqdm | None = None
        torch.manual_seed(cfg.seed)
        self.model = build_critic(cfg.arch, source.image_shape).to(device)
        self.f = critic_fn(self.model)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.sampler = AscentSampler(
            lr=cfg.synth_lr,
            beta1=cfg.synth_beta1,
            beta2=cfg.synth_beta2,
            max_steps=cfg.synth_max_steps,
            batch_size=cfg.synth_batch,
        )
        self.pool = NegativePool(1, capacity=cfg.pool_capacity, dtype="uint8" if cfg.quantize else "float32")
        self.state = _State()
        self.init_source = torch.empty(0)

    def start(self) -> None:
        """Draw the initial pseudo-negatives from p0: they seed S- and the first init source."""
        x = sample_p0(
            self.cfg.init,
            self.cfg.init_images,
            self.source.image_shape,
            generator=self.gen,
            quantize=self.cfg.quantize,
            device=self.device,
        )
        self.init_source = self._store(x)
        self.pool.add(x, torch.zeros(x.shape[0], dtype=torch.long))

    def _store(self, x: Tensor) -> Tensor:
        x = x.detach().cpu()
        return ((x + 1) * 127.5).round().to(torch.uint8) if self.cfg.quantize else x.float()

    def _load(self, x: Tensor) -> Tensor:
        return x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.clone()

    def checkpoint_state(self) -> dict[str, Any]:
        st = self.state
        return {
            "model": {
                "arch": self.cfg.arch,
                "kwargs": {},
                "image_shape": list(self.source.image_shape),
                "num_outputs": 1,
            },
            "dataset": self.source.describe(),
            "method": METHOD,
            "config": self.cfg.to_dict(),
            "versions": versions(),
            "seed": self.cfg.seed,
            "cascade": st.cascade,
            "iteration": st.iteration,
            "history": st.history,
            "cascades": st.snapshots,
            "wall_time_s": st.wall_time_s,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.opt.state_dict(),
            "pool_state": self.pool.state_dict(),
            "init_source": self.init_source,
            "rng": {"gen": self.gen.get_state(), "torch": torch.get_rng_state()},
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint whose settings :func:`.loop.load_for_resume` checked."""
        if tuple(ckpt["model"]["image_shape"]) != self.source.image_shape:
            raise ResumeError(
                f"checkpoint images are {ckpt['model']['image_shape']}, "
                f"the data gives {list(self.source.image_shape)}"
            )
        load_state(self.model, ckpt["model_state"], self.cfg.out, "critic")
        load_state(self.opt, ckpt["optimizer_state"], self.cfg.out, "optimizer")
        self.pool.load_state_dict(ckpt["pool_state"])
        self.init_source = ckpt["init_source"]
        self.gen.set_state(ckpt["rng"]["gen"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.state = _State(
            int(ckpt["cascade"]),
            int(ckpt["iteration"]),
            list(ckpt["history"]),
            list(ckpt["cascades"]),
            float(ckpt["wall_time_s"]),
        )

    # ------------------------------------------------------------------ lifecycle (.loop)
    def done(self) -> bool:
        return self.state.cascade >= self.cfg.cascades

    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    def extra_checkpoints(self, row: dict[str, Any]) -> Collection[str]:
        return ()

    def run_unit(self) -> dict[str, Any]:
        return self.iterate()

    def record(self, status: str, command: str | None) -> dict[str, Any]:
        st = self.state
        return {
            **run_header(command, self.device),
            "status": status,
            "method": METHOD,
            "config": self.cfg.to_dict(),
            "dataset": self.source.describe(),
            "seed": self.cfg.seed,
            "cascades_done": len(st.snapshots),
            "iterations_run": len(st.history),
            "tau_ranges": [
                {"cascade": s["cascade"], "tau_min": s["tau_min"], "tau_max": s["tau_max"]}
                for s in st.snapshots
            ],
            "wall_time_s": st.wall_time_s,
            "cost": _cost(st.history, self),
            "history": st.history,
        }

    def log_unit(self, row: dict[str, Any]) -> None:
        if self._bar is None:
            cfg = self.cfg
            self._bar = tqdm(
                total=cfg.cascades * cfg.iterations,
                initial=len(self.state.history) - 1,
                desc="unsupervised WINN",
                disable=None if cfg.progress else True,
                file=sys.stderr,
            )
        self._bar.update(1)
        self._bar.set_postfix(c=int(row["cascade"]), loss=f"{row['loss']:.3f}", pool=int(row["pool_size"]))
        log.info(
            "cascade %d it %d: loss %.4f W %.4f GP %.4f tau [%.3f, %.3f] synth steps %.1f (%.1fs)",
            row["cascade"],
            row["iteration"],
            row["loss"],
            row["wasserstein"],
            row["gp"],
            row["tau_min"],
            row["tau_max"],
            row["synth_mean_steps"],
            row["time_s"],
        )

    def close(self) -> None:
        """Close the progress bar."""
        if self._bar is not None:
            self._bar.close()

    # ------------------------------------------------------------------ one iteration
    def classification_step(self) -> dict[str, float]:
        """k passes over min(it+1, ramp_max) * pos_per_step positives + as many negatives."""
        cfg, dev, it = self.cfg, self.device, self.state.iteration
        n_pos = min(it + 1, cfg.ramp_max) * cfg.pos_per_step
        pos = self.source.draw(n_pos, generator=self.gen)  # (n+, C, H, W)
        neg = self.pool.sample(torch.zeros(n_pos, dtype=torch.long), generator=self.gen)
        self.model.train()
        f_min, f_max = float("inf"), float("-inf")
        final = TauFrom(cfg.tau_from) is TauFrom.FINAL
        sums, steps = {"loss": 0.0, "wasserstein": 0.0, "gp": 0.0}, 0
        for p in range(cfg.k_passes):
            last = p == cfg.k_passes - 1
            for b in range(0, n_pos, cfg.batch_size):
                xp, xn = pos[b : b + cfg.batch_size].to(dev), neg[b : b + cfg.batch_size].to(dev)
                f_all = self.f(torch.cat([xp, xn]))  # (2B,)
                w = wasserstein_loss(f_all[: xp.shape[0]], f_all[xp.shape[0] :])
                gp = gradient_penalty(self.f, xp, xn, generator=self.gen)
                loss = w + cfg.gp_lambda * gp
                if not torch.isfinite(loss.detach()):
                    raise NonFiniteLossError(
                        f"non-finite critic loss ({loss.item()}) at cascade {self.state.cascade + 1}, "
                        f"iteration {it + 1}; try a lower --lr. The last good checkpoint is kept."
                    )
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                steps += 1
                sums["loss"] += loss.item()
                sums["wasserstein"] += float(w.detach())
                sums["gp"] += float(gp.detach())
                if last and not final:  # f+ mean after the update (§3.6 step 3)
                    with torch.no_grad():
                        fp = float(self.f(xp).mean())
                    f_min, f_max = min(f_min, fp), max(f_max, fp)
        if final:  # the last pass's batches, under the final critic
            with torch.no_grad():
                for b in range(0, n_pos, cfg.batch_size):
                    fp = float(self.f(pos[b : b + cfg.batch_size].to(dev)).mean())
                    f_min, f_max = min(f_min, fp), max(f_max, fp)
        return {
            "n_pos": float(n_pos),
            "critic_steps": float(steps),
            **{k: v / steps for k, v in sums.items()},
            "tau_min": f_min,
            "tau_max": f_max,
        }

    def synthesis_step(self, tau_min: float, tau_max: float, last: bool) -> dict[str, float]:
        """Synthesise from the init source, add to S-; at a cascade's end, renew the init source."""
        cfg = self.cfg
        n_new = cfg.new_last_iter if last else cfg.new_per_iter
        n_src = self.init_source.shape[0]
        idx = torch.randperm(n_src, generator=self.gen)
        idx = idx[:n_new] if n_new <= n_src else torch.randint(n_src, (n_new,), generator=self.gen)
        x0 = self._load(self.init_source[idx]).to(self.device)
        x, stats = self.sampler.synthesize(
            self.model, x0, tau_min=tau_min, tau_max=tau_max, generator=self.gen
        )
        if cfg.quantize:
            x = quantize_uint8(x)
        self.pool.add(x, torch.zeros(x.shape[0], dtype=torch.long))
        if last:
            self.init_source = self._store(x)
        return {
            "n_new": float(n_new),
            "synth_image_steps": float(stats.image_steps),
            "synth_mean_steps": stats.mean_steps,
            "synth_max_steps_hit": stats.max_steps_hit,
            "synth_mean_f": stats.mean_f,
            "pool_size": float(len(self.pool)),
        }

    def iterate(self) -> dict[str, float]:
        st, cfg = self.state, self.cfg
        t0 = time.perf_counter()
        row: dict[str, float] = {"cascade": float(st.cascade + 1), "iteration": float(st.iteration + 1)}
        row.update(self.classification_step())
        row["classify_time_s"] = time.perf_counter() - t0
        last = st.iteration == cfg.iterations - 1
        t1 = time.perf_counter()
        row.update(self.synthesis_step(row["tau_min"], row["tau_max"], last))
        row["synth_time_s"] = time.perf_counter() - t1
        if last:
            st.snapshots.append(
                {
                    "cascade": st.cascade + 1,
                    "tau_min": row["tau_min"],
                    "tau_max": row["tau_max"],
                    "model_state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                }
            )
            st.cascade, st.iteration = st.cascade + 1, 0
        else:
            st.iteration += 1
        row["time_s"] = time.perf_counter() - t0
        st.wall_time_s += row["time_s"]
        st.history.append(row)
        return row


def _cost(history: list[dict[str, float]], run: UnsupervisedTrainer) -> dict[str, float | None]:
    """What the run spent per phase (issue 5 §4), summed over the iterations run.

    A critic step is one forward+backward of 2B images plus the gradient penalty's double
    backward on B interpolates; a synthesis image-step is one image through one forward and one
    backward to the input. ``gpu_s`` is the wall time on CUDA (None on CPU).
    """

    def total(key: str) -> float:
        return float(sum(h.get(key, 0.0) for h in history))

    return {
        "classify_time_s": total("classify_time_s"),
        "synth_time_s": total("synth_time_s"),
        "critic_steps": total("critic_steps"),
        "positives_seen": float(sum(h["n_pos"] for h in history) * run.cfg.k_passes),
        "synth_image_steps": total("synth_image_steps"),
        "images_synthesized": total("n_new"),
        "gpu_s": run.state.wall_time_s if run.device.type == "cuda" else None,
    }


def train_unsupervised(
    cfg: UnsupConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
    source: PositiveSource | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run Algorithm 1 with cascades; write ``checkpoint-last.pt``, record.json, iterations.csv.

    Args:
        cfg: the run's configuration (:meth:`UnsupConfig.preset` for budgets).
        resume: continue from ``cfg.out/checkpoint-last.pt`` exactly (RNG, optimizer, pool);
            every setting but those in ``RESUME_FREE`` must equal the run's.
        overwrite: replace a run already in ``cfg.out`` (else such a folder is refused).
        command: command line stored in the record.
        source: positives to use instead of loading ``cfg.dataset``.
        stop_after: end after this many iterations in this call (checkpoint kept; resume later).

    Returns:
        The record written to ``cfg.out/record.json``.

    Raises:
        NonFiniteLossError: the critic loss diverged.
        UserError (ResumeError, RunDirError, DataUnavailableError, ModelSpecError,
        BadValueError): bad input, raised before any training.
    """

    def make_trainer(device: torch.device, ckpt: dict[str, Any] | None) -> UnsupervisedTrainer:
        run = UnsupervisedTrainer(cfg, source or cfg.load_positives(), device)
        if ckpt is None:
            run.start()
        else:
            run.restore(ckpt)
            log.info(
                "resumed %s at cascade %d, iteration %d",
                cfg.out,
                run.state.cascade + 1,
                run.state.iteration + 1,
            )
        return run

    return train_in_one_process(
        cfg,
        method=METHOD,
        keys=RESUME_KEYS,
        free=RESUME_FREE,
        make_trainer=make_trainer,
        resume=resume,
        overwrite=overwrite,
        command=command,
        stop_after=stop_after,
    )
