"""Ablations of WINN's robustness claim (issue 3): does the effect appear, and under what budget?

Each variant changes one knob of the WINN run of Table 2/3 (alpha, synthesis budget, epochs,
architecture); every variant is trained for several seeds, paired with the cross-entropy
baseline of the same seed, architecture and epochs, and both best-validation checkpoints are
attacked with FGSM (the paper's attack) and PGD. Baselines and the default WINN runs are
shared with Tables 2-3 (``runs/table2``); variants live in ``runs/ablations/<variant>``.

Every row of the table is measured, so before any training the rows already in
``out_dir/ablations.json`` are compared with the ones this run will write: a measured
(variant, attack) row that this run would drop (another ``--variant`` or attack list) is
refused unless ``replace_measured``. The files are written atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..attacks.harness import evaluate
from ..attacks.registry import check_eps, parse_attack
from ..config import Method, SynthesisConfig, TrainConfig
from ..data.datasets import DataSplits, load_dataset
from ..errors import BadValueError
from ..runtime.atomic import write_files_atomically
from ..runtime.checkpoint import load_classifier
from ..runtime.device import resolve_device
from ..runtime.header import run_header
from ..runtime.rundir import check_writable
from .attack_cache import cached, checkpoint_sha256, runtime_key
from .presets import DATA_DIR, MNIST_EPS, RUNS_ROOT, TABLE3_ATTACKS, TABLE3_DATASET, TABLE_BUDGET
from .table2 import MEASURED, check_measured_kept, mean_std, train_or_reuse
from .tables34 import seed_numbers

__all__ = [
    "ABLATIONS_KEY",
    "AblationSpec",
    "Variant",
    "DEFAULT_VARIANTS",
    "ALPHA_SWEEP",
    "KNOWN_VARIANTS",
    "run_ablations",
]

ABLATIONS_KEY = ("variant", "attack")  # the columns that name a row of ablations.json


@dataclass(frozen=True)
class Variant:
    """One WINN setting: overrides of the Table 2 budget (:data:`.presets.TABLE_BUDGET`)."""

    name: str
    alpha: float = TABLE_BUDGET.alpha
    synth_max_steps: int = TABLE_BUDGET.synth_max_steps
    epochs: int = TABLE_BUDGET.epochs
    arch: str = "vanilla"
    notes: str = ""

    def is_default(self) -> bool:
        """True for the Table 2/3 budget itself, whose WINN runs are Table 2's."""
        b = TABLE_BUDGET
        return (self.alpha, self.synth_max_steps, self.epochs) == (b.alpha, b.synth_max_steps, b.epochs)


_B = TABLE_BUDGET
DEFAULT_VARIANTS: tuple[Variant, ...] = (
    Variant(
        "default",
        notes=f"Table 2/3 setting: alpha {_B.alpha:g}, cap {_B.synth_max_steps}, {_B.epochs} epochs",
    ),
    Variant(f"alpha{10 * _B.alpha:g}", alpha=10 * _B.alpha, notes="10x the paper's WINN weight"),
    Variant(
        f"cap{5 * _B.synth_max_steps}",
        synth_max_steps=5 * _B.synth_max_steps,
        notes="5x the synthesis budget",
    ),
    Variant(f"epochs{2 * _B.epochs}", epochs=2 * _B.epochs, notes="2x the epochs"),
)


def _alpha_variant(multiple: int) -> Variant:
    """WINN at ``multiple`` x the paper's alpha; the ablation's variant of that name where one exists."""
    if multiple == 1:
        return DEFAULT_VARIANTS[0]
    name = f"alpha{multiple * _B.alpha:g}"
    new = Variant(name, alpha=multiple * _B.alpha, notes=f"{multiple}x the paper's WINN weight")
    return next((v for v in DEFAULT_VARIANTS if v.name == name), new)


# The effect map's alpha axis (issue 13 §5): 1x, 3x, 10x, 30x and 100x the paper's WINN weight.
# The 1x and 10x points are the "default" and "alpha0.1" ablations, so their runs are shared.
ALPHA_SWEEP: tuple[Variant, ...] = tuple(_alpha_variant(m) for m in (1, 3, 10, 30, 100))
KNOWN_VARIANTS: tuple[Variant, ...] = tuple({v.name: v for v in DEFAULT_VARIANTS + ALPHA_SWEEP}.values())


@dataclass
class AblationSpec:
    """Where and how the ablation grid runs (defaults: :mod:`.presets`)."""

    variants: Sequence[Variant] = DEFAULT_VARIANTS
    seeds: Sequence[int] = TABLE_BUDGET.seeds
    dataset: str = TABLE3_DATASET
    data_dir: str = DATA_DIR
    runs_dir: str = RUNS_ROOT
    device: str = "auto"
    eps: float = MNIST_EPS
    attacks: Sequence[str] = TABLE3_ATTACKS
    limit_test: int | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # further TrainConfig overrides


