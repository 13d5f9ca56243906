"""Supervised training: baseline (cross-entropy) and WINN (paper §5.6, REFERENCE §1.4-1.8).

One epoch of WINN = one pass over the training split in batches of 100 positives, each
paired with 100 class-matched pseudo-negatives drawn from the pool, minimising
CE + alpha * (W + lambda * GP); then one synthesis pass of ``per_class`` new pseudo-negatives
per class, all classes batched, appended to the pool; then validation and test error.
The baseline is the same loop with cross-entropy alone. Checkpoints are written at the end of
every epoch (``checkpoint-last.pt``) and at every new best validation error
(``checkpoint-best.pt``), so an interrupted run resumes from its last finished epoch and
reproduces the uninterrupted run exactly (same RNG, optimizer and pool states).

The method is an objective (:mod:`robust_winn.objectives`: ``baseline``, ``winn``, or any
registered one) that returns named loss terms and may keep a pool and work once per epoch; this
module owns everything else, and :mod:`.loop` the run's lifecycle (resume, checkpoints,
records) shared with the unsupervised and WGAN-GP trainers.

Under torchrun (WORLD_SIZE > 1, see :mod:`robust_winn.runtime.distributed`) each global batch is split across
ranks and gradients are all-reduced; each rank synthesizes its share of every class and the
new pseudo-negatives are all-gathered, so the pool is identical on every rank; rank 0 alone
writes checkpoints and records. The record's ``cost`` counts what the run spent per phase.

Optional GPU fast paths (bf16 autocast, channels_last, torch.compile, pinned copies) live in
:mod:`robust_winn.runtime.fastpaths`; the record's ``fast_paths`` says which were asked for and
which were used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import Method, TrainConfig
from ..data import DataSplits, ImageSet, load_dataset
from ..errors import BadValueError
from ..models import Introspective, build_classifier
from ..objectives import Objective, ObjectiveContext, create_objective
from ..runtime.checkpoint import load_state, versions
from ..runtime.device import resolve_device, synchronize
from ..runtime.distributed import (
    DistContext,
    all_reduce_,
    all_reduce_grads_,
    broadcast_module_,
    process_group,
    shard_bounds,
    sharded_batches,
)
from ..runtime.fastpaths import FastPaths
from ..runtime.header import run_header
from ..runtime.rundir import claim
from .loop import NonFiniteLossError, drive, load_for_resume
from .resume import RUN_FILES

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "evaluate_error", "train"]

COST_KEYS = (
    "classify_time_s",
    "synth_time_s",
    "eval_time_s",
    "classifier_steps",
    "train_images",
    "synth_steps",
    "synth_image_steps",
    "images_synthesized",
    "eval_images",
)
# What a supervised checkpoint must hold to be resumed.
RESUME_KEYS = (
    "model",
    "dataset",
    "method",
    "config",
    "epoch",
    "history",
    "best",
    "wall_time_s",
    "model_state",
    "optimizer_state",
    "pool_state",
    "rng",
)
# Settings a resumed run may change: how long, where and how fast it runs (see .resume).
RESUME_FREE = ("epochs", "device", "out", "progress", "data_dir", "download", "eval_batch_size", "fast")


@torch.no_grad()
def _count_wrong(model: nn.Module, data: ImageSet, *, batch_size: int, device: torch.device) -> int:
    was_training = model.training
    model.eval()
    wrong = 0
    for x, y in data.batches(batch_size):
        wrong += int((model(x.to(device)).argmax(1).cpu() != y).sum())
    model.train(was_training)
    return wrong


def evaluate_error(model: nn.Module, data: ImageSet, *, batch_size: int, device: torch.device) -> float:
    """Top-1 error (argmax of the logits) of ``model`` on ``data`` (REFERENCE §1.8)."""
    return _count_wrong(model, data, batch_size=batch_size, device=device) / max(len(data), 1)


def _local_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of a rank's own generator in one epoch (a function of position, so resume is exact)."""
    return (seed * 1_000_003 + epoch) * 1_009 + rank + 1


