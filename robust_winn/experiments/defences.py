"""WINN against the standard defences under the full attack ladder (issue 13 §2).

Baseline, WINN (the paper's alpha 0.01 and the ablation's 0.1), PGD adversarial training (Madry
et al. 2018), TRADES (Zhang et al. 2019) and WINN+AT are trained for several seeds on one
dataset and architecture (MNIST vanilla CNN by default, any registered or user architecture),
and each run's best-validation checkpoint is attacked at every eps (the paper's 0.125 and the
MNIST standard 0.3) with the ladder of :data:`.presets.DEFENCES_LADDER`: FGSM, PGD-40 with
restarts, APGD-CE, targeted APGD-DLR (APGD-T) and Square. That is the ``full`` budget; the ``cpu``
budget of :data:`.presets.DEFENCES_BUDGETS` (:meth:`DefencesSpec.from_budget`) trains 2 epochs
with a 10-step training attack and runs all but FGSM on the subset with lighter APGD-T and Square,
the cuts and their reasons stated there.

FGSM and PGD see every test image. APGD-CE, APGD-DLR and Square (the 100-step and the
gradient-free attacks) see a fixed subset of ``subset_size`` test images when one is set (issue
13 §2 allows >= 1,000 where the full set does not fit a CPU budget): ``randperm(n_test)`` under
:data:`.presets.DEFENCES_SUBSET_SEED`, first ``subset_size``, sorted; the indices are written to
``defences.json``. The per-example worst case follows RobustBench (an image is broken if its clean
prediction is wrong or any attack breaks it), so with a subset it is taken over the subset, where
every attack ran; ``worst_case_full_set`` is the same over the attacks that saw every image, on
every image. The table's ``subset_cells`` column names the cells computed on the subset.

Runs live under ``runs_root/defences/<dataset>-<arch>-<method>-s<seed>`` and are reused (or
resumed) by :func:`.table2.train_or_reuse`. Baseline and WINN at alpha 0.01 are Table 2's runs
(``runs_root/table2``) and WINN at alpha 0.1 the ablation's (``runs_root/ablations/alpha0.1``)
when those exist, finished, with the same configuration and device type; such a run is read,
never resumed or changed. Each checkpoint's ladder rows are kept in ``runs_root/defences/attacks``
under a key of everything they depend on (checkpoint digest, eps, ladder, subset, seed, device,
torch and its threads), so a later command that adds seeds or methods attacks only what is new.

Rows are per method and eps: mean ± sample std over seeds of clean error, each attack's error
and the worst case, and per method the training wall time and passes (the records' ``cost``).
Published MNIST eps 0.3 results sit beside ours, marked as anchors, not ours. Before any work
the output folder is checked (writable) and so is the table there: a measured row that this run
would drop or mark "not run here" is refused unless ``replace_measured``
(:func:`.table2.check_measured_kept`); the files are written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from ..attacks.harness import Outcomes, evaluate
from ..attacks.registry import check_eps, parse_attack
from ..config import AdversarialConfig, Method, SynthesisConfig, TrainConfig
from ..data.datasets import DataSplits, load_dataset
from ..errors import BadValueError, UserError
from ..evaluation.metrics import worst_case_error
from ..runtime.checkpoint import load_classifier
from ..runtime.device import resolve_device
from ..runtime.header import run_header
from ..runtime.rundir import check_writable
from .ablations import DEFAULT_VARIANTS
from .attack_cache import cached, checkpoint_sha256, runtime_key
from .defences_report import write_defences
from .presets import (
    ATTACK_BATCH_SIZE,
    DATA_DIR,
    DEFENCES_ARCH,
    DEFENCES_BUDGETS,
    DEFENCES_EPS,
    DEFENCES_SUBDIR,
    DEFENCES_SUBSET_SEED,
    MNIST_STANDARD_EPS,
    RESULTS_DIR,
    RUNS_DIR,
    RUNS_ROOT,
    TABLE3_DATASET,
    TABLE_BUDGET,
    WINN_ALPHA_HIGH,
)
from .table2 import (
    MEASURED,
    GridSpec,
    check_measured_kept,
    device_type,
    mean_std,
    plan_grid,
    train_or_reuse,
)

log = logging.getLogger(__name__)

__all__ = [
    "ANCHORS",
    "DEFENCES_KEY",
    "DEFENCE_METHODS",
    "DefenceMethod",
    "DefencesSpec",
    "LadderAttack",
    "reproduce_defences",
]

ATTACKS_SUBDIR = "attacks"  # runs_root/defences/attacks: each checkpoint's ladder rows, by key
DEFENCES_KEY = ("dataset", "arch", "method", "eps")  # the columns that name a row of defences.json
OURS = "ours"
ANCHOR = "anchor (not ours)"  # the source and status of a published row
COST_KEYS = ("train_images", "synth_image_steps", "adv_image_steps", "eval_images")
# Forward-backward image passes of training: classifier steps, synthesis steps, attack steps.
PASS_KEYS = ("train_images", "synth_image_steps", "adv_image_steps")


@dataclass(frozen=True)
class DefenceMethod:
    """One row group of the table: a training method and its WINN weight.

    ``shared`` names the folder under the runs root where an identical run may already exist
    (Table 2's for baseline and WINN, the ablation's for WINN at alpha 0.1).
    """

    name: str
    method: Method
    alpha: float = TABLE_BUDGET.alpha
    shared: tuple[str, ...] | None = None
    notes: str = ""


_HIGH = next(v for v in DEFAULT_VARIANTS if v.alpha == WINN_ALPHA_HIGH)  # the ablation's alpha0.1
DEFENCE_METHODS: tuple[DefenceMethod, ...] = (
    DefenceMethod("baseline", Method.BASELINE, shared=(Path(RUNS_DIR).name,), notes="cross-entropy only"),
    DefenceMethod(
        "winn",
        Method.WINN,
        shared=(Path(RUNS_DIR).name,),
        notes=f"paper's alpha {TABLE_BUDGET.alpha:g} (Lee et al. 2018)",
    ),
    DefenceMethod(
        f"winn-alpha{WINN_ALPHA_HIGH:g}",
        Method.WINN,
        alpha=WINN_ALPHA_HIGH,
        shared=("ablations", _HIGH.name),
        notes=f"alpha {WINN_ALPHA_HIGH:g} (ablation)",
    ),
    DefenceMethod("pgd-at", Method.PGD_AT, notes="Madry et al. 2018"),
    DefenceMethod("trades", Method.TRADES, notes="Zhang et al. 2019"),
    DefenceMethod(
        "winn-at",
        Method.WINN_AT,
        notes=f"PGD-AT plus WINN's critic on clean positives, alpha {TABLE_BUDGET.alpha:g}",
    ),
)


@dataclass(frozen=True)
class LadderAttack:
    """One rung of the attack ladder: a column name, an attack spec, whether it sees the subset."""

    name: str
    attack: str
    subset: bool = False


_FULL = DEFENCES_BUDGETS["full"]
DEFAULT_LADDER: tuple[LadderAttack, ...] = tuple(LadderAttack(*rung) for rung in _FULL.ladder)

# Published MNIST L-inf eps 0.3 results (accuracy in %, full test set, AutoAttack standard), from
# the AutoAttack leaderboard (Croce & Hein 2020, github.com/fra31/auto-attack README, "MNIST -
# Linf"), the numbers RobustBench reports for these models. Errors are 100 - accuracy.
ANCHORS: tuple[dict[str, Any], ...] = (
    {
        "method": "Madry et al. 2018 (PGD-AT)",
        "dataset": "mnist",
        "arch": "Madry CNN: conv 32-64 (5x5, max-pool) + FC 1024",
        "eps": MNIST_STANDARD_EPS,
        "clean_accuracy": 98.53,
        "autoattack_accuracy": 88.50,
        "reported_accuracy": 89.62,
        "notes": "AutoAttack standard on the authors' model, full test set (Croce & Hein 2020, "
        "AutoAttack README / RobustBench); reported: the authors' PGD",
    },
    {
        "method": "TRADES (Zhang et al. 2019)",
        "dataset": "mnist",
        "arch": "TRADES SmallCNN: conv 32-32-64-64 + FC 200-200",
        "eps": MNIST_STANDARD_EPS,
        "clean_accuracy": 99.48,
        "autoattack_accuracy": 92.81,
        "reported_accuracy": 95.60,
        "notes": "AutoAttack standard on the authors' model, full test set (Croce & Hein 2020, "
        "AutoAttack README / RobustBench); reported: the authors' attack",
    },
)


@dataclass
class DefencesSpec:
    """The defence comparison: methods, seeds, budgets, eps and attack ladder (:mod:`.presets`).

    ``subset_size`` None runs every attack on every (``limit_test``) test image. ``adversarial``
    is the training attack of pgd-at, trades and winn-at (the MNIST standard); ``extra`` holds
    further TrainConfig overrides of every run (tests shrink the synthesis with it).
    """

    methods: Sequence[str] = tuple(m.name for m in DEFENCE_METHODS)
    seeds: Sequence[int] = _FULL.seeds
    epochs: int = _FULL.epochs  # paper/code: 200 (CPU budget, README "Budgets")
    synth_max_steps: int = TABLE_BUDGET.synth_max_steps  # code: 2000
    dataset: str = TABLE3_DATASET
    arch: str = DEFENCES_ARCH  # a registered model or 'pkg.module:factory'
    eps: Sequence[float] = DEFENCES_EPS  # L-inf radii in [0, 1] pixel units
    ladder: Sequence[LadderAttack] = DEFAULT_LADDER
    subset_size: int | None = _FULL.subset_size
    limit_train: int | None = None  # smoke runs
    limit_test: int | None = None  # smoke runs: the first N test images
    batch_size: int = ATTACK_BATCH_SIZE
    data_dir: str = DATA_DIR
    runs_root: str = RUNS_ROOT
    device: str = "auto"
    allow_cpu_resnet: bool = False
    progress: bool = True
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    budget: str = "full"  # the name of the :data:`.presets.DEFENCES_BUDGETS` entry, recorded

    @classmethod
    def from_budget(cls, name: str, **overrides: Any) -> DefencesSpec:
        """The spec of a named budget (``full``, ``cpu``); ``overrides`` replace single fields.

        Raises:
            BadValueError: an unknown budget name.
        """
        if name not in DEFENCES_BUDGETS:
            raise BadValueError(f"unknown budget {name!r}; choose from {', '.join(DEFENCES_BUDGETS)}")
        b = DEFENCES_BUDGETS[name]
        fields: dict[str, Any] = {
            "seeds": b.seeds,
            "epochs": b.epochs,
            "ladder": tuple(LadderAttack(*rung) for rung in b.ladder),
            "subset_size": b.subset_size,
            "adversarial": AdversarialConfig(steps=b.train_steps, step_size=b.train_step_size),
            "budget": name,
        }
        return cls(**(fields | overrides))


def _method(name: str) -> DefenceMethod:
    for m in DEFENCE_METHODS:
        if m.name == name:
            return m
    raise BadValueError(f"unknown method {name!r}; choose from {', '.join(m.name for m in DEFENCE_METHODS)}")


def _check(spec: DefencesSpec) -> tuple[list[DefenceMethod], list[float], list[LadderAttack]]:
    """Every input of the spec, checked before any work; the methods, eps and ladder to run."""
    methods = [_method(n) for n in spec.methods]
    if not methods or len({m.name for m in methods}) != len(methods):
        given = ", ".join(spec.methods) or "none"
        raise BadValueError(f"give each method once (and at least one), got {given}")
    seeds = list(spec.seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise BadValueError(f"give each seed once (and at least one), got {seeds}")
    eps = [check_eps(e) for e in spec.eps]
    if not eps or len(set(eps)) != len(eps) or 0.0 in eps:
        raise BadValueError(f"give each eps > 0 once (and at least one), got {spec.eps}")
    ladder = [replace(a, attack=parse_attack(a.attack).label) for a in spec.ladder]
    names = [a.name for a in ladder]
    if not ladder or len(set(names)) != len(names) or len({a.attack for a in ladder}) != len(ladder):
        raise BadValueError(f"give each attack of the ladder once (and at least one), got {', '.join(names)}")
    if all(a.subset for a in ladder) and spec.subset_size is not None:
        raise BadValueError("at least one attack of the ladder must see every test image (FGSM does)")
    for what, value in (
        ("subset_size", spec.subset_size),
        ("limit_test", spec.limit_test),
        ("limit_train", spec.limit_train),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BadValueError(f"{what} must be an integer >= 1 or None, got {value!r}")
    if spec.batch_size < 1:
        raise BadValueError(f"batch_size must be >= 1, got {spec.batch_size}")
    return methods, eps, ladder


def _config(spec: DefencesSpec, m: DefenceMethod, seed: int, out: Path) -> TrainConfig:
    """The training run of one method and seed (the adversarial settings only where used)."""
    adversarial = (
        spec.adversarial
        if m.method in (Method.PGD_AT, Method.TRADES, Method.WINN_AT)
        else (AdversarialConfig())
    )
    cfg = TrainConfig(
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        arch=spec.arch,
        method=m.method,
        epochs=spec.epochs,
        seed=seed,
        device=spec.device,
        alpha=m.alpha,
        out=str(out),
        progress=spec.progress,
        synthesis=SynthesisConfig(max_steps=spec.synth_max_steps),
        adversarial=adversarial,
    )
    if spec.limit_train is not None:
        cfg = replace(cfg, limit_train=spec.limit_train)
    cfg = replace(cfg, **spec.extra)
    cfg.validate()
    return cfg


def _run_name(spec: DefencesSpec, label: str, seed: int) -> str:
    """``<dataset>-<arch>-<label>-s<seed>``: Table 2's naming (label = method) or ours (label = name)."""
    return f"{spec.dataset}-{spec.arch}-{label}-s{seed}"