def _config(spec: AblationSpec, v: Variant, method: Method, seed: int) -> TrainConfig:
    """The run of one variant and method: baselines (and the default WINN) are Table 2's runs
    when they train for Table 2's epochs, else shared under ``ablations/baseline-e<epochs>``."""
    shared = method is Method.BASELINE or v.is_default()
    base = v.epochs == TABLE_BUDGET.epochs and shared
    folder = (
        (Path(spec.runs_dir) / "table2")
        if base
        else (Path(spec.runs_dir) / "ablations" / (f"baseline-e{v.epochs}" if shared else v.name))
    )
    alpha = TABLE_BUDGET.alpha if method is Method.BASELINE else v.alpha
    cap = TABLE_BUDGET.synth_max_steps if method is Method.BASELINE else v.synth_max_steps
    cfg = TrainConfig(
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        arch=v.arch,
        method=method,
        epochs=v.epochs,
        seed=seed,
        device=spec.device,
        alpha=alpha,
        progress=spec.progress,
        out=str(folder / f"{spec.dataset}-{v.arch}-{method.value}-s{seed}"),
        synthesis=SynthesisConfig(max_steps=cap),
    )
    return replace(cfg, **spec.extra)


ATTACKS_SUBDIR = "attacks"  # runs_dir/ablations/attacks: each (variant, seed) pair's harness record


def _evaluate_cached(
    spec: AblationSpec,
    v: Variant,
    seed: int,
    checkpoints: dict[str, Path],
    data: DataSplits,
    attacks: list[str],
    eps: float,
) -> dict[str, Any]:
    """The harness record of one seed's baseline and WINN, or the one an earlier command saved.

    Kept in ``runs_dir/ablations/attacks/<variant>-s<seed>-<key digest>.json``
    (:func:`.attack_cache.cached`), keyed by both checkpoints' digests, the attacks, eps, seed,
    test set and machine, so a grid finished over several commands attacks each pair once.
    """
    key = {
        "checkpoints_sha256": {name: checkpoint_sha256(path) for name, path in checkpoints.items()},
        "dataset": spec.dataset,
        "n_test": len(data.test),
        "attacks": attacks,
        "eps": eps,
        "seed": seed,
        **runtime_key(spec.device),
    }

    def attack() -> dict[str, Any]:
        dev = resolve_device(spec.device)
        models = {name: load_classifier(path, dev)[0] for name, path in checkpoints.items()}
        return {"record": evaluate(models, dataset=data, attacks=attacks, eps=[eps], device=dev, seed=seed)}

    folder = Path(spec.runs_dir) / "ablations" / ATTACKS_SUBDIR
    return cached(folder, f"{v.name}-s{seed}", key, attack)[0]["record"]


def run_ablations(
    spec: AblationSpec,
    *,
    out_dir: str | Path,
    command: str,
    replace_measured: bool = False,
    stem: str = "ablations",
    title: str = "Ablations: WINN vs baseline under FGSM and PGD (%), mean ± std over seeds",
) -> pd.DataFrame:
    """Train (or reuse) every variant x seed with its baseline, attack both, write the table.

    Args:
        spec: variants, seeds, data and attacks.
        out_dir: folder of ``<stem>.{csv,md,json}`` and ``<stem>-seeds.csv``.
        command: the command line, stored in the outputs.
        replace_measured: allow measured rows of the existing ``<stem>.json`` that this run
            does not measure again to vanish (``--replace-measured``).
        stem: the files' name (``ablations``; the effect map writes ``effect-map``).
        title: the Markdown table's heading.

    Raises:
        UnknownNameError, BadValueError: a bad attack or eps, or a variant named like a shared
            folder (``attacks``, ``baseline-e<N>``), before any work.
        RunDirError: ``out_dir`` not writable, or measured rows would be dropped (checked
            before any training), or a run folder holds another configuration.
        DataUnavailableError: the dataset's files are missing.
    """
    t0 = time.perf_counter()
    dev = resolve_device(spec.device)
    attacks = [parse_attack(a).label for a in spec.attacks]
    if not attacks or len(set(attacks)) != len(attacks):
        raise BadValueError(f"give each attack once (and at least one), got {', '.join(attacks) or 'none'}")
    eps = check_eps(spec.eps)
    if not spec.variants or not spec.seeds:
        raise BadValueError("ablations need at least one variant and one seed")
    reserved = [v.name for v in spec.variants if v.name == ATTACKS_SUBDIR or v.name.startswith("baseline-e")]
    if reserved:
        raise BadValueError(
            f"variant name {reserved[0]!r} is reserved for a folder of shared runs or results"
        )
    out = check_writable(out_dir, "--out")
    planned = {(v.name, a): MEASURED for v in spec.variants for a in attacks}
    check_measured_kept(out, stem, ABLATIONS_KEY, planned, replace_measured=replace_measured)
    data = load_dataset(spec.dataset, data_dir=spec.data_dir, limit_test=spec.limit_test)
    rows, per_seed, warnings = [], [], []
    for v in spec.variants:
        nums: dict[str, list[dict[str, Any]]] = {a: [] for a in attacks}
        train_s = 0.0
        for seed in spec.seeds:
            checkpoints = {}
            for method in (Method.BASELINE, Method.WINN):
                cfg = _config(spec, v, method, seed)
                rec = train_or_reuse(cfg, command)
                train_s += rec["wall_time_s"] if method is Method.WINN else 0.0
                checkpoints[method.value] = Path(cfg.out) / "checkpoint-best.pt"
            record = _evaluate_cached(spec, v, seed, checkpoints, data, attacks, eps)
            warnings += [f"{v.name} seed {seed}: {w}" for w in record["warnings"]]
            for a in attacks:
                n = _paired({"seed": seed, **seed_numbers(record, a)})
                nums[a].append(n)
                per_seed.append({"variant": v.name, "attack": a, **n})
        for a in attacks:
            row: dict[str, Any] = {
                "variant": v.name,
                "alpha": v.alpha,
                "synth_max_steps": v.synth_max_steps,
                "epochs": v.epochs,
                "arch": v.arch,
                "attack": a,
                "eps": eps,
            }
            for key in nums[a][0]:
                if key != "seed":
                    row[f"{key}_mean"], row[f"{key}_std"] = mean_std([n[key] for n in nums[a]])
            row["winn_train_min_per_seed"] = train_s / 60 / len(spec.seeds)
            row["notes"] = v.notes
            rows.append(row)
    df = pd.DataFrame(rows)
    _write(
        df,
        pd.DataFrame(per_seed),
        out,
        {
            **run_header(command, dev),
            "seeds": list(spec.seeds),
            "eps": eps,
            "wall_time_s": time.perf_counter() - t0,
            "warnings": warnings,
            "limit_test": spec.limit_test,
            "stem": stem,
            "title": title,
        },
    )
    return df


