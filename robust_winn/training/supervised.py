"""Supervised training: baseline (cross-entropy) and WINN (paper §5.6, REFERENCE §1.4-1.8).

One epoch of WINN = one pass over the training split in batches of 100 positives, each
paired with 100 class-matched pseudo-negatives drawn from the pool, minimising
CE + alpha * (W + lambda * GP); then one synthesis pass of ``per_class`` new pseudo-negatives
per class, all classes batched, appended to the pool; then validation and test error.
The baseline is the same loop with cross-entropy alone. Checkpoints are written at the end of
every epoch (``checkpoint-last.pt``) and at every new best validation error
(``checkpoint-best.pt``), so an interrupted run resumes from its last finished epoch and
reproduces the uninterrupted run exactly (same RNG, optimizer and pool states).

Under torchrun (WORLD_SIZE > 1, see :mod:`.distributed`) each global batch is split across
ranks and gradients are all-reduced; each rank synthesizes its share of every class and the
new pseudo-negatives are all-gathered, so the pool is identical on every rank; rank 0 alone
writes checkpoints and records. The record's ``cost`` counts what the run spent per phase.

Optional GPU fast paths (bf16 autocast, channels_last, torch.compile, pinned copies) live in
:mod:`.fastpaths`; the record's ``fast_paths`` says which were asked for and which were used.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..config import Method, TrainConfig
from ..data.datasets import DataSplits, ImageSet, load_dataset
from ..errors import BadValueError, ResumeError
from ..models import Introspective, build_classifier
from ..models.init_nets import DCGANInitGenerator
from ..objectives.losses import cross_entropy, gradient_penalty, winn_supervised_loss
from ..runtime.checkpoint import load_checkpoint, load_state, require_keys, save_checkpoint, versions
from ..runtime.device import resolve_device
from ..runtime.distributed import (
    DistContext,
    all_gather_cat,
    all_reduce_,
    all_reduce_grads_,
    broadcast_module_,
    process_group,
    shard_bounds,
    sharded_batches,
)
from ..runtime.fastpaths import FastPaths
from ..runtime.rundir import claim
from ..synthesis import NegativePool, PseudoNegativeSampler
from ..synthesis.sampler import SynthesisStats
from .resume import RUN_FILES, check_resume_settings

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "evaluate_error", "train"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


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


def _sync(device: torch.device) -> None:
    """Wait for queued CUDA work so that phase timers measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


COST_KEYS = (
    "classify_time_s", "synth_time_s", "eval_time_s", "classifier_steps", "train_images",
    "synth_steps", "synth_image_steps", "images_synthesized", "eval_images",
)


@dataclass
class _State:
    """Everything that changes during training and must survive a resume."""

    epoch: int = 0  # epochs finished
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    wall_time_s: float = 0.0
    cost: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_KEYS, 0.0))


