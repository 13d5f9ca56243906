"""Reproduce paper Tables 3 (MNIST) and 4 (SVHN): adversarial error and correction rates.

Paper §5.6, Tables 3-4; REFERENCE §2. Baseline and WINN are trained per seed by the Table 2
grid (:func:`robust_winn.experiments.table2.run_grid`: runs under ``runs_dir`` are reused, or resumed,
when their record.json exists), so these tables attack the very checkpoints Table 2 reports.
Each seed's ``checkpoint-best.pt`` (best validation epoch) of both methods is attacked with
FGSM at the paper's eps, and with PGD as a stronger check. Numbers are rendered from the
harness records with pandas, never typed; the paper's numbers sit beside them.

Before any training or attacking, the output folder is checked and the rows the run will write
are compared with the table already there: a measured row that would become "not run here"
(e.g. after a mistyped ``--data-dir``) or vanish is refused unless ``replace_measured``
(:func:`robust_winn.experiments.table2.check_measured_kept`). The files are written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..attacks.harness import evaluate
from ..attacks.registry import check_eps, parse_attack
from ..data.datasets import load_dataset
from ..errors import BadValueError
from ..runtime.atomic import write_files_atomically
from ..runtime.checkpoint import load_classifier
from ..runtime.device import resolve_device
from ..runtime.header import run_header
from ..runtime.rundir import check_writable
from .presets import (
    ATTACK_BATCH_SIZE,
    MNIST_EPS,
    PGD_MNIST,
    RESULTS_DIR,
    SVHN_EPS,
    TABLE3_ARCHS,
    TABLE3_ATTACKS,
    TABLE3_DATASET,
    TABLE4_ATTACKS,
    TABLE4_ROWS,
)
from .table2 import (
    MEASURED,
    NO_GPU,
    GridSpec,
    check_measured_kept,
    mean_std,
    plan_grid,
    run_dir,
    run_grid,
)

log = logging.getLogger(__name__)

__all__ = [
    "AttackTableSpec",
    "PAPER_TABLE3",
    "PAPER_TABLE4",
    "PGD_MNIST",
    "Table3Spec",
    "Table4Spec",
    "reproduce_table3",
    "reproduce_table4",
    "seed_numbers",
]

METRICS = ("baseline_adv_error", "winn_adv_error", "correction_by_winn", "correction_by_baseline")
# Paper Tab. 3 / Tab. 4 (FGSM), percent, in the order of METRICS.
PAPER_TABLE3 = {"vanilla": (32.41, 7.99, 90.00, 46.93), "resnet32": (11.28, 2.05, 89.68, 43.69)}
PAPER_TABLE4 = {"resnet32": (29.29, 19.53, 74.39, 51.37)}
# Columns of TABLE-seeds.csv: one row per (arch, attack, seed); the header is written even when
# no row was run, so that a reader of e.g. table4-seeds.csv sees what would be there.
SEED_COLUMNS = ("arch", "attack", "eps", "seed", "baseline_clean_error", "winn_clean_error", *METRICS)
TABLE_KEY = ("dataset", "arch", "attack")  # the columns that name a row of table3/4.json
NOT_REQUESTED = "not requested"


@dataclass
class AttackTableSpec(GridSpec):
    """A Table 3/4 run: the training grid of one dataset, and how its checkpoints are attacked.

    ``rows`` are the (dataset, arch) runs to train or reuse; all name the same dataset. The
    paper's architectures that are not among them still get a row with the paper's numbers
    (status "not requested", or "not run here" for ResNet-32 without a GPU).
    """

    eps: float = MNIST_EPS  # L-inf radius in [0, 1] pixel units
    attacks: Sequence[str] = TABLE3_ATTACKS  # attack specs; the paper's is FGSM
    limit_test: int | None = None  # attack only the first N test images (quick runs)
    batch_size: int = ATTACK_BATCH_SIZE  # images per attack batch


@dataclass
class Table3Spec(AttackTableSpec):
    """Paper Table 3 (MNIST, vanilla CNN and ResNet-32, FGSM at eps 0.125; REFERENCE §2)."""

    rows: Sequence[tuple[str, str]] = tuple((TABLE3_DATASET, a) for a in TABLE3_ARCHS)


@dataclass
class Table4Spec(AttackTableSpec):
    """Paper Table 4 (SVHN, ResNet-32, FGSM at eps 0.005 taken in [0, 1] units; DESIGN §2)."""

    rows: Sequence[tuple[str, str]] = TABLE4_ROWS
    eps: float = SVHN_EPS
    attacks: Sequence[str] = TABLE4_ATTACKS


def seed_numbers(record: dict[str, Any], attack: str) -> dict[str, float | None]:
    """The four Table-3 numbers (percent) of one seed from one harness record."""
    white = {r["source"]: r for r in record["results"] if r["attack"] == attack and r["type"] == "white-box"}
    corr = {c["referee"]: c for c in record["correction"] if c["attack"] == attack}

    def pct(x: float | None) -> float | None:
        return None if x is None else 100.0 * x

    return {
        "baseline_clean_error": pct(record["models"]["baseline"]["clean_error"]),
        "winn_clean_error": pct(record["models"]["winn"]["clean_error"]),
        "baseline_adv_error": pct(white["baseline"]["error"]),
        "winn_adv_error": pct(white["winn"]["error"]),
        "correction_by_winn": pct(corr["baseline"]["correction_rate"]),
        "correction_by_baseline": pct(corr["winn"]["correction_rate"]),
    }


def _attack_seed(
    spec: GridSpec,
    dataset: str,
    arch: str,
    seed: int,
    *,
    attacks: Sequence[str],
    eps: float,
    limit_test: int | None,
    batch_size: int,
) -> dict[str, Any]:
    dev = resolve_device(spec.device)
    models = {}
    for method in ("baseline", "winn"):
        models[method], _ = load_classifier(
            run_dir(spec, dataset, arch, method, seed) / "checkpoint-best.pt", map_location=dev
        )
    data = load_dataset(dataset, data_dir=spec.data_dir, limit_test=limit_test)
    return evaluate(
        models, dataset=data, attacks=attacks, eps=[eps], batch_size=batch_size, device=dev, seed=seed
    )


def _arch_statuses(
    spec: GridSpec,
    dataset: str,
    archs: Sequence[str],
    paper: Mapping[str, tuple[float, ...]],
    plan: Mapping[tuple[str, str], str],
) -> dict[str, str]:
    """Status of every row's architecture: the grid's plan, or why a paper-only row is not run."""
    cpu = resolve_device(spec.device).type == "cpu"
    out = {}
    for arch in dict.fromkeys([*archs, *paper]):
        if (dataset, arch) in plan:
            out[arch] = plan[(dataset, arch)]
        elif arch.startswith("resnet") and cpu and not spec.allow_cpu_resnet:
            out[arch] = NO_GPU
        else:
            out[arch] = NOT_REQUESTED
    return out


def _reproduce(
    name: str,
    *,
    paper: dict[str, tuple[float, ...]],
    spec: AttackTableSpec,
    out_dir: str | Path,
    command: str | None,
    replace_measured: bool,
) -> pd.DataFrame:
    t0 = time.perf_counter()
    # Every input is checked before the first run is trained: no hour of work is lost to a typo.
    datasets = list(dict.fromkeys(d for d, _ in spec.rows))
    if len(datasets) != 1:
        raise BadValueError(
            f"a table of adversarial errors attacks the rows of one dataset, got "
            f"{', '.join(datasets) or 'no rows'}"
        )
    dataset, archs = datasets[0], [a for _, a in spec.rows]
    limit_test, batch_size = spec.limit_test, spec.batch_size
    attacks = [parse_attack(a).label for a in spec.attacks]  # canonical labels, as in the records
    if not attacks or len(set(attacks)) != len(attacks):
        raise BadValueError(f"give each attack once (and at least one), got {', '.join(attacks) or 'none'}")
    eps = check_eps(spec.eps)
    if batch_size < 1:
        raise BadValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit_test is not None and limit_test < 1:
        raise BadValueError(f"limit_test must be >= 1, got {limit_test}")
    out_dir = check_writable(out_dir, "--out")
    plan = plan_grid(spec)
    statuses = _arch_statuses(spec, dataset, archs, paper, plan)
    planned = {(dataset, arch, a): st for arch, st in statuses.items() for a in attacks}
    check_measured_kept(out_dir, name, TABLE_KEY, planned, replace_measured=replace_measured)
    rows: list[dict[str, Any]] = []
    per_seed: list[dict[str, Any]] = []
    warnings: list[str] = []
    run_grid(spec, command or "", plan=plan)
    for arch, status in statuses.items():
        seeds: dict[str, list[dict[str, Any]]] = {a: [] for a in attacks}
        if status == MEASURED:
            for seed in spec.seeds:
                rec = _attack_seed(
                    spec,
                    dataset,
                    arch,
                    seed,
                    attacks=attacks,
                    eps=eps,
                    limit_test=limit_test,
                    batch_size=batch_size,
                )
                warnings += [f"{arch} seed {seed}: {w}" for w in rec["warnings"]]
                for a in attacks:
                    nums = {"seed": seed, **seed_numbers(rec, a)}
                    seeds[a].append(nums)
                    per_seed.append({"arch": arch, "attack": a, "eps": eps, **nums})
        for a in attacks:
            row: dict[str, Any] = {"dataset": dataset, "arch": arch, "attack": a, "eps": eps}
            for key in ("baseline_clean_error", "winn_clean_error", *METRICS):
                row[f"{key}_mean"], row[f"{key}_std"] = mean_std([s[key] for s in seeds[a]])
            ref = paper.get(arch) if a == "fgsm" else None
            for key, value in zip(METRICS, ref or (None,) * 4, strict=True):
                row[f"paper_{key}"] = value
            row["seeds"] = " ".join(str(s["seed"]) for s in seeds[a])
            row["status"] = status
            rows.append(row)
    df = pd.DataFrame(rows)
    check_measured_kept(  # the rows as written (the same as planned; the table may have changed)
        out_dir,
        name,
        TABLE_KEY,
        {(str(r["dataset"]), str(r["arch"]), str(r["attack"])): r["status"] for r in rows},
        replace_measured=replace_measured,
    )
    dev = resolve_device(spec.device)
    meta = {
        **run_header(command, dev),
        "seeds": list(spec.seeds),
        "epochs": spec.epochs,
        "synth_max_steps": spec.synth_max_steps,
        "eps": eps,
        "attacks": list(attacks),
        "limit_test": limit_test,
        "wall_time_s": time.perf_counter() - t0,
        "warnings": warnings,
    }
    _write(name, df, pd.DataFrame(per_seed, columns=list(SEED_COLUMNS)), meta, out_dir)
    return df


def _fmt(m: Any, s: Any) -> str:
    return "-" if m is None or pd.isna(m) else f"{m:.2f} ± {s:.2f}"


def _write(name: str, df: pd.DataFrame, seeds: pd.DataFrame, meta: dict[str, Any], out: Path) -> None:
    """The four files of a table, rendered in full first, then written atomically together."""
    lines = [
        f"# Table {name[-1]}: adversarial error and correction rates (%), paper vs robust_winn",
        "",
        f"Command: `{meta['command']}`  ",
        f"Seeds: {meta['seeds']}; epochs: {meta['epochs']} (paper/code: 200); synthesis cap "
        f"{meta['synth_max_steps']}; eps = {meta['eps']} in [0, 1] pixel units; test images: "
        f"{meta['limit_test'] or 'all'}; device: {meta['device']} ({meta['torch_threads']} threads); "
        f"attack wall time (incl. training when not reused): {meta['wall_time_s'] / 60:.1f} min; "
        f"date: {meta['date']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        "",
        "| model | attack | source | clean error baseline / WINN | adv. error of baseline "
        "(referee = baseline) | adv. error of WINN (referee = WINN) | correction by WINN "
        "(higher better) | correction by baseline (lower better) | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        clean = (
            f"{_fmt(r['baseline_clean_error_mean'], r['baseline_clean_error_std'])} / "
            f"{_fmt(r['winn_clean_error_mean'], r['winn_clean_error_std'])}"
        )
        ours = " | ".join(_fmt(r[f"{k}_mean"], r[f"{k}_std"]) for k in METRICS)
        lines.append(
            f"| {r['arch']} | {r['attack']} | ours (seeds {r['seeds'] or '-'}) | "
            f"{clean} | {ours} | {r['status']} |"
        )
        if r["paper_baseline_adv_error"] is not None and not pd.isna(r["paper_baseline_adv_error"]):
            paper = " | ".join(f"{r[f'paper_{k}']:.2f}" for k in METRICS)
            lines.append(f"| {r['arch']} | {r['attack']} | paper | - | {paper} | |")
    lines += [
        "",
        "Mean ± sample std over seeds. Each seed attacks its best-validation checkpoints. "
        "Correction rate by B = share of the referee's adversarial errors that B classifies "
        "correctly, 1 - N_AB / N_A (REFERENCE §2); '-' where N_A = 0 for every seed. FGSM is "
        "batched (the released script attacks one image at a time; same sign of the gradient)."
        + (
            f" PGD ({PGD_MNIST}, random start) has no paper counterpart: it checks that FGSM "
            "numbers are not an artefact of a weak attack."
            if any(a.startswith("pgd") for a in meta["attacks"])
            else ""
        ),
    ]
    if meta["warnings"]:
        lines += ["", "Sanity warnings (Carlini et al. 2019):", ""]
        lines += [f"- {w}" for w in meta["warnings"]]
    write_files_atomically(
        {
            out / f"{name}.csv": df.to_csv(index=False),
            out / f"{name}-seeds.csv": seeds.to_csv(index=False),
            out / f"{name}.json": json.dumps({**meta, "rows": df.to_dict("records")}, indent=2, default=str),
            out / f"{name}.md": "\n".join(lines) + "\n",
        }
    )


def reproduce_table3(
    spec: AttackTableSpec,
    *,
    out_dir: str | Path = RESULTS_DIR,
    command: str | None = None,
    replace_measured: bool = False,
) -> pd.DataFrame:
    """Paper Table 3 (MNIST): train or reuse baseline and WINN per seed, attack, tabulate.

    Writes ``out_dir/table3.{csv,md,json}`` and ``table3-seeds.csv``. Architectures not run
    here (ResNet-32 without a GPU) keep the paper's numbers and a "not run here" status.

    Args:
        spec: the runs and the attacks (:class:`Table3Spec` holds the paper's rows and budgets
            from :mod:`.presets`; ``dataset`` "sample" gives a quick offline smoke run, and
            ``extra`` further TrainConfig overrides such as ``{"limit_train": 500}``).
        out_dir: folder for the table files.
        command: the command line, stored in the outputs.
        replace_measured: allow measured rows of the existing ``table3`` in ``out_dir`` to
            become "not run here" or vanish (``--replace-measured``); without it that is refused
            before any training.

    Raises:
        UnknownNameError, BadValueError: a bad attack, eps or setting, or rows of several
            datasets (before any work).
        DataUnavailableError: ``data_dir`` does not exist and a row needs data.
        RunDirError: ``out_dir`` not writable, measured rows would be lost, or a run folder
            holds a run with another configuration.
    """
    return _reproduce(
        "table3",
        paper=PAPER_TABLE3,
        spec=spec,
        out_dir=out_dir,
        command=command,
        replace_measured=replace_measured,
    )


def reproduce_table4(
    spec: AttackTableSpec,
    *,
    out_dir: str | Path = RESULTS_DIR,
    command: str | None = None,
    replace_measured: bool = False,
) -> pd.DataFrame:
    """Paper Table 4 (SVHN, ResNet-32, FGSM eps 0.005): as :func:`reproduce_table3`.

    ``spec`` is usually a :class:`Table4Spec`. The paper does not give the units of eps = 0.005;
    it is taken in [0, 1] pixel units (DESIGN §2). Without the SVHN files
    (``DIR/svhn/{train,test}_32x32.mat``) the row is marked "not run here (data unavailable
    offline)" and only the paper's numbers are shown; a ``data_dir`` that does not exist at all
    is an error (``DataUnavailableError``), and a measured row of an existing ``table4`` is
    never replaced by a "not run here" one unless ``replace_measured``.
    """
    return _reproduce(
        "table4",
        paper=PAPER_TABLE4,
        spec=spec,
        out_dir=out_dir,
        command=command,
        replace_measured=replace_measured,
    )
