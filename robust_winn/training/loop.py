"""One run lifecycle for every trainer (DESIGN §2): resume, units, checkpoints, records.

The supervised (baseline, WINN), unsupervised WINN and WGAN-GP trainers differ in what one
*unit* of training is (an epoch, an iteration, a block of iterations) and in what they store;
they share everything around it, which lives here once:

- :func:`load_for_resume` reads ``checkpoint-last.pt``, checks that it holds what a resume
  needs and that the command asks for no setting the run cannot honour (:mod:`.resume`);
- :func:`drive` runs units until the trainer is done (or ``stop_after`` units), writes
  ``checkpoint-last.pt`` (and any extra checkpoint the trainer names, e.g. the best-validation
  one) atomically after every unit, rewrites ``record.json`` and the per-unit CSV after every
  unit, and on the way out, whatever happened, writes the record with the final status:
  ``completed``, ``stopped`` (``stop_after`` reached), ``interrupted`` (Ctrl-C) or
  ``non-finite`` (the loss diverged). A resumed run continues bit for bit on CPU because the
  checkpoint holds every state the units change (model, optimizers, pools, RNG).

Under torchrun every rank runs the units and rank 0 alone writes files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import ResumeError
from ..runtime.checkpoint import load_checkpoint, require_keys, save_checkpoint
from ..runtime.device import resolve_device
from ..runtime.rundir import claim
from .resume import RUN_FILES, check_resume_settings

__all__ = ["NonFiniteLossError", "Trainer", "drive", "load_for_resume", "train_in_one_process"]

LAST = "checkpoint-last.pt"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer(Protocol):
    """What :func:`drive` needs from a trainer."""

    out: Path  # the run's folder (claimed by the caller)
    is_main: bool  # this process writes files (rank 0)
    table_name: str  # the per-unit CSV: "epochs.csv", "iterations.csv"

    def done(self) -> bool:
        """All units of the configured budget have run."""

    def run_unit(self) -> dict[str, Any]:
        """Run one unit and return its row (metrics, times) for the history."""

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resume needs, plus the metadata loaders read."""

    def extra_checkpoints(self, row: dict[str, Any]) -> Collection[str]:
        """File names besides ``checkpoint-last.pt`` to save this unit's state to."""

    def record(self, status: str, command: str | None) -> dict[str, Any]:
        """The run's record.json content with this status."""

    def history(self) -> list[dict[str, Any]]:
        """The rows of every unit run so far (this run and the resumed ones)."""

    def log_unit(self, row: dict[str, Any]) -> None:
        """One log line for a finished unit."""


def load_for_resume(
    out: Path,
    *,
    keys: Collection[str],
    config_of: Callable[[dict[str, Any]], dict[str, Any]],
    want: dict[str, Any],
    free: Collection[str],
) -> dict[str, Any]:
    """Read ``out/checkpoint-last.pt`` for a resume and refuse what the run cannot honour.

    Args:
        out: the run's folder.
        keys: entries the checkpoint must hold.
        config_of: the checkpoint's config as a dict, older checkpoints' defaults filled in.
        want: the config the command asks for, as a dict.
        free: settings a resume may change (:func:`.resume.check_resume_settings`).

    Raises:
        ResumeError: no checkpoint, or settings that differ; CheckpointError: a foreign file.
    """
    last = out / LAST
    if not last.exists():
        raise ResumeError(f"--resume: no {last} to resume from")
    ckpt = load_checkpoint(last)
    require_keys(ckpt, last, keys)
    check_resume_settings(config_of(ckpt), want, free, str(out))
    return ckpt


def _write_outputs(trainer: Trainer, record: dict[str, Any]) -> None:
    (trainer.out / "record.json").write_text(json.dumps(record, indent=2))
    rows = trainer.history()
    if rows:
        keys = list(dict.fromkeys(k for h in rows for k in h))
        with (trainer.out / trainer.table_name).open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


def drive(trainer: Trainer, *, command: str | None, stop_after: int | None = None) -> dict[str, Any]:
    """Run ``trainer``'s units with a checkpoint and a record after each; return the record.

    Raises:
        NonFiniteLossError: from a unit (status "non-finite", the last checkpoint kept).
        KeyboardInterrupt: Ctrl-C (status "interrupted", the last finished unit kept).
    """
    status, ran = "running", 0
    try:
        while not trainer.done() and (stop_after is None or ran < stop_after):
            row = trainer.run_unit()
            ran += 1
            if trainer.is_main:
                state = trainer.checkpoint_state()
                save_checkpoint(state, trainer.out / LAST)
                for name in trainer.extra_checkpoints(row):
                    save_checkpoint(state, trainer.out / name)
                _write_outputs(trainer, trainer.record("running", command))
            trainer.log_unit(row)
        status = "completed" if trainer.done() else "stopped"
    except NonFiniteLossError:
        status = "non-finite"
        raise
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record = trainer.record(status, command)
        if trainer.is_main:
            _write_outputs(trainer, record)
    return record


def train_in_one_process(
    cfg: Any,
    *,
    method: str,
    keys: Collection[str],
    free: Collection[str],
    make_trainer: Callable[[torch.device, dict[str, Any] | None], Any],
    resume: bool,
    overwrite: bool,
    command: str | None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """The whole run of a single-process trainer (unsupervised WINN, WGAN-GP).

    Validates ``cfg``, claims ``cfg.out`` (:func:`robust_winn.runtime.rundir.claim`), reads the
    checkpoint of a resume (its ``method`` must be ``method``, its settings those of ``cfg`` but
    ``free``), lets ``make_trainer(device, checkpoint or None)`` build the trainer (restored or
    freshly started), then :func:`drive` s it and closes it (its ``close()``) whatever happens.
    """
    cfg.validate()
    device = resolve_device(cfg.device)

    def config_of(ckpt: dict[str, Any]) -> dict[str, Any]:
        if ckpt.get("method") != method:
            raise ResumeError(f"checkpoint method is {ckpt.get('method')!r}, not {method!r}")
        return type(cfg).from_dict(ckpt["config"]).to_dict()

    with claim(cfg.out, results=RUN_FILES, resume=resume, overwrite=overwrite):
        ckpt = None
        if resume:
            ckpt = load_for_resume(
                Path(cfg.out), keys=keys, config_of=config_of, want=cfg.to_dict(), free=free
            )
        trainer = make_trainer(device, ckpt)
        try:
            return drive(trainer, command=command, stop_after=stop_after)
        finally:
            trainer.close()