def _paired(n: dict[str, Any]) -> dict[str, Any]:
    """One seed's numbers plus WINN minus its own baseline (clean and adversarial error).

    Both models of a pair share the seed (initialisation), the test set and the attack's
    seed, so the spread over seeds of the paired change says whether an effect stands out;
    the spread of each column alone also carries how much the baselines of different seeds
    differ from each other.
    """
    change = {
        f"{kind}_error_change": None
        if n[f"winn_{kind}_error"] is None or n[f"baseline_{kind}_error"] is None
        else n[f"winn_{kind}_error"] - n[f"baseline_{kind}_error"]
        for kind in ("clean", "adv")
    }
    return {**n, **change}


def _fmt(m: Any, s: Any) -> str:
    return "-" if m is None or pd.isna(m) else f"{m:.2f} ± {s:.2f}"


def _write(df: pd.DataFrame, seeds: pd.DataFrame, out: Path, meta: dict[str, Any]) -> None:
    """The four table files, rendered in full first, then written atomically together."""
    keys = (
        "baseline_clean_error",
        "winn_clean_error",
        "baseline_adv_error",
        "winn_adv_error",
        "correction_by_winn",
        "correction_by_baseline",
        "clean_error_change",
        "adv_error_change",
    )
    lines = [
        f"# {meta['title']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Seeds: {meta['seeds']}; eps = {meta['eps']} ([0, 1] units); test images: "
        f"{meta['limit_test'] or 'all'}; device: {meta['device']} ({meta['torch_threads']} threads); "
        f"date: {meta['date']}; wall time of this command: {meta['wall_time_s'] / 60:.1f} min  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        "",
        "| variant | alpha | synth cap | epochs | attack | clean err. baseline | clean err. WINN | "
        "adv. err. baseline | adv. err. WINN | correction by WINN | correction by baseline | "
        "clean err. WINN − baseline (paired) | adv. err. WINN − baseline (paired) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        cells = " | ".join(_fmt(r[f"{k}_mean"], r[f"{k}_std"]) for k in keys)
        lines.append(
            f"| {r['variant']} | {r['alpha']} | {r['synth_max_steps']} | {r['epochs']} | "
            f"{r['attack']} | {cells} |"
        )
    lines += [
        "",
        "Paper (Table 3, vanilla, FGSM, 200 epochs, cap 2000): adv. error 32.41 "
        "(baseline) vs 7.99 (WINN); correction 90.00 by WINN, 46.93 by baseline.",
    ]
    if meta["warnings"]:
        lines += ["", "Sanity warnings:", ""] + [f"- {w}" for w in meta["warnings"]]
    write_files_atomically(
        {
            out / f"{meta['stem']}.csv": df.to_csv(index=False),
            out / f"{meta['stem']}-seeds.csv": seeds.to_csv(index=False),
            out / f"{meta['stem']}.json": json.dumps(
                {**meta, "rows": df.to_dict("records")}, indent=2, default=str
            ),
            out / f"{meta['stem']}.md": "\n".join(lines) + "\n",
        }
    )
