"""Reproduce the OOD table (issue 14 §4): what the critic of Table 3's WINN runs knows.

The MNIST vanilla baseline and WINN runs of Tables 2-3 (:func:`.table2.run_grid`: runs under
``runs_dir`` are reused, or resumed, when their record.json exists; missing ones are trained at the
table budget) are evaluated per seed with :func:`robust_winn.evaluation.ood.evaluate_ood`: each
seed's best-validation checkpoints against Fashion-MNIST, the synthetic sets and their own FGSM
examples at the paper's eps, with the max-softmax, critic, energy and critic-gradient scores.
The table gives, per OOD set and score, baseline vs WINN AUROC, AUPR-In and FPR@95%TPR as mean ±
sample std over seeds, and the calibration (ECE, NLL, Brier) of both, clean and on each model's
own FGSM examples (ood-calibration.csv per seed, one row per model and example set); a "Findings" section
is computed from those numbers, never typed. The energy picture of the first seed is ood.png.

A registered OOD dataset whose files are missing under ``ood_data_dir`` gives rows marked "not run
here"; a measured row of an existing ``ood`` table is never replaced by such a row or dropped
unless ``replace_measured`` (:func:`.table2.check_measured_kept`), checked before any work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.datasets import DataUnavailableError, load_dataset
from ..errors import BadValueError
from ..evaluation.ood import evaluate_ood
from ..evaluation.ood_inputs import SetKind, parse_ood, parse_scores
from ..evaluation.ood_plot import energy_histograms_png
from ..evaluation.ood_report import energy_panels
from ..evaluation.ood_scores import SCORE_MEANING, Score
from ..runtime.atomic import write_files_atomically
from ..runtime.device import resolve_device
from ..runtime.header import run_header
from ..runtime.rundir import check_writable
from .presets import ATTACK_BATCH_SIZE, MNIST_EPS, RESULTS_DIR, TABLE_BUDGET
from .table2 import (
    MEASURED,
    NO_DATA,
    GridSpec,
    check_measured_kept,
    mean_std,
    plan_grid,
    run_dir,
    run_grid,
)

__all__ = ["OOD_DATA_DIR", "OOD_KEY", "OOD_SETS", "OODTableSpec", "reproduce_ood"]

OOD_DATA_DIR = "/usr/share/datasets"  # Debian's dataset-fashion-mnist installs its IDX files here
OOD_SETS = (
    "fashion-mnist",
    "uniform-noise",
    "gaussian-noise",
    "constant",
    "permuted",
    "inverted",
    f"adv:fgsm:{MNIST_EPS:g}",
)
OOD_KEY = ("dataset", "arch", "ood", "score")  # the columns that name a row of ood.json
METHODS = ("baseline", "winn")
METRICS = ("auroc", "aupr", "fpr95")
CALIBRATION = ("accuracy", "ece", "nll", "brier")


@dataclass
class OODTableSpec(GridSpec):
    """The OOD table: Table 3's MNIST vanilla runs (defaults: :mod:`.presets`), how they are scored."""

    rows: Sequence[tuple[str, str]] = (("mnist", "vanilla"),)
    ood: Sequence[str] = OOD_SETS  # OOD set names (robust_winn.evaluation.ood_inputs.parse_ood)
    scores: Sequence[str] = tuple(s.value for s in Score)  # every score, critic gradient included
    ood_data_dir: str = OOD_DATA_DIR  # root of registered OOD datasets
    limit_test: int | None = None  # first N images of every set (quick runs)
    pseudo_negatives: int = 10  # per class, synthesised for the energy picture
    negatives_max_steps: int = TABLE_BUDGET.synth_max_steps  # their step cap: the table runs' own
    batch_size: int = ATTACK_BATCH_SIZE


def _set_statuses(spec: OODTableSpec) -> dict[str, str]:
    """MEASURED for every set that can be loaded here, else why not (registered datasets only).

    Raises:
        DataUnavailableError: ``ood_data_dir`` does not exist and a registered dataset needs it.
    """
    out = {}
    for name in spec.ood:
        s = parse_ood(name)
        out[s.name] = MEASURED
        if s.kind is SetKind.DATASET:
            try:
                load_dataset(s.target, data_dir=spec.ood_data_dir, limit_test=1)
            except DataUnavailableError:
                if not Path(spec.ood_data_dir).exists():
                    raise DataUnavailableError(
                        f"--ood-data-dir {spec.ood_data_dir} does not exist and {s.name} needs it"
                    ) from None
                out[s.name] = NO_DATA
    return out