def _shared_record(cfg: TrainConfig, folder: Path) -> dict[str, Any] | None:
    """The record of a finished run in ``folder`` made with ``cfg``'s settings, else None.

    Equal means the same configuration but for the output folder and progress bars, the same
    number of finished epochs, and a device of the same type (``auto`` on a CPU-only machine is
    the CPU). An unreadable record is simply not reused: the folder belongs to another table.
    """
    path = folder / "record.json"
    if not (path.exists() and (folder / "checkpoint-best.pt").exists()):
        return None
    try:
        rec = json.loads(path.read_text())
        had = TrainConfig.from_dict(rec["config"]).to_dict()
        same_device = device_type(rec["device"]) == resolve_device(cfg.device).type
        done = rec["status"] == "completed" and rec["epochs_run"] == cfg.epochs
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, UserError):
        return None
    want = cfg.to_dict()
    ignore = ("out", "progress", "device")
    same = all(had.get(k) == want.get(k) for k in set(had) | set(want) if k not in ignore)
    return rec if same and same_device and done else None


def _train(spec: DefencesSpec, m: DefenceMethod, seed: int, command: str) -> tuple[Path, dict[str, Any]]:
    """Reuse Table 2's / the ablation's identical run, or train (reuse, resume) our own."""
    if m.shared is not None:
        folder = Path(spec.runs_root).joinpath(*m.shared, _run_name(spec, m.method.value, seed))
        rec = _shared_record(_config(spec, m, seed, folder), folder)
        if rec is not None:
            log.info("reusing %s", folder)
            return folder, rec
    folder = _own_folder(spec, m, seed)
    return folder, train_or_reuse(_config(spec, m, seed, folder), command)