@dataclass
class _State:
    """Everything that changes during training and must survive a resume (besides modules)."""

    epoch: int = 0  # epochs finished
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    wall_time_s: float = 0.0
    improved: bool = False  # the last epoch set a new best validation error
    cost: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_KEYS, 0.0))


class SupervisedTrainer:
    """One supervised run: model, optimizer, objective and RNG; a unit is one epoch."""

    table_name = "epochs.csv"

    def __init__(self, cfg: TrainConfig, data: DataSplits, device: torch.device, ctx: DistContext) -> None:
        self.cfg, self.data, self.device, self.ctx = cfg, data, device, ctx
        self.out, self.is_main = Path(cfg.out), ctx.is_main
        torch.manual_seed(cfg.seed)
        clf = build_classifier(cfg.arch, image_shape=data.image_shape, num_classes=data.num_classes)
        self.model = Introspective(clf, data.num_classes).to(device)
        self.fast = FastPaths(cfg.fast, device, announce=ctx.is_main)
        self.fwd = self.fast.prepare(self.model)  # forward passes (the model itself by default)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)  # data order, pool, eps, tau, z
        # Distributed: self.gen (same on every rank) draws order, tau and z; each rank draws its
        # pool picks and GP weights from its own generator, reseeded every epoch (exact resume).
        self.local_gen = torch.Generator() if ctx.enabled else self.gen
        self.state = _State()
        self.objective: Objective = create_objective(
            Method(cfg.method).value,
            ObjectiveContext(
                cfg=cfg,
                data=data,
                model=self.model,
                fwd=self.fwd,
                fast=self.fast,
                device=device,
                dist=ctx,
                gen=self.gen,
                local_gen=self.local_gen,
                cost=self.state.cost,
            ),
        )
        broadcast_module_(self.model)

    # ------------------------------------------------------------------ lifecycle (.loop)
    def done(self) -> bool:
        return self.state.epoch >= self.cfg.epochs

    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    def extra_checkpoints(self, row: dict[str, Any]) -> Collection[str]:
        return ("checkpoint-best.pt",) if self.state.improved else ()

    def checkpoint_state(self) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        return {
            "model": {
                "arch": cfg.arch,
                "kwargs": {},
                "image_shape": list(self.data.image_shape),
                "num_classes": self.data.num_classes,
            },
            "dataset": {"name": cfg.dataset, "image_shape": list(self.data.image_shape)},
            "method": Method(cfg.method).value,
            "config": cfg.to_dict(),
            "metrics": st.history[-1] if st.history else {},
            "versions": versions(),
            "seed": cfg.seed,
            "epoch": st.epoch,
            "history": st.history,
            "best": {"val_error": st.best_val, "epoch": st.best_epoch},
            "wall_time_s": st.wall_time_s,
            "cost": st.cost,
            "world_size": self.ctx.world_size,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.opt.state_dict(),
            "pool_state": self.objective.state_dict(),
            "rng": {"gen": self.gen.get_state(), "torch": torch.get_rng_state()},
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint whose settings :func:`.loop.load_for_resume` checked."""
        load_state(self.model, ckpt["model_state"], self.cfg.out)
        load_state(self.opt, ckpt["optimizer_state"], self.cfg.out, "optimizer")
        self.objective.load_state_dict(ckpt["pool_state"])
        self.gen.set_state(ckpt["rng"]["gen"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        st = self.state
        st.epoch, st.history = int(ckpt["epoch"]), list(ckpt["history"])
        st.best_val, st.best_epoch = float(ckpt["best"]["val_error"]), int(ckpt["best"]["epoch"])
        st.wall_time_s = float(ckpt["wall_time_s"])
        st.cost.update({k: float(v) for k, v in ckpt.get("cost", {}).items()})  # objectives' keys too

    def record(self, status: str, command: str | None) -> dict[str, Any]:
        st = self.state
        hist = st.history
        gpu_s = st.wall_time_s * self.ctx.world_size if self.device.type == "cuda" else None
        best = next((h for h in hist if h["epoch"] == st.best_epoch), None)
        return {
            **run_header(command, self.device),
            "status": status,
            "config": self.cfg.to_dict(),
            "seed": self.cfg.seed,
            "epochs_run": st.epoch,
            "wall_time_s": st.wall_time_s,
            "best_epoch": st.best_epoch,
            "best_val_error": st.best_val if math.isfinite(st.best_val) else None,
            "test_error_at_best_val": best["test_error"] if best else None,
            "min_test_error": min((h["test_error"] for h in hist), default=None),
            "final_test_error": hist[-1]["test_error"] if hist else None,
            "world_size": self.ctx.world_size,
            "fast_paths": self.fast.record(),
            "objective": self.objective.describe(),
            "cost": {**st.cost, "gpu_s": gpu_s},
            "history": hist,
        }

    def log_unit(self, row: dict[str, Any]) -> None:
        log.log(
            logging.INFO if self.is_main else logging.DEBUG,
            "epoch %d/%d  loss %.4f  val %.2f%%  test %.2f%%  (%.1fs)",
            row["epoch"],
            self.cfg.epochs,
            row["loss"],
            100 * row["val_error"],
            100 * row["test_error"],
            row["epoch_time_s"],
        )

    def run_unit(self) -> dict[str, Any]:
        """One epoch: the objective's steps and per-epoch work, then validation and test error."""
        t0 = time.perf_counter()
        metrics = self.train_epoch()
        t_train = time.perf_counter() - t0
        val = self.error(self.data.val) if self.data.val else math.nan
        test = self.error(self.data.test)
        synchronize(self.device)
        st = self.state
        st.cost["eval_time_s"] += time.perf_counter() - t0 - t_train
        st.epoch += 1
        st.wall_time_s += time.perf_counter() - t0
        row = {
            "epoch": st.epoch,
            **metrics,
            "val_error": val,
            "test_error": test,
            "epoch_time_s": time.perf_counter() - t0,
            "train_time_s": t_train,
        }
        st.history.append(row)
        st.improved = (val <= st.best_val) if self.data.val else True  # code: best val acc uses >=
        if st.improved:
            st.best_val, st.best_epoch = (val if self.data.val else math.inf), st.epoch
        return row

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self) -> dict[str, float]:
        cfg, dev, ctx, obj = self.cfg, self.device, self.ctx, self.objective
        self.model.train()
        if ctx.enabled:
            self.local_gen.manual_seed(_local_seed(cfg.seed, self.state.epoch, ctx.rank))
        steps: dict[str, list[float]] = {k: [] for k in obj.terms}
        n_batches = math.ceil(len(self.data.train) / cfg.batch_size)
        params = [p for p in self.model.parameters() if p.requires_grad]
        bar = tqdm(
            sharded_batches(self.data.train, cfg.batch_size, generator=self.gen, ctx=ctx),
            total=n_batches,
            desc=f"epoch {self.state.epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=None if cfg.progress and ctx.is_main else True,
            file=sys.stderr,
        )
        synchronize(dev)
        t0 = time.perf_counter()
        for x, y, share in bar:
            terms = self._step(self.fast.batch(x), self.fast.batch(y))  # local, in obj.terms order
            # global means; every rank now holds the global batch's gradient (identity alone)
            terms = all_reduce_grads_(params, share, terms).cpu()
            loss = float(terms[0])
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss}) in epoch {self.state.epoch + 1}; "
                    f"try a lower --lr or --alpha. The last good checkpoint is kept."
                )
            self.opt.step()
            for k, v in zip(obj.terms, terms.tolist(), strict=True):
                steps[k].append(v)
            bar.set_postfix(loss=f"{loss:.4f}")
        synchronize(dev)
        cost = self.state.cost
        cost["classify_time_s"] += time.perf_counter() - t0
        cost["classifier_steps"] += n_batches
        cost["train_images"] += len(self.data.train)
        metrics = {k: sum(steps[k]) / n_batches for k in obj.averaged}
        metrics.update(obj.end_epoch(steps))
        return metrics

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward and backward on this rank's slice; its terms (float64, CPU, objective order)."""
        self.opt.zero_grad(set_to_none=True)
        if x.shape[0] == 0:  # a global batch smaller than the world leaves some ranks idle
            return torch.zeros(len(self.objective.terms), dtype=torch.float64)
        values = self.objective.loss_terms(x, y)
        loss = values["loss"]
        if torch.isfinite(loss.detach()):
            loss.backward()
        return torch.tensor([float(values[k].detach()) for k in self.objective.terms], dtype=torch.float64)

    def error(self, data: ImageSet) -> float:
        """Top-1 error on ``data``; under a process group each rank scores a contiguous share."""
        bs, dev = self.cfg.eval_batch_size, self.device
        self.state.cost["eval_images"] += len(data)
        if not self.ctx.enabled:
            return evaluate_error(self.model, data, batch_size=bs, device=dev)
        lo, hi = shard_bounds(len(data), self.ctx)
        wrong = _count_wrong(self.model, data.subset(slice(lo, hi)), batch_size=bs, device=dev)
        return float(all_reduce_(torch.tensor([wrong]))) / max(len(data), 1)


