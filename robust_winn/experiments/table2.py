"""Reproduce paper Table 2 (test errors of baseline vs WINN) from real training runs.

Every number comes from a ``record.json`` written by :func:`robust_winn.training.train`;
tables are rendered from those records with pandas, never typed. Runs live under
``runs_dir/{dataset}-{arch}-{method}-s{seed}`` and are reused (or resumed) when present, so
Tables 3 and 4 attack the very checkpoints Table 2 reports.

Table files are never silently degraded: before any training, :func:`check_measured_kept`
compares the rows a run will produce with the table already in the output folder and refuses
(``RunDirError``) to replace a measured row (status ``"run"``) with a "not run here" row or to
drop it, unless ``replace_measured`` is set (``--replace-measured``). Every table file is
written whole or not at all (:func:`robust_winn.runtime.atomic.write_files_atomically`).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..config import Method, SynthesisConfig, TrainConfig
from ..data.datasets import DataUnavailableError, load_dataset
from ..errors import RunDirError, UserError
from ..runtime.atomic import write_files_atomically
from ..runtime.device import resolve_device
from ..runtime.header import run_header
from ..runtime.rundir import check_writable
from ..training import train
from .presets import DATA_DIR, RESULTS_DIR, RUNS_DIR, TABLE2_ROWS, TABLE_BUDGET

log = logging.getLogger(__name__)

__all__ = [
    "GridSpec",
    "MEASURED",
    "PAPER_TABLE2",
    "TABLE2_KEY",
    "check_measured_kept",
    "mean_std",
    "plan_grid",
    "reproduce_table2",
    "run_dir",
    "run_grid",
    "device_type",
    "train_or_reuse",
]

# Paper Table 2, test error in percent.
PAPER_TABLE2: dict[tuple[str, str, str], float] = {
    ("mnist", "vanilla", "baseline"): 0.89,
    ("mnist", "vanilla", "winn"): 0.67,
    ("mnist", "resnet32", "baseline"): 0.45,
    ("mnist", "resnet32", "winn"): 0.48,
    ("svhn", "resnet32", "baseline"): 4.64,
    ("svhn", "resnet32", "winn"): 4.50,
}
NO_DATA = "not run here (data unavailable offline)"
NO_GPU = "not run here (no GPU: ResNet-32 rows need --device cuda or --allow-cpu-resnet)"
MEASURED = "run"  # the status of a row whose numbers this code measured
TABLE2_KEY = ("dataset", "arch", "method")  # the columns that name a row of table2.csv


@dataclass
class GridSpec:
    """Which runs a table needs and how each is trained (defaults: :mod:`.presets`)."""

    rows: Sequence[tuple[str, str]] = TABLE2_ROWS
    seeds: Sequence[int] = TABLE_BUDGET.seeds
    epochs: int = TABLE_BUDGET.epochs  # paper/code: 200 (CPU budget: see results/table2.md)
    synth_max_steps: int = TABLE_BUDGET.synth_max_steps  # code: 2000
    data_dir: str = DATA_DIR
    runs_dir: str = RUNS_DIR
    device: str = "auto"
    allow_cpu_resnet: bool = False  # ResNet-32 on CPU takes hours per run
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # more TrainConfig overrides


def run_dir(spec: GridSpec, dataset: str, arch: str, method: str, seed: int) -> Path:
    """Folder of one training run of the grid."""
    return Path(spec.runs_dir) / f"{dataset}-{arch}-{method}-s{seed}"


def _row_status(spec: GridSpec, dataset: str, arch: str) -> str | None:
    """None if the row can run here, else the reason it is not run.

    A dataset whose files are missing from an existing ``data_dir`` gives a "not run here" row
    (an offline machine without SVHN); a ``data_dir`` that does not exist at all is an error,
    since it is far more often a typo than a statement about the machine.

    Raises:
        DataUnavailableError: the dataset needs ``data_dir`` and that folder does not exist.
        UnknownNameError: an unknown dataset name.
    """
    try:
        load_dataset(dataset, data_dir=spec.data_dir, download=False)
    except DataUnavailableError:
        if not Path(spec.data_dir).exists():
            raise DataUnavailableError(
                f"--data-dir {spec.data_dir} does not exist and the {dataset} rows need data from "
                f"it; give the folder that holds the datasets (torchvision layout), or create it "
                f"empty to mark the rows that need data as not run here"
            ) from None
        return NO_DATA
    if arch.startswith("resnet") and resolve_device(spec.device).type == "cpu" and not spec.allow_cpu_resnet:
        return NO_GPU
    return None


def plan_grid(spec: GridSpec) -> dict[tuple[str, str], str]:
    """The status of every (dataset, arch) row, known before any training: ``"run"`` or why not.

    Raises:
        DataUnavailableError: a row needs data from a ``data_dir`` that does not exist.
        UnknownNameError: an unknown dataset name.
    """
    return {(d, a): _row_status(spec, d, a) or MEASURED for d, a in spec.rows}


def _read_record(rec_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record of a run folder and its config as a dict; RunDirError if it is unusable."""
    try:
        rec = json.loads(rec_path.read_text())
        had = TrainConfig.from_dict(rec["config"]).to_dict()  # older records: default fast paths
        _ = (rec["status"], rec["epochs_run"])  # both are needed by the caller
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UserError) as exc:
        raise RunDirError(
            f"{rec_path} is not a readable robust_winn run record ({type(exc).__name__}: "
            f"{exc}); move that run away or use another --runs-dir"
        ) from None
    return rec, had