def _seed_rows(
    rec: dict[str, Any], dataset: str, arch: str, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Detection rows and calibration rows of one seed's OOD record."""
    det = [
        {
            "dataset": dataset,
            "arch": arch,
            "seed": seed,
            **{k: r.get(k) for k in ("model", "ood", "score", *METRICS, "fooled", "status")},
        }
        for r in rec["rows"]
    ]
    cal = [
        {
            "dataset": dataset,
            "arch": arch,
            "seed": seed,
            "model": name,
            "examples": examples,  # "clean", or an adversarial set made on the model (adv:...)
            **{k: c[k] for k in CALIBRATION},
        }
        for name, m in rec["models"].items()
        for examples, c in m["calibration"].items()
    ]
    return det, cal


def _aggregate(det: pd.DataFrame, key: tuple[str, ...], status: str) -> dict[str, Any]:
    """One table row: per method and metric, mean and sample std over seeds (None where n/a)."""
    row: dict[str, Any] = dict(zip(OOD_KEY, key, strict=True))
    sel = det
    for k, v in row.items():
        sel = sel[sel[k] == v]
    for method in METHODS:
        mine = sel[sel["model"] == method]
        for metric in METRICS:
            vals = [None if pd.isna(v) else float(v) for v in mine[metric]]
            row[f"{method}_{metric}_mean"], row[f"{method}_{metric}_std"] = mean_std(vals)
        row[f"{method}_note"] = "; ".join(sorted({s for s in mine["status"] if s != "measured"}))
    row["seeds"] = " ".join(str(s) for s in sorted(set(sel["seed"])))
    row["status"] = status
    return row


def reproduce_ood(
    spec: OODTableSpec,
    *,
    out_dir: str | Path = RESULTS_DIR,
    command: str | None = None,
    replace_measured: bool = False,
) -> pd.DataFrame:
    """Train or reuse Table 3's baseline and WINN runs, evaluate OOD detection, write the table.

    Writes ``out_dir/ood.{csv,md,json,png}``, ``ood-seeds.csv`` and ``ood-calibration.csv``.

    Raises:
        UnknownNameError, BadValueError: a bad set or score name or number (before any work).
        DataUnavailableError: a ``data_dir`` or ``ood_data_dir`` that does not exist.
        RunDirError: ``out_dir`` not writable, measured rows would be lost, or a run folder
            holds a run with another configuration.
    """
    t0 = time.perf_counter()
    scores = [s.value for s in parse_scores(spec.scores)]
    sets = _set_statuses(spec)
    if spec.limit_test is not None and spec.limit_test < 1:
        raise BadValueError(f"limit_test must be >= 1, got {spec.limit_test}")
    out_dir = check_writable(out_dir, "--out")
    plan = plan_grid(spec)
    planned = {
        (d, a, o, s): (plan[(d, a)] if plan[(d, a)] != MEASURED else st)
        for d, a in spec.rows
        for o, st in sets.items()
        for s in scores
    }
    check_measured_kept(out_dir, "ood", OOD_KEY, planned, replace_measured=replace_measured)
    run_grid(spec, command or "", plan=plan)
    det_rows: list[dict[str, Any]] = []
    cal_rows: list[dict[str, Any]] = []
    measured_sets = [o for o, st in sets.items() if st == MEASURED]
    picture: dict[str, Any] = {}
    negatives: dict[str, Any] = {}
    warnings: list[str] = []
    for dataset, arch in spec.rows:
        if plan[(dataset, arch)] != MEASURED or not measured_sets:
            continue
        for seed in spec.seeds:
            ckpts = {m: run_dir(spec, dataset, arch, m, seed) / "checkpoint-best.pt" for m in METHODS}
            result = evaluate_ood(
                ckpts,
                ood=measured_sets,
                in_dist=dataset,
                scores=scores,
                data_dir=spec.data_dir,
                ood_data_dir=spec.ood_data_dir,
                limit=spec.limit_test,
                batch_size=spec.batch_size,
                device=spec.device,
                seed=seed,
                pseudo_negatives=spec.pseudo_negatives,
                synth_max_steps=spec.negatives_max_steps,
                command=command,
            )
            det, cal = _seed_rows(result.record, dataset, arch, seed)
            det_rows += det
            cal_rows += cal
            warnings += [f"{arch} seed {seed}: {w}" for w in result.record["warnings"]]
            negatives[f"{arch} seed {seed}"] = {
                m: v.get("pseudo_negatives") for m, v in result.record["models"].items()
            }
            if not picture:
                picture = {f"{arch} {m} (seed {seed})": p for m, p in energy_panels(result).items()}
    det_df = pd.DataFrame(
        det_rows, columns=["dataset", "arch", "seed", "model", "ood", "score", *METRICS, "fooled", "status"]
    )
    cal_df = pd.DataFrame(cal_rows, columns=["dataset", "arch", "seed", "model", "examples", *CALIBRATION])
    df = pd.DataFrame([_aggregate(det_df, k, st) for k, st in planned.items()])
    check_measured_kept(
        out_dir,
        "ood",
        OOD_KEY,
        {tuple(str(r[c]) for c in OOD_KEY): r["status"] for r in df.to_dict("records")},
        replace_measured=replace_measured,
    )
    calibration = {  # run -> examples (clean, adv:...) -> metric -> (mean, std) over seeds
        f"{d} {a} {m}": {
            str(ex): {k: mean_std(list(g[k])) for k in CALIBRATION}
            for ex, g in cal_df[(cal_df["arch"] == a) & (cal_df["model"] == m)].groupby(
                "examples", sort=False
            )
        }
        for d, a in spec.rows
        for m in METHODS
        if plan[(d, a)] == MEASURED and not cal_df.empty
    }
    meta = {
        **run_header(command, resolve_device(spec.device)),
        "seeds": list(spec.seeds),
        "epochs": spec.epochs,
        "synth_max_steps": spec.synth_max_steps,
        "ood_data_dir": spec.ood_data_dir,
        "sets": sets,
        "scores": {s: SCORE_MEANING[Score(s)] for s in scores},
        "limit_test": spec.limit_test,
        "pseudo_negatives_per_class": spec.pseudo_negatives,
        "negatives_max_steps": spec.negatives_max_steps,
        "pseudo_negatives": negatives,
        "calibration": calibration,
        "wall_time_s": time.perf_counter() - t0,
        "warnings": warnings,
    }
    _write(df, det_df, cal_df, meta, out_dir, energy_histograms_png(picture) if picture else None)
    return df


def _fmt(m: Any, s: Any, scale: float = 100.0, digits: int = 2) -> str:
    if m is None or pd.isna(m):
        return "n/a"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}"