class _Run:
    """One training run: owns the model, optimizer, pool and RNG; the loop lives in :func:`train`."""

    def __init__(
        self, cfg: TrainConfig, data: DataSplits, device: torch.device, ctx: DistContext
    ) -> None:
        self.cfg, self.data, self.device, self.ctx = cfg, data, device, ctx
        self.method = Method(cfg.method)
        if ctx.enabled and self.method is Method.WINN and cfg.synthesis.per_class < ctx.world_size:
            raise BadValueError(
                f"synthesis per_class ({cfg.synthesis.per_class}) must be at least the number of "
                f"processes ({ctx.world_size}): every rank synthesizes a share of every class"
            )
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
        self.pool: NegativePool | None = None
        if self.method is Method.WINN:
            s = cfg.synthesis
            self.init_gen = DCGANInitGenerator(
                data.image_shape, generator=torch.Generator().manual_seed(cfg.seed + 2)
            ).to(device)
            self.sampler = PseudoNegativeSampler(
                lr=s.lr, beta1=s.beta1, beta2=s.beta2, max_steps=s.max_steps, tol=s.tol,
                ce_weight=s.ce_weight, stop_rule=s.stop_rule,
            )
            self.pool = NegativePool(data.num_classes, capacity=s.pool_capacity, dtype=s.pool_dtype)
            k = data.num_classes
            labels = torch.arange(k).repeat_interleave(s.init_per_class)
            self.pool.add(self.init_gen.sample(labels.numel(), generator=self.gen), labels)
            broadcast_module_(self.init_gen)
        broadcast_module_(self.model)

    # ------------------------------------------------------------------ checkpointing
    def checkpoint_state(self, metrics: dict[str, float]) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "model": {
                "arch": cfg.arch, "kwargs": {}, "image_shape": list(self.data.image_shape),
                "num_classes": self.data.num_classes,
            },
            "dataset": {"name": cfg.dataset, "image_shape": list(self.data.image_shape)},
            "method": self.method.value,
            "config": cfg.to_dict(),
            "metrics": metrics,
            "versions": versions(),
            "seed": cfg.seed,
            "epoch": self.state.epoch,
            "history": self.state.history,
            "best": {"val_error": self.state.best_val, "epoch": self.state.best_epoch},
            "wall_time_s": self.state.wall_time_s,
            "cost": self.state.cost,
            "world_size": self.ctx.world_size,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.opt.state_dict(),
            "pool_state": self.pool.state_dict() if self.pool is not None else None,
            "rng": {"gen": self.gen.get_state(), "torch": torch.get_rng_state()},
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        for key, want in (("arch", self.cfg.arch), ("dataset", self.cfg.dataset)):
            have = ckpt["model"]["arch"] if key == "arch" else ckpt["dataset"]["name"]
            if have != want:
                raise ResumeError(f"checkpoint was trained with {key} {have!r}, not {want!r}")
        if ckpt["method"] != self.method.value:
            raise ResumeError(f"checkpoint method is {ckpt['method']!r}, not {self.method.value!r}")
        load_state(self.model, ckpt["model_state"], self.cfg.out)
        load_state(self.opt, ckpt["optimizer_state"], self.cfg.out, "optimizer")
        if self.pool is not None:
            self.pool.load_state_dict(ckpt["pool_state"])
        self.gen.set_state(ckpt["rng"]["gen"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.state = _State(
            epoch=int(ckpt["epoch"]), history=list(ckpt["history"]),
            best_val=float(ckpt["best"]["val_error"]), best_epoch=int(ckpt["best"]["epoch"]),
            wall_time_s=float(ckpt["wall_time_s"]),
            cost={k: float(ckpt.get("cost", {}).get(k, 0.0)) for k in COST_KEYS},
        )

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, progress: bool) -> dict[str, float]:
        cfg, dev, ctx = self.cfg, self.device, self.ctx
        self.model.train()
        if ctx.enabled:
            self.local_gen.manual_seed(_local_seed(cfg.seed, self.state.epoch, ctx.rank))
        names = ["loss", "ce"] if self.method is Method.BASELINE else ["loss", "ce", "wasserstein", "gp"]
        sums = {"loss": 0.0, "ce": 0.0, "wasserstein": 0.0, "gp": 0.0}
        f_pos_means: list[float] = []
        n_batches = math.ceil(len(self.data.train) / cfg.batch_size)
        params = [p for p in self.model.parameters() if p.requires_grad]
        bar = tqdm(
            sharded_batches(self.data.train, cfg.batch_size, generator=self.gen, ctx=ctx),
            total=n_batches, desc=f"epoch {self.state.epoch + 1}/{cfg.epochs}", leave=False,
            disable=None if progress and ctx.is_main else True, file=sys.stderr,
        )
        _sync(dev)
        t0 = time.perf_counter()
        for x, y, share in bar:
            x, y = self.fast.batch(x), self.fast.batch(y)
            terms = self._step(x, y)  # local means, in `names` order (+ f_pos_mean for WINN)
            if ctx.enabled:  # global means; every rank now holds the global batch's gradient
                terms = all_reduce_grads_(params, share, terms).cpu()
            if not math.isfinite(float(terms[0])):
                raise NonFiniteLossError(
                    f"non-finite loss ({float(terms[0])}) in epoch {self.state.epoch + 1}; "
                    f"try a lower --lr or --alpha. The last good checkpoint is kept."
                )
            self.opt.step()
            for k, v in zip(names, terms.tolist(), strict=False):
                sums[k] += v
            if self.method is Method.WINN:
                f_pos_means.append(float(terms[-1]))  # pre-update batch mean (REF §1.6)
            bar.set_postfix(loss=f"{float(terms[0]):.4f}")
        _sync(dev)
        cost = self.state.cost
        cost["classify_time_s"] += time.perf_counter() - t0
        cost["classifier_steps"] += n_batches
        cost["train_images"] += len(self.data.train)
        metrics = {k: v / n_batches for k, v in sums.items()}
        if self.method is Method.WINN:
            metrics.update(self.synthesize(f_pos_means))
        return metrics

    def _step(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward and backward on this rank's slice; return its loss terms (float64, CPU)."""
        self.opt.zero_grad(set_to_none=True)
        n_terms = 2 if self.method is Method.BASELINE else 5
        if x.shape[0] == 0:  # a global batch smaller than the world leaves some ranks idle
            return torch.zeros(n_terms, dtype=torch.float64)
        if self.method is Method.BASELINE:
            loss = cross_entropy(self.fwd(x), y)
            values = [loss, loss]  # total = CE: one entry per name, as long as n_terms
        else:
            assert self.pool is not None
            x_neg = self.fast.batch(self.pool.sample(y.cpu(), generator=self.local_gen))
            logits, f = self.fwd.logits_and_critic(torch.cat([x, x_neg]))  # (2N, K), (2N,) fp32
            n = x.shape[0]
            # GP through the plain model: float32, eager, outside autocast (see .fastpaths)
            gp = gradient_penalty(self.model.critic, x, x_neg, generator=self.local_gen)
            out = winn_supervised_loss(
                logits[:n], f[:n], f[n:], gp, y, alpha=self.cfg.alpha, gp_lambda=self.cfg.gp_lambda
            )
            loss = out.total
            values = [loss, out.ce, out.wasserstein, out.gp, out.f_pos_mean]
        if torch.isfinite(loss.detach()):
            loss.backward()
        return torch.tensor([float(v.detach()) for v in values], dtype=torch.float64)

    def synthesize(self, f_pos_means: list[float]) -> dict[str, float]:
        """Append ``per_class`` new pseudo-negatives per class to the pool (REFERENCE §1.6)."""
        assert self.pool is not None
        s, k = self.cfg.synthesis, self.data.num_classes
        lo, hi = min(f_pos_means), max(f_pos_means)
        taus = lo + (hi - lo) * torch.rand(k, generator=self.gen)  # one tau per class batch
        targets = torch.arange(k).repeat_interleave(s.per_class)  # (K * per_class,)
        _sync(self.device)
        t0 = time.perf_counter()
        x0 = self.fast.batch(self.init_gen.sample(targets.numel(), generator=self.gen))
        if self.ctx.enabled:
            x, stats = self._synthesize_sharded(x0, targets, taus)
        else:
            x, stats = self.sampler.synthesize(self.fwd, x0, targets.to(self.device), targets, taus)
        self.pool.add(x, targets)
        _sync(self.device)
        dt = time.perf_counter() - t0
        cost = self.state.cost
        cost["synth_time_s"] += dt
        cost["synth_steps"] += stats.steps
        cost["synth_image_steps"] += stats.image_steps
        cost["images_synthesized"] += targets.numel()
        return {
            "synth_steps": float(stats.steps), "synth_image_steps": float(stats.image_steps),
            "synth_converged": stats.converged, "synth_final_gap": stats.final_gap,
            "tau_min": lo, "tau_max": hi, "pool_size": float(len(self.pool)),
            "synth_time_s": dt,
        }

    def _synthesize_sharded(
        self, x0: Tensor, targets: Tensor, taus: Tensor
    ) -> tuple[Tensor, SynthesisStats]:
        """Each rank runs its contiguous share of every class; all ranks get every image back.

        The batch-mean stop rule (REFERENCE §1.6 step 6) then holds over a rank's share of a
        class rather than the whole class: with N ranks, groups of per_class / N images.
        """
        ctx, per_class = self.ctx, self.cfg.synthesis.per_class
        pos = torch.arange(targets.numel()) % per_class  # (K * per_class,) index within class

        def share(rank: int) -> Tensor:
            lo, hi = shard_bounds(per_class, DistContext(rank, ctx.world_size))
            return ((pos >= lo) & (pos < hi)).nonzero().squeeze(1)

        mine = share(ctx.rank)
        x_mine, st = self.sampler.synthesize(
            self.fwd, x0[mine], targets[mine].to(self.device), targets[mine], taus
        )
        order = torch.cat([share(r) for r in range(ctx.world_size)])
        x = torch.empty_like(x0)
        x[order.to(x0.device)] = all_gather_cat(x_mine)
        n = float(mine.numel())
        sums = all_reduce_(torch.tensor([st.image_steps, st.converged * n, st.final_gap * n, n],
                                        dtype=torch.float64))
        steps = all_reduce_(torch.tensor([st.steps]), dist.ReduceOp.MAX)
        total = float(sums[3])
        return x, SynthesisStats(int(steps), int(sums[0]), float(sums[1]) / total, float(sums[2]) / total)

    def error(self, data: ImageSet) -> float:
        """Top-1 error on ``data``; under a process group each rank scores a contiguous share."""
        bs, dev = self.cfg.eval_batch_size, self.device
        self.state.cost["eval_images"] += len(data)
        if not self.ctx.enabled:
            return evaluate_error(self.model, data, batch_size=bs, device=dev)
        lo, hi = shard_bounds(len(data), self.ctx)
        wrong = _count_wrong(self.model, data.subset(slice(lo, hi)), batch_size=bs, device=dev)
        return float(all_reduce_(torch.tensor([wrong]))) / max(len(data), 1)


def _local_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of a rank's own generator in one epoch (a function of position, so resume is exact)."""
    return (seed * 1_000_003 + epoch) * 1_009 + rank + 1


def _write_record(
    out: Path, run: _Run, status: str, command: str | None, device: torch.device
) -> dict[str, Any]:
    """Build the run's record; rank 0 alone writes record.json and epochs.csv."""
    st = run.state
    hist = st.history
    gpu_s = st.wall_time_s * run.ctx.world_size if device.type == "cuda" else None
    best = next((h for h in hist if h["epoch"] == st.best_epoch), None)
    record = {
        "command": command,
        "status": status,
        "config": run.cfg.to_dict(),
        "seed": run.cfg.seed,
        "versions": versions(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "epochs_run": st.epoch,
        "wall_time_s": st.wall_time_s,
        "best_epoch": st.best_epoch,
        "best_val_error": st.best_val if math.isfinite(st.best_val) else None,
        "test_error_at_best_val": best["test_error"] if best else None,
        "min_test_error": min((h["test_error"] for h in hist), default=None),
        "final_test_error": hist[-1]["test_error"] if hist else None,
        "world_size": run.ctx.world_size,
        "fast_paths": run.fast.record(),
        "cost": {**st.cost, "gpu_s": gpu_s},
        "history": hist,
    }
    if not run.ctx.is_main:
        return record
    (out / "record.json").write_text(json.dumps(record, indent=2))
    if hist:
        keys = list(dict.fromkeys(k for h in hist for k in h))
        with (out / "epochs.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(hist)
    return record


# What a supervised checkpoint must hold to be resumed.
RESUME_KEYS = ("model", "dataset", "method", "config", "epoch", "history", "best", "wall_time_s",
               "model_state", "optimizer_state", "pool_state", "rng")
# Settings a resumed run may change: how long, where and how fast it runs (see .resume).
RESUME_FREE = ("epochs", "device", "out", "progress", "data_dir", "download", "eval_batch_size", "fast")


def train(
    cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, command: str | None = None
) -> dict[str, Any]:
    """Train one classifier by ``cfg.method`` and write checkpoints, record.json, epochs.csv.

    Under torchrun (or an initialised process group) the run is data-parallel across ranks
    (:mod:`.distributed`); every rank returns the same record, rank 0 alone writes files.

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
        claimed = claim(cfg.out, results=RUN_FILES, resume=resume, overwrite=overwrite) if ctx.is_main \
            else contextlib.nullcontext(Path(cfg.out))
        with claimed:
            return _train(cfg, resume=resume, command=command, ctx=ctx, device=device)


def _train(
    cfg: TrainConfig, *, resume: bool, command: str | None, ctx: DistContext, device: torch.device
) -> dict[str, Any]:
    out = Path(cfg.out)
    last = out / "checkpoint-last.pt"
    ckpt = None
    if resume:
        if not last.exists():
            raise ResumeError(f"--resume: no {last} to resume from")
        ckpt = load_checkpoint(last)
        require_keys(ckpt, last, RESUME_KEYS)
        had = TrainConfig.from_dict(ckpt["config"]).to_dict()  # older runs: defaults filled in
        check_resume_settings(had, cfg.to_dict(), RESUME_FREE, str(out))
        if int(ckpt["epoch"]) >= cfg.epochs:
            raise BadValueError(
                f"--resume: {out} has already run {int(ckpt['epoch'])} epochs; give --epochs above "
                f"that to continue it"
            )
    data = load_dataset(
        cfg.dataset, data_dir=cfg.data_dir, download=cfg.download, val_size=cfg.val_size,
        limit_train=cfg.limit_train, limit_test=cfg.limit_test,
    )
    run = _Run(cfg, data, device, ctx)
    if ckpt is not None:
        run.restore(ckpt)
        log.info("resumed %s at epoch %d", last, run.state.epoch)
    status = "running"
    record: dict[str, Any] = {}
    try:
        while run.state.epoch < cfg.epochs:
            t0 = time.perf_counter()
            metrics = run.train_epoch(cfg.progress)
            t_train = time.perf_counter() - t0
            val = run.error(data.val) if data.val else math.nan
            test = run.error(data.test)
            _sync(device)
            run.state.cost["eval_time_s"] += time.perf_counter() - t0 - t_train
            st = run.state
            st.epoch += 1
            st.wall_time_s += time.perf_counter() - t0
            row = {"epoch": st.epoch, **metrics, "val_error": val, "test_error": test,
                   "epoch_time_s": time.perf_counter() - t0, "train_time_s": t_train}
            st.history.append(row)
            improved = (val <= st.best_val) if data.val else True  # code: best val acc uses >=
            if improved:
                st.best_val, st.best_epoch = (val if data.val else math.inf), st.epoch
            if ctx.is_main:
                state = run.checkpoint_state(row)
                save_checkpoint(state, last)
                if improved:
                    save_checkpoint(state, out / "checkpoint-best.pt")
            _write_record(out, run, "running", command, device)
            log.log(
                logging.INFO if ctx.is_main else logging.DEBUG,
                "epoch %d/%d  loss %.4f  val %.2f%%  test %.2f%%  (%.1fs)", st.epoch, cfg.epochs,
                metrics["loss"], 100 * val, 100 * test, row["epoch_time_s"],
            )
        status = "completed"
    except NonFiniteLossError:
        status = "non-finite"
        raise
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record = _write_record(out, run, status, command, device)
    return record