def device_type(used: object) -> str | None:
    """The type ("cpu", "cuda") of the device a record says its run computed on; None if it says none.

    Runs are compared by the device they used, not by how it was asked for: ``auto`` and ``cpu``
    are the same run on a machine without a GPU. An unreadable entry counts as another device.
    """
    if used is None:
        return None
    try:
        return torch.device(str(used)).type
    except (RuntimeError, TypeError, ValueError):
        return "unknown"


def train_or_reuse(cfg: TrainConfig, command: str) -> dict[str, Any]:
    """Reuse a finished run with the same config, resume a shorter one, or train afresh.

    Raises:
        RunDirError: the run folder holds an unreadable record or a run with another
            configuration (it is never overwritten).
    """
    out = Path(cfg.out)
    rec_path = out / "record.json"
    if rec_path.exists():
        rec, had = _read_record(rec_path)
        ignore = ("epochs", "progress", "out", "device")
        want = cfg.to_dict()
        diff = sorted(k for k in set(had) | set(want) if k not in ignore and had.get(k) != want.get(k))
        if device_type(rec.get("device")) not in (None, resolve_device(cfg.device).type) or (
            rec.get("device") is None and had.get("device") != want.get("device")
        ):
            diff = sorted([*diff, "device"])
        if not diff and rec["status"] == "completed" and rec["epochs_run"] == cfg.epochs:
            log.info("reusing %s", out)
            return rec
        if not diff and rec["epochs_run"] < cfg.epochs and (out / "checkpoint-last.pt").exists():
            log.info("resuming %s at epoch %d", out, rec["epochs_run"])
            return train(cfg, resume=True, command=command)
        if diff:
            raise RunDirError(
                f"{out} holds a run with another configuration (differs in {', '.join(diff)}); "
                f"use another --runs-dir"
            )
    return train(cfg, command=command)