def _versus(a: tuple[float, float], b: tuple[float, float], what: str) -> str:
    """'beats X (+d points, beyond/within the seeds' spread)' for AUROC means and stds a, b."""
    diff = 100 * (a[0] - b[0])
    spread = "beyond" if abs(diff) > 100 * (a[1] + b[1]) else "within"
    return (
        f"{'beats' if diff > 0 else 'does not beat'} {what} ({diff:+.2f} points, {spread} the seeds' spread)"
    )


def _findings(df: pd.DataFrame) -> list[str]:
    """Per OOD set: the best score, and whether WINN's critic beats the baseline's max-softmax and
    the baseline's best score (by the mean AUROC over seeds)."""
    lines = []
    for ood, part in df[df["status"] == MEASURED].groupby("ood", sort=False):
        auroc = {
            (m, r["score"]): (r[f"{m}_auroc_mean"], r[f"{m}_auroc_std"])
            for r in part.to_dict("records")
            for m in METHODS
            if r[f"{m}_auroc_mean"] is not None and not pd.isna(r[f"{m}_auroc_mean"])
        }
        if not auroc:
            continue
        (method, score), best = max(auroc.items(), key=lambda kv: kv[1][0])
        line = f"- {ood}: best AUROC {_fmt(*best)}% ({method}, {score})"
        critic, msp = auroc.get(("winn", Score.CRITIC.value)), auroc.get(("baseline", Score.MSP.value))
        base = [(k[1], v) for k, v in auroc.items() if k[0] == "baseline"]
        if critic and msp:
            line += "; WINN's critic " + _versus(critic, msp, "the baseline's max-softmax")
        if critic and base:
            name, top = max(base, key=lambda kv: kv[1][0])
            line += " and " + _versus(critic, top, f"the baseline's best score ({name})")
        lines.append(line)
    return lines