def train(
    cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, command: str | None = None
) -> dict[str, Any]:
    """Train one classifier by ``cfg.method`` and write checkpoints, record.json, epochs.csv.

    Under torchrun (or an initialised process group) the run is data-parallel across ranks
    (:mod:`robust_winn.runtime.distributed`); every rank returns the same record, rank 0 alone
    writes files.

    Args:
        cfg: the run's configuration.
        resume: continue from ``cfg.out/checkpoint-last.pt`` (RNG, optimizer, pool included);
            every setting but those in ``RESUME_FREE`` must equal the run's.
        overwrite: replace a run already in ``cfg.out`` (without it, and without ``resume``, a
            folder holding a run is refused: :func:`robust_winn.runtime.rundir.claim`).
        command: the command line that started the run, stored in the record.

    Returns:
        The record written to ``cfg.out/record.json``.

    Raises:
        NonFiniteLossError: the loss diverged (record status "non-finite"; checkpoints kept).
        UserError (ResumeError, RunDirError, DataUnavailableError, ModelSpecError,
        BadValueError): bad input, raised before any training.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    with process_group(device) as (ctx, device):
        claimed = (
            claim(cfg.out, results=RUN_FILES, resume=resume, overwrite=overwrite)
            if ctx.is_main
            else contextlib.nullcontext(Path(cfg.out))
        )
        with claimed:
            ckpt = None
            if resume:
                ckpt = load_for_resume(
                    Path(cfg.out),
                    keys=RESUME_KEYS,
                    want=cfg.to_dict(),
                    free=RESUME_FREE,
                    config_of=lambda c: TrainConfig.from_dict(c["config"]).to_dict(),
                )
                if int(ckpt["epoch"]) >= cfg.epochs:
                    raise BadValueError(
                        f"--resume: {cfg.out} has already run {int(ckpt['epoch'])} epochs; give "
                        f"--epochs above that to continue it"
                    )
            data = load_dataset(
                cfg.dataset,
                data_dir=cfg.data_dir,
                download=cfg.download,
                val_size=cfg.val_size,
                limit_train=cfg.limit_train,
                limit_test=cfg.limit_test,
            )
            trainer = SupervisedTrainer(cfg, data, device, ctx)
            if ckpt is not None:
                trainer.restore(ckpt)
                log.info("resumed %s at epoch %d", cfg.out, trainer.state.epoch)
            return drive(trainer, command=command)
