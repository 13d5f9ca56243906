"""Supervised training: baseline (cross-entropy) and WINN (paper §5.6, REFERENCE §1.4-1.8).

One epoch of WINN = one pass over the training split in batches of 100 positives, each
paired with 100 class-matched pseudo-negatives drawn from the pool, minimising
CE + alpha * (W + lambda * GP); then one synthesis pass of ``per_class`` new pseudo-negatives
per class, all classes batched, appended to the pool; then validation and test error.
The baseline is the same loop with cross-entropy alone. Checkpoints are written at the end of
every epoch (``checkpoint-last.pt``) and at every new best validation error
(``checkpoint-best.pt``), so an interrupted run resumes from its last finished epoch and
reproduces the uninterrupted run exactly (same RNG, optimizer and pool states).
"""

from __future__ import annotations

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
from torch import nn
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint, versions
from ..config import Method, TrainConfig
from ..data import DataSplits, ImageSet, load_dataset
from ..losses import cross_entropy, gradient_penalty, winn_supervised_loss
from ..models import Introspective, build_classifier
from ..models.init_nets import DCGANInitGenerator
from ..synthesis import NegativePool, PseudoNegativeSampler

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "ResumeError", "resolve_device", "evaluate_error", "train"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class ResumeError(RuntimeError):
    """``--resume`` was asked for but the folder holds no compatible checkpoint."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise torch.device(name), checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return dev


@torch.no_grad()
def evaluate_error(model: nn.Module, data: ImageSet, *, batch_size: int, device: torch.device) -> float:
    """Top-1 error (argmax of the logits) of ``model`` on ``data`` (REFERENCE §1.8)."""
    was_training = model.training
    model.eval()
    wrong = 0
    for x, y in data.batches(batch_size):
        wrong += int((model(x.to(device)).argmax(1).cpu() != y).sum())
    model.train(was_training)
    return wrong / max(len(data), 1)


@dataclass
class _State:
    """Everything that changes during training and must survive a resume."""

    epoch: int = 0  # epochs finished
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    wall_time_s: float = 0.0


class _Run:
    """One training run: owns the model, optimizer, pool and RNG; the loop lives in :func:`train`."""

    def __init__(self, cfg: TrainConfig, data: DataSplits, device: torch.device) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        self.method = Method(cfg.method)
        torch.manual_seed(cfg.seed)
        clf = build_classifier(cfg.arch, image_shape=data.image_shape, num_classes=data.num_classes)
        self.model = Introspective(clf, data.num_classes).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)  # data order, pool, eps, tau, z
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
        self.model.load_state_dict(ckpt["model_state"])
        self.opt.load_state_dict(ckpt["optimizer_state"])
        if self.pool is not None:
            self.pool.load_state_dict(ckpt["pool_state"])
        self.gen.set_state(ckpt["rng"]["gen"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.state = _State(
            epoch=int(ckpt["epoch"]), history=list(ckpt["history"]),
            best_val=float(ckpt["best"]["val_error"]), best_epoch=int(ckpt["best"]["epoch"]),
            wall_time_s=float(ckpt["wall_time_s"]),
        )

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, progress: bool) -> dict[str, float]:
        cfg, dev = self.cfg, self.device
        self.model.train()
        sums = {"loss": 0.0, "ce": 0.0, "wasserstein": 0.0, "gp": 0.0}
        f_pos_means: list[float] = []
        n_batches = math.ceil(len(self.data.train) / cfg.batch_size)
        bar = tqdm(
            self.data.train.batches(cfg.batch_size, shuffle=True, generator=self.gen),
            total=n_batches, desc=f"epoch {self.state.epoch + 1}/{cfg.epochs}", leave=False,
            disable=None if progress else True, file=sys.stderr,
        )
        for x, y in bar:
            x, y = x.to(dev), y.to(dev)
            if self.method is Method.BASELINE:
                loss = cross_entropy(self.model(x), y)
                parts = {"ce": loss.detach()}
            else:
                assert self.pool is not None
                x_neg = self.pool.sample(y.cpu(), generator=self.gen).to(dev)
                logits, f = self.model.logits_and_critic(torch.cat([x, x_neg]))  # (2N, K), (2N,)
                n = x.shape[0]
                gp = gradient_penalty(self.model.critic, x, x_neg, generator=self.gen)
                out = winn_supervised_loss(
                    logits[:n], f[:n], f[n:], gp, y, alpha=cfg.alpha, gp_lambda=cfg.gp_lambda
                )
                loss = out.total
                parts = {"ce": out.ce, "wasserstein": out.wasserstein, "gp": out.gp}
                f_pos_means.append(float(out.f_pos_mean))  # pre-update batch mean (REF §1.6)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss.item()}) in epoch {self.state.epoch + 1}; "
                    f"try a lower --lr or --alpha. The last good checkpoint is kept."
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            sums["loss"] += loss.item()
            for k, v in parts.items():
                sums[k] += float(v)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        metrics = {k: v / n_batches for k, v in sums.items()}
        if self.method is Method.WINN:
            metrics.update(self.synthesize(f_pos_means))
        return metrics

    def synthesize(self, f_pos_means: list[float]) -> dict[str, float]:
        """Append ``per_class`` new pseudo-negatives per class to the pool (REFERENCE §1.6)."""
        assert self.pool is not None
        s, k = self.cfg.synthesis, self.data.num_classes
        lo, hi = min(f_pos_means), max(f_pos_means)
        taus = lo + (hi - lo) * torch.rand(k, generator=self.gen)  # one tau per class batch
        targets = torch.arange(k).repeat_interleave(s.per_class)  # (K * per_class,)
        t0 = time.perf_counter()
        x0 = self.init_gen.sample(targets.numel(), generator=self.gen)
        x, stats = self.sampler.synthesize(self.model, x0, targets.to(self.device), targets, taus)
        self.pool.add(x, targets)
        return {
            "synth_steps": float(stats.steps), "synth_image_steps": float(stats.image_steps),
            "synth_converged": stats.converged, "synth_final_gap": stats.final_gap,
            "tau_min": lo, "tau_max": hi, "pool_size": float(len(self.pool)),
            "synth_time_s": time.perf_counter() - t0,
        }


def _write_record(
    out: Path, run: _Run, status: str, command: str | None, device: torch.device
) -> dict[str, Any]:
    st = run.state
    hist = st.history
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
        "history": hist,
    }
    (out / "record.json").write_text(json.dumps(record, indent=2))
    if hist:
        keys = list(dict.fromkeys(k for h in hist for k in h))
        with (out / "epochs.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(hist)
    return record


def train(cfg: TrainConfig, *, resume: bool = False, command: str | None = None) -> dict[str, Any]:
    """Train one classifier by ``cfg.method`` and write checkpoints, record.json, epochs.csv.

    Args:
        cfg: the run's configuration.
        resume: continue from ``cfg.out/checkpoint-last.pt`` (RNG, optimizer, pool included).
        command: the command line that started the run, stored in the record.

    Returns:
        The record written to ``cfg.out/record.json``.

    Raises:
        NonFiniteLossError: the loss diverged (record status "non-finite"; checkpoints kept).
        ResumeError, DataUnavailableError, ModelSpecError, ValueError: bad input.
    """
    if cfg.epochs < 0:
        raise ValueError("epochs must be >= 0")
    out = Path(cfg.out)
    device = resolve_device(cfg.device)
    last = out / "checkpoint-last.pt"
    ckpt = None
    if resume:
        if not last.exists():
            raise ResumeError(f"--resume: no {last} to resume from")
        ckpt = load_checkpoint(last)
    data = load_dataset(
        cfg.dataset, data_dir=cfg.data_dir, download=cfg.download, val_size=cfg.val_size,
        limit_train=cfg.limit_train, limit_test=cfg.limit_test,
    )
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(cfg, data, device)
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
            bs = cfg.eval_batch_size
            val = evaluate_error(run.model, data.val, batch_size=bs, device=device) if data.val else math.nan
            test = evaluate_error(run.model, data.test, batch_size=bs, device=device)
            st = run.state
            st.epoch += 1
            st.wall_time_s += time.perf_counter() - t0
            row = {"epoch": st.epoch, **metrics, "val_error": val, "test_error": test,
                   "epoch_time_s": time.perf_counter() - t0, "train_time_s": t_train}
            st.history.append(row)
            improved = (val <= st.best_val) if data.val else True  # code: best val acc uses >=
            if improved:
                st.best_val, st.best_epoch = (val if data.val else math.inf), st.epoch
            state = run.checkpoint_state(row)
            save_checkpoint(state, last)
            if improved:
                save_checkpoint(state, out / "checkpoint-best.pt")
            _write_record(out, run, "running", command, device)
            log.info(
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