def _write(
    df: pd.DataFrame,
    seeds: pd.DataFrame,
    cal: pd.DataFrame,
    meta: dict[str, Any],
    out: Path,
    picture: bytes | None,
) -> None:
    """ood.{csv,md,json}, ood-seeds.csv, ood-calibration.csv and ood.png (``picture``, when there
    is one), rendered first, then written atomically."""
    lines = [
        "# OOD detection and calibration: baseline vs WINN (issue 14)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Seeds: {meta['seeds']}; runs: {meta['epochs']} epochs, synthesis cap {meta['synth_max_steps']} "
        f"(Tables 2-3's runs, best-validation checkpoints); test images per set: "
        f"{meta['limit_test'] or 'all'}; device: {meta['device']} ({meta['torch_threads']} threads); "
        f"wall time {meta['wall_time_s'] / 60:.1f} min; date: {meta['date']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        "",
        "## Calibration of the test predictions, clean and on each model's own adversarial examples "
        "(15 bins; mean ± std over seeds)",
        "",
        "| run | examples | accuracy % | ECE % | NLL | Brier |",
        "|---|---|---|---|---|---|",
    ]
    for run, by_examples in meta["calibration"].items():
        for examples, c in by_examples.items():
            lines.append(
                f"| {run} | {examples} | {_fmt(*c['accuracy'])} | {_fmt(*c['ece'])} | "
                f"{_fmt(*c['nll'], 1.0, 4)} | {_fmt(*c['brier'], 1.0, 4)} |"
            )
    lines += [
        "",
        "## Detection (in-distribution test images = positive; %, mean ± std over seeds)",
        "",
        "| arch | OOD set | score | AUROC baseline | AUROC WINN | FPR@95%TPR baseline | FPR@95%TPR WINN "
        "| status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        cells = [_fmt(r[f"{m}_{k}_mean"], r[f"{m}_{k}_std"]) for k in ("auroc", "fpr95") for m in METHODS]
        lines.append(
            f"| {r['arch']} | {r['ood']} | {r['score']} | " + " | ".join(cells) + f" | {r['status']} |"
        )
    lines += ["", "## Findings (computed from the table)", "", *(_findings(df) or ["- nothing measured"])]
    lines += ["", "Scores (higher = more in-distribution):", ""]
    lines += [f"- `{k}`: {v}" for k, v in meta["scores"].items()]
    notes = sorted({r["baseline_note"] for r in df.to_dict("records") if r["baseline_note"]})
    lines += [f"- baseline n/a: {n.removeprefix('n/a: ')}" for n in notes]
    lines += [
        "- AUPR-In in ood.csv; per seed and per model in ood-seeds.csv. Adversarial examples "
        "(adv:...) are made on each model itself; ood-seeds.csv gives the share that fools it.",
        f"- ood.png: f(x) and energy histograms of the first seed; pseudo-negatives there are "
        f"{meta['pseudo_negatives_per_class']} per class and model, synthesised as in training, at "
        f"most {meta['negatives_max_steps']} Adam steps (ood.json: pseudo_negatives).",
    ]
    if meta["warnings"]:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in meta["warnings"]]
    write_files_atomically(
        {
            out / "ood.csv": df.to_csv(index=False),
            out / "ood-seeds.csv": seeds.to_csv(index=False),
            out / "ood-calibration.csv": cal.to_csv(index=False),
            out / "ood.json": json.dumps({**meta, "rows": df.to_dict("records")}, indent=2, default=str),
            out / "ood.md": "\n".join(lines) + "\n",
            **({out / "ood.png": picture} if picture else {}),
        }
    )