def _own_folder(spec: DefencesSpec, m: DefenceMethod, seed: int) -> Path:
    """``runs_root/defences/<dataset>-<arch>-<name>-s<seed>``: one folder per table method."""
    return Path(spec.runs_root) / DEFENCES_SUBDIR / _run_name(spec, m.name, seed)


def _subset(n: int, size: int | None) -> Tensor | None:
    """The fixed subset of test indices (sorted), or None when every image is attacked."""
    if size is None or size >= n:
        return None
    gen = torch.Generator().manual_seed(DEFENCES_SUBSET_SEED)
    return torch.randperm(n, generator=gen)[:size].sort().values


def _broken(out: Outcomes, name: str, attacks: Sequence[LadderAttack], eps: float) -> Tensor:
    """(n_attacks, N) True where that attack's example of the image is misclassified."""
    assert out.labels is not None
    return torch.stack([out.adv[(name, a.attack, eps, name)] != out.labels for a in attacks])


def _attack_run(
    spec: DefencesSpec,
    folder: Path,
    data: DataSplits,
    subset: Tensor | None,
    eps: list[float],
    ladder: list[LadderAttack],
    seed: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One checkpoint under the whole ladder: per eps, the error of each attack and the worst case."""
    dev = resolve_device(spec.device)
    # The user named the architecture (a registered one or 'pkg.module:factory'): its code is trusted.
    model, _ = load_classifier(folder / "checkpoint-best.pt", map_location=dev, trusted_code=(spec.arch,))
    on_subset = [a for a in ladder if a.subset and subset is not None]
    on_all = [a for a in ladder if a not in on_subset]
    name = "model"
    kw: dict[str, Any] = {"eps": eps, "batch_size": spec.batch_size, "device": dev, "seed": seed}
    full, sub = Outcomes(), Outcomes()
    rec = evaluate({name: model}, dataset=data, attacks=[a.attack for a in on_all], outcomes=full, **kw)
    warnings = list(rec["warnings"])
    errors = {(r["attack"], r["eps"]): r["error"] for r in rec["results"]}
    if on_subset:
        assert subset is not None and full.labels is not None
        sub_rec = evaluate(
            {name: model},
            dataset=replace(data, test=data.test.subset(subset)),
            attacks=[a.attack for a in on_subset],
            outcomes=sub,
            **kw,
        )
        warnings += [f"subset: {w}" for w in sub_rec["warnings"]]
        errors |= {(r["attack"], r["eps"]): r["error"] for r in sub_rec["results"]}
        if not torch.equal(sub.labels, full.labels[subset]):
            raise RuntimeError("the subset's labels differ from the full set's at the subset's indices")
    assert full.labels is not None
    clean_wrong = full.clean[name] != full.labels
    rows = []
    for e in eps:
        broken = _broken(full, name, on_all, e)
        row: dict[str, Any] = {
            "eps": e,
            "clean_error": 100 * rec["models"][name]["clean_error"],
            "worst_case_full_set": 100 * worst_case_error(broken, clean_wrong),
        }
        if on_subset:
            assert subset is not None
            broken = torch.cat([broken[:, subset], _broken(sub, name, on_subset, e)])
            row["worst_case"] = 100 * worst_case_error(broken, clean_wrong[subset])
            row["clean_error_subset"] = 100 * float(clean_wrong[subset].float().mean())
        else:
            row["worst_case"] = row["worst_case_full_set"]
        row |= {a.name: 100 * errors[(a.attack, e)] for a in ladder}
        rows.append(row)
    return rows, warnings


def _attack_key(
    spec: DefencesSpec,
    folder: Path,
    subset: Tensor | None,
    eps: list[float],
    ladder: list[LadderAttack],
    seed: int,
    n_test: int,
) -> dict[str, Any]:
    """Everything one checkpoint's ladder rows depend on: equal keys give equal rows."""
    return {
        "checkpoint_sha256": checkpoint_sha256(folder / "checkpoint-best.pt"),
        "dataset": spec.dataset,
        "n_test": n_test,
        "eps": eps,
        "ladder": [asdict(a) for a in ladder],
        "subset": None if subset is None else subset.tolist(),
        "batch_size": spec.batch_size,
        "seed": seed,
        **runtime_key(spec.device),
    }


def _attack_cached(
    spec: DefencesSpec,
    folder: Path,
    data: DataSplits,
    subset: Tensor | None,
    eps: list[float],
    ladder: list[LadderAttack],
    seed: int,
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """:func:`_attack_run`, or its rows saved by an earlier command with the same key; True if reused.

    The rows are kept in ``runs_root/defences/attacks/<folder's parent>-<folder>-<key digest>.json``
    (:func:`.attack_cache.cached`; never in the run folder: Table 2's runs are read, not
    changed), so adding a seed or a method attacks only the new checkpoints, and other eps or
    ladders keep files of their own.
    """

    def attack() -> dict[str, Any]:
        rows, warnings = _attack_run(spec, folder, data, subset, eps, ladder, seed)
        return {"rows": rows, "warnings": warnings}

    saved, reused = cached(
        Path(spec.runs_root) / DEFENCES_SUBDIR / ATTACKS_SUBDIR,
        f"{folder.parent.name}-{folder.name}",
        _attack_key(spec, folder, subset, eps, ladder, seed, len(data.test)),
        attack,
    )
    return saved["rows"], saved["warnings"], reused


def _cost(rec: Mapping[str, Any]) -> dict[str, float]:
    """Training wall time (min) and passes of one run, from its record."""
    cost = rec.get("cost", {})
    out = {k: float(cost.get(k, 0.0)) for k in COST_KEYS}
    out["image_passes"] = sum(out[k] for k in PASS_KEYS)
    out["train_min"] = rec["wall_time_s"] / 60
    return out


def _aggregate(seeds: list[dict[str, Any]], ladder: Sequence[LadderAttack]) -> dict[str, Any]:
    """Mean and sample std over seeds of every error of one (method, eps) (None without seeds)."""
    row: dict[str, Any] = {}
    for k in ("clean_error", *(a.name for a in ladder), "worst_case", "worst_case_full_set"):
        row[f"{k}_mean"], row[f"{k}_std"] = mean_std([s[k] for s in seeds])
    row["seeds"] = " ".join(str(s["seed"]) for s in seeds)
    return row


def _method_cost(recs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Training wall time (mean ± std, min) and passes (mean) per run of one method."""
    costs = [_cost(r) for r in recs]
    out: dict[str, Any] = {}
    out["train_min_mean"], out["train_min_std"] = mean_std([c["train_min"] for c in costs])
    for k in (*COST_KEYS, "image_passes"):
        out[k] = mean_std([c[k] for c in costs])[0]
    return out


def _relative(cost: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Image-passes and wall time per run as multiples of the baseline's (None without one)."""

    def ratio(key: str) -> float | None:
        b = None if baseline is None else baseline[key]
        return cost[key] / b if b and cost[key] is not None else None

    return {"passes_vs_baseline": ratio("image_passes"), "wall_vs_baseline": ratio("train_min_mean")}


def _anchor_rows(columns: Sequence[str]) -> list[dict[str, Any]]:
    """The published rows, as errors in %, marked as not ours."""
    rows = []
    for a in ANCHORS:
        row: dict[str, Any] = dict.fromkeys(columns)
        row |= {
            "dataset": a["dataset"],
            "arch": a["arch"],
            "method": a["method"],
            "eps": a["eps"],
            "source": ANCHOR,
            "clean_error_mean": round(100 - a["clean_accuracy"], 2),
            "worst_case_mean": round(100 - a["autoattack_accuracy"], 2),
            "notes": f"{a['notes']} ({a['reported_accuracy']:.2f}% robust accuracy)",
            "status": ANCHOR,
        }
        rows.append(row)
    return rows


def reproduce_defences(
    spec: DefencesSpec,
    *,
    out_dir: str | Path = RESULTS_DIR,
    command: str | None = None,
    replace_measured: bool = False,
) -> pd.DataFrame:
    """Train or reuse every (method, seed), attack each with the ladder, write the table.

    Writes ``out_dir/defences.{csv,md,json}`` (the json also holds the per-seed numbers and the
    subset's indices) and ``defences-seeds.csv``, atomically, and returns the table's frame.

    Args:
        spec: methods, seeds, budgets, data, eps and attack ladder (:class:`DefencesSpec`).
        out_dir: folder of the table files.
        command: the command line, stored in the outputs.
        replace_measured: allow measured rows of the existing ``defences`` table in ``out_dir``
            that this run would not measure again to be replaced (``--replace-measured``).

    Raises:
        UnknownNameError, BadValueError: a bad method, seed, eps, attack or size (before any work).
        DataUnavailableError: ``data_dir`` does not exist and the dataset needs it.
        RunDirError: ``out_dir`` not writable, measured rows would be lost (both before any
            work), or a run folder holds a run with another configuration.
    """
    t0 = time.perf_counter()
    methods, eps, ladder = _check(spec)
    for m in methods:  # every run's settings are checked before any work
        for seed in spec.seeds:
            _config(spec, m, seed, _own_folder(spec, m, seed))
    out = check_writable(out_dir, "--out")
    status = plan_grid(
        GridSpec(
            rows=[(spec.dataset, spec.arch)],
            data_dir=spec.data_dir,
            device=spec.device,
            allow_cpu_resnet=spec.allow_cpu_resnet,
        )
    )[(spec.dataset, spec.arch)]
    planned = {(spec.dataset, spec.arch, m.name, str(e)): status for m in methods for e in eps}
    check_measured_kept(out, "defences", DEFENCES_KEY, planned, replace_measured=replace_measured)
    runs: dict[tuple[str, int], tuple[Path, dict[str, Any]]] = {}
    if status == MEASURED:
        for m in methods:
            for seed in spec.seeds:
                runs[(m.name, seed)] = _train(spec, m, seed, command or "")
    per_seed: list[dict[str, Any]] = []
    warnings: list[str] = []
    attacks_reused: list[str] = []
    subset: Tensor | None = None
    n_test = None
    if status == MEASURED:
        data = load_dataset(spec.dataset, data_dir=spec.data_dir, limit_test=spec.limit_test)
        n_test = len(data.test)
        subset = _subset(n_test, spec.subset_size)
        for m in methods:
            for seed in spec.seeds:
                folder, rec = runs[(m.name, seed)]
                log.info("attacking %s", folder)
                rows, w, reused = _attack_cached(spec, folder, data, subset, eps, ladder, seed)
                attacks_reused += [str(folder)] if reused else []
                warnings += [f"{m.name} seed {seed}: {x}" for x in w]
                cost = _cost(rec)
                per_seed += [{"method": m.name, "seed": seed, "run": str(folder), **r, **cost} for r in rows]
    cells = [a.name for a in ladder if a.subset] + ["worst_case"] if subset is not None else []
    costs = {
        m.name: _method_cost([rec for (name, _), (_, rec) in runs.items() if name == m.name]) for m in methods
    }
    rows: list[dict[str, Any]] = []
    for m in methods:
        for e in eps:
            row: dict[str, Any] = {
                "dataset": spec.dataset,
                "arch": spec.arch,
                "method": m.name,
                "eps": e,
                "source": OURS,
                "n_test": n_test,
                "subset_size": None if subset is None else int(subset.numel()),
            }
            row |= _aggregate([s for s in per_seed if s["method"] == m.name and s["eps"] == e], ladder)
            row["subset_cells"] = " ".join(cells)
            row |= costs[m.name] | _relative(costs[m.name], costs.get("baseline"))
            row |= {"notes": m.notes, "status": status}
            rows.append(row)
    rows += _anchor_rows(list(rows[0]))
    df = pd.DataFrame(rows)
    check_measured_kept(
        out,
        "defences",
        DEFENCES_KEY,  # the rows as written
        {tuple(str(r[c]) for c in DEFENCES_KEY): r["status"] for r in rows},
        replace_measured=replace_measured,
    )
    meta = {
        **run_header(command, resolve_device(spec.device)),
        "budget": spec.budget,
        "seeds": list(spec.seeds),
        "epochs": spec.epochs,
        "synth_max_steps": spec.synth_max_steps,
        "eps": eps,
        "methods": [m.name for m in methods],
        "ladder": [{"name": a.name, "attack": a.attack, "subset": a.subset} for a in ladder],
        "n_test": n_test,
        "limit_train": spec.limit_train,
        "limit_test": spec.limit_test,
        "subset_size": None if subset is None else int(subset.numel()),
        "subset_seed": DEFENCES_SUBSET_SEED,
        "subset_indices": None if subset is None else subset.tolist(),
        "training_attack": asdict(spec.adversarial),
        "attacks_reused": attacks_reused,  # runs whose ladder rows an earlier command computed
        "train_wall_time_s": sum(r["wall_time_s"] for _, r in runs.values()),
        "wall_time_s": time.perf_counter() - t0,
        "warnings": warnings,
    }
    write_defences(df, pd.DataFrame(per_seed), meta, out)
    return df