def run_grid(
    spec: GridSpec,
    command: str,
    *,
    plan: Mapping[tuple[str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """Train (or reuse) every run of the grid; one result dict per (row, method).

    ``plan`` is :func:`plan_grid`'s answer when the caller already has it (it loads data).
    """
    plan = plan_grid(spec) if plan is None else plan
    results = []
    for dataset, arch in spec.rows:
        status = plan[(dataset, arch)]
        for method in (Method.BASELINE, Method.WINN):
            entry: dict[str, Any] = {
                "dataset": dataset,
                "arch": arch,
                "method": method.value,
                "status": status,
                "records": {},
            }
            if status == MEASURED:
                for seed in spec.seeds:
                    cfg = TrainConfig(
                        dataset=dataset,
                        data_dir=spec.data_dir,
                        arch=arch,
                        method=method,
                        epochs=spec.epochs,
                        seed=seed,
                        device=spec.device,
                        out=str(run_dir(spec, dataset, arch, method.value, seed)),
                        progress=spec.progress,
                        synthesis=SynthesisConfig(max_steps=spec.synth_max_steps),
                    )
                    cfg = replace(cfg, **spec.extra)
                    entry["records"][seed] = train_or_reuse(cfg, command)
            results.append(entry)
    return results


def _is_measured(status: Any) -> bool:
    """A row counts as measured unless its status says otherwise ("not run here ...")."""
    if status is None or (isinstance(status, float) and math.isnan(status)):
        return True  # no status column (ablations.json): every row there was measured
    return str(status).strip() in ("", MEASURED)


def _existing_rows(out_dir: Path, name: str) -> tuple[Path, list[dict[str, Any]]] | None:
    """The rows of ``out_dir/name.json`` (else ``name.csv``), or None if neither exists."""
    for path in (out_dir / f"{name}.json", out_dir / f"{name}.csv"):
        if not path.exists():
            continue
        try:
            if path.suffix == ".json":
                rows = json.loads(path.read_text())["rows"]
            else:
                rows = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise TypeError("its rows are not a list of records")
        except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError) as exc:
            raise RunDirError(
                f"cannot tell which rows of the existing table {path} are measured ({exc}); pass "
                f"--replace-measured to replace it, or choose another --out"
            ) from None
        return path, rows
    return None


def check_measured_kept(
    out_dir: str | Path,
    name: str,
    key: Sequence[str],
    planned: Mapping[tuple[str, ...], str],
    *,
    replace_measured: bool = False,
) -> None:
    """Refuse to replace measured rows of the table already in ``out_dir`` by rows not measured.

    The existing table is ``out_dir/name.json`` (its ``rows``) or else ``name.csv``. A row there
    is measured when its ``status`` is ``"run"`` or it has no status (ablations). Each measured
    row, named by its ``key`` columns, must be measured again by the new run: ``planned`` maps
    the key of every row the run will write to its status. A measured row that would become
    "not run here ..." or "not requested", or would be dropped, is refused, so that e.g. a
    mistyped ``--data-dir`` never overwrites committed results.

    Args:
        out_dir: the table folder.
        name: the table's file stem (``table2``, ``table3``, ``table4``, ``ablations``).
        key: the columns that name a row (e.g. ``("dataset", "arch", "attack")``).
        planned: key (values as text) -> status of the new run's rows.
        replace_measured: the user passed ``--replace-measured``: no check.

    Raises:
        RunDirError: measured rows would be lost (the message names them), or the existing
            table cannot be read.
    """
    if replace_measured:
        return
    found = _existing_rows(Path(out_dir), name)
    if found is None:
        return
    path, rows = found
    lost: list[str] = []
    for row in rows:
        if not _is_measured(row.get("status")):
            continue
        missing = [c for c in key if c not in row]
        if missing:
            raise RunDirError(
                f"cannot tell which rows of the existing table {path} are measured (no column "
                f"{', '.join(missing)}); pass --replace-measured to replace it, or choose another --out"
            )
        k = tuple(str(row[c]) for c in key)
        now = planned.get(k)
        if now != MEASURED:
            lost.append(f"{'/'.join(k)} -> {now or 'dropped'}")
    if lost:
        shown = "; ".join(lost[:6]) + (f"; and {len(lost) - 6} more" if len(lost) > 6 else "")
        raise RunDirError(
            f"{path} holds measured results that this run would not measure again: {shown}. "
            f"Pass --replace-measured to replace them anyway, or choose another --out"
        )


def _table2_keys(df: pd.DataFrame) -> dict[tuple[str, ...], str]:
    return {tuple(str(r[c]) for c in TABLE2_KEY): str(r["status"]) for r in df.to_dict("records")}


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std of the values that are not None (std 0 for one value)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def table2_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of Table 2: paper error beside ours (mean and std over seeds, in percent)."""
    rows = []
    for e in results:
        recs = e["records"]
        at_val = [100 * r["test_error_at_best_val"] for r in recs.values()]
        min_test = [100 * r["min_test_error"] for r in recs.values()]
        m, s = mean_std(at_val)
        mm, ms = mean_std(min_test)
        rows.append(
            {
                "dataset": e["dataset"],
                "arch": e["arch"],
                "method": e["method"],
                "paper_error_pct": PAPER_TABLE2.get((e["dataset"], e["arch"], e["method"])),
                "error_at_best_val_pct_mean": m,
                "error_at_best_val_pct_std": s,
                "min_test_error_pct_mean": mm,
                "min_test_error_pct_std": ms,
                "seeds": " ".join(str(k) for k in recs),
                "per_seed_error_at_best_val_pct": " ".join(f"{v:.2f}" for v in at_val),
                "epochs": next((r["epochs_run"] for r in recs.values()), None),
                "status": e["status"],
            }
        )
    return pd.DataFrame(rows)


def _fmt(m: float | None, s: float | None) -> str:
    return "-" if m is None or pd.isna(m) else f"{m:.2f} ± {s:.2f}"


def write_table2(df: pd.DataFrame, out_dir: Path, meta: dict[str, Any]) -> None:
    """results/table2.csv (machine-readable) and table2.md (paper beside ours, with provenance)."""
    lines = [
        "# Table 2: test error (%), paper vs robust_winn",
        "",
        f"Command: `{meta['command']}`  ",
        f"Seeds: {meta['seeds']}; epochs: {meta['epochs']} (paper/code: 200); synthesis cap: "
        f"{meta['synth_max_steps']} Adam steps (code: 2000); device: {meta['device']} "
        f"({meta['torch_threads']} threads); training wall time (sum over runs): "
        f"{meta['wall_time_s'] / 60:.1f} min; "
        f"date: {meta['date']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        "",
        "| dataset | model | method | paper | ours: test error at best-val epoch | "
        "ours: min test error over epochs | per seed (best-val) | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        paper = "-" if pd.isna(r.paper_error_pct) else f"{r.paper_error_pct:.2f}"
        lines.append(
            f"| {r.dataset} | {r.arch} | {r.method} | {paper} | "
            f"{_fmt(r.error_at_best_val_pct_mean, r.error_at_best_val_pct_std)} | "
            f"{_fmt(r.min_test_error_pct_mean, r.min_test_error_pct_std)} | "
            f"{r.per_seed_error_at_best_val_pct or '-'} | {r.status} |"
        )
    lines += [
        "",
        "Mean ± sample std over seeds. 'best-val' = the checkpoint with the lowest error on the "
        "last 15,000 training images (REFERENCE §1.1), the honest number; 'min test' = the best "
        "test epoch, which the released code logs and which selects on the test set "
        "(REFERENCE §1.8 cannot tell which the paper reports).",
    ]
    write_files_atomically(
        {
            out_dir / "table2.csv": df.to_csv(index=False),
            out_dir / "table2.md": "\n".join(lines) + "\n",
        }
    )


def reproduce_table2(
    spec: GridSpec,
    *,
    out_dir: str | Path = RESULTS_DIR,
    command: str,
    replace_measured: bool = False,
) -> pd.DataFrame:
    """Train the grid, write results/table2.{csv,md}, return the frame.

    Before any training the output folder is checked (writable) and so is the existing
    ``table2.csv`` there: a measured row that this run would mark "not run here" or drop is
    refused unless ``replace_measured`` (:func:`check_measured_kept`).

    Raises:
        RunDirError: ``out_dir`` not writable, measured rows would be lost, or a run folder of
            ``runs_dir`` holds another configuration.
        DataUnavailableError: ``data_dir`` does not exist and a row needs data.
    """
    t0 = time.perf_counter()
    out = check_writable(out_dir, "--out")
    plan = plan_grid(spec)
    planned = {(d, a, m.value): plan[(d, a)] for d, a in spec.rows for m in (Method.BASELINE, Method.WINN)}
    check_measured_kept(out, "table2", TABLE2_KEY, planned, replace_measured=replace_measured)
    results = run_grid(spec, command, plan=plan)
    df = table2_frame(results)
    check_measured_kept(out, "table2", TABLE2_KEY, _table2_keys(df), replace_measured=replace_measured)
    meta = {
        **run_header(command, resolve_device(spec.device)),
        "seeds": ", ".join(map(str, spec.seeds)),
        "epochs": spec.epochs,
        "synth_max_steps": spec.synth_max_steps,
        "wall_time_s": sum(r["wall_time_s"] for e in results for r in e["records"].values()),
        "reproduce_wall_time_s": time.perf_counter() - t0,
    }
    write_table2(df, out, meta)
    return df
