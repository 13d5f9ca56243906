"""Command line: ``robust-winn train | quickstart | list | reproduce | attack``.

Thin by design (DESIGN §1): parse options, build a config, call one library function. Bad
input (a :class:`robust_winn.errors.UserError`: unknown names, bad numbers, unreadable or
unwritable paths, missing data, foreign checkpoints) ends with one line ``Error: ...`` and exit
code 2; a diverging loss with exit code 1; Ctrl-C with exit code 130 after the last finished
epoch's checkpoint has been kept; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..config import TrainConfig
from ..experiments.ablations import DEFAULT_VARIANTS, Variant
from ..experiments.defences import DEFENCE_METHODS
from ..experiments.effect_map import EFFECT_MAP_VARIANTS
from ..experiments.ood import OOD_DATA_DIR, OOD_SETS, OODTableSpec
from ..experiments.presets import (
    DATA_DIR,
    DEFENCES_ARCH,
    DEFENCES_BUDGETS,
    DEFENCES_EPS,
    DEFENCES_SUBDIR,
    DEFENCES_SUBSET,
    MNIST_EPS,
    MNIST_STANDARD_EPS,
    QUICK,
    QUICKSTART_DIR,
    RESULTS_DIR,
    RUNS_DIR,
    RUNS_ROOT,
    TABLE2_ROWS,
    TABLE3_ARCHS,
    TABLE3_DATASET,
    TABLE_BUDGET,
    DefencesBudget,
)
from .common import (
    SEED,
    FiniteFloat,
    RobustWinnGroup,
    command_line,
    device_option_check,
    overwrite_option,
    setup_logging,
)
from .knobs import Knobs

MODES = ("supervised", "unsupervised")


class _Group(RobustWinnGroup):
    """The main group; ``train --mode unsupervised`` is routed to ``train-unsupervised``."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        """``train --mode unsupervised ...`` runs ``train-unsupervised ...`` (paper §4, Alg. 1).

        Any other ``--mode`` stays on the line for ``train``'s own ``--mode`` option, which
        accepts ``supervised`` and refuses anything else with one ``Error:`` line.
        """
        if args and args[0] == "train":
            mode, rest = _pop_mode(args[1:])
            if mode == "unsupervised":
                return super().resolve_command(ctx, ["train-unsupervised", *rest])
        return super().resolve_command(ctx, args)


def _pop_mode(args: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--mode X`` / ``--mode=X`` out of a train command line."""
    for i, a in enumerate(args):
        if a == "--mode" and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2 :]
        if a.startswith("--mode="):
            return a.split("=", 1)[1], args[:i] + args[i + 1 :]
    return None, list(args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="robust-winn")
def main() -> None:
    """robust_winn: Wasserstein Introspective Neural Networks (Lee et al., CVPR 2018).

    Train classifiers that are also generators (WINN) beside cross-entropy baselines, attack
    them, and reproduce the paper's tables. Start with `robust-winn quickstart`.
    """


TRAIN_KNOBS = Knobs(TrainConfig)  # every TrainConfig field with a command-line form (config.knob)


@main.command()
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=MODES[0],
    show_default=True,
    help="unsupervised: train a WINN generator instead (paper §4, Algorithm 1); the whole "
    "command line then goes to `robust-winn train-unsupervised` and takes its options "
    "(see `robust-winn train-unsupervised --help`).",
)
@TRAIN_KNOBS
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from OUT/checkpoint-last.pt (exactly: RNG, optimizer and pool restored); "
    "only --epochs, --device, --data-dir and speed options may differ from the run's.",
)
@overwrite_option()
def train(mode: str, quiet: bool, resume: bool, overwrite: bool, **kw: Any) -> None:
    """Train a classifier by cross-entropy (baseline) or WINN (paper §5.6).

    `--mode unsupervised` trains a WINN generator instead and takes the options of
    `robust-winn train-unsupervised --help` (paper §4, Algorithm 1).
    """
    from ..training import NonFiniteLossError
    from ..training import train as run_train

    if mode != MODES[0]:  # the robust-winn group routes it; only a caller of this object gets here
        raise click.UsageError("--mode unsupervised is run by `robust-winn train-unsupervised`")
    setup_logging(quiet)
    cfg: TrainConfig = TRAIN_KNOBS.build(kw)
    out = cfg.out
    try:
        record = run_train(cfg, resume=resume, overwrite=overwrite, command=command_line())
    except NonFiniteLossError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. Finished epochs are kept in {out}; continue with --resume.", err=True)
        sys.exit(130)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    tb = record["test_error_at_best_val"]
    click.echo(
        f"{cfg.method.value} {cfg.arch} on {cfg.dataset}: {record['epochs_run']} epochs, "
        f"test error {100 * record['final_test_error']:.2f}% (last), "
        + (f"{100 * tb:.2f}% at best validation epoch {record['best_epoch']}" if tb is not None else "")
        + f"; wrote {Path(out) / 'record.json'}"
    )


@main.command("list")
def list_cmd() -> None:
    """List registered datasets, models, attacks and the OOD sets of `robust-winn ood`."""
    from ..attacks.registry import list_attacks
    from ..data.datasets import list_datasets
    from ..data.ood_sets import list_synthetic_sets
    from ..models import list_models

    click.echo("datasets:")
    for k, v in list_datasets().items():
        click.echo(f"  {k:15s} {v}")
    click.echo("models (or any 'pkg.module:factory'):")
    for k, v in list_models().items():
        click.echo(f"  {k:15s} {v}")
    click.echo("attacks (robust-winn attack --attack NAME[:key=value,...]):")
    for k, v in list_attacks().items():
        click.echo(f"  {k:15s} {v}")
    click.echo("OOD sets (robust-winn ood --ood NAME): any dataset above, and:")
    for k, v in list_synthetic_sets().items():
        click.echo(f"  {k:15s} {v}")
    for k, v in (
        ("folder:PATH", "every image file under PATH, converted and resized to the model's input"),
        ("npz:PATH", "the image array of a .npz (uint8 or float in [0, 1]; NHWC, NCHW or NHW)"),
        ("adv:ATTACK:EPS", "the harness's adversarial examples made on each model, e.g. adv:fgsm:0.125"),
    ):
        click.echo(f"  {k:15s} {v}")


def _seeds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("give comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise click.BadParameter("at least one seed")
    return seeds


def _optional_seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    return None if value is None else _seeds(ctx, param, value)


def _budget_text(b: DefencesBudget) -> str:
    """A defence budget in a few words for --help."""
    subset = ", ".join(name for name, _, on_subset in b.ladder if on_subset)
    return (
        f"seeds {b.seeds_text}, {b.epochs} epochs, training attack {b.train_steps} x "
        f"{b.train_step_size:g}; {subset} on {b.subset_size:,} images: "
        + ", ".join(f"{attack}" for _, attack, _ in b.ladder)
    )


def _rows(ctx: click.Context, param: click.Parameter, value: str) -> tuple[tuple[str, str], ...]:
    rows = []
    for item in value.split(","):
        dataset, sep, arch = item.strip().partition(":")
        if not sep or not dataset or not arch:
            raise click.BadParameter(f"{item!r}: use DATASET:ARCH, e.g. mnist:vanilla")
        rows.append((dataset, arch))
    return tuple(rows)


_REPLACE_MEASURED = click.option(
    "--replace-measured",
    is_flag=True,
    help="Allow rows measured in the existing table under --out to be replaced by rows this run "
    "does not measure (not run here, not requested, or left out). Without it such a run is "
    "refused before any work.",
)


# Options the reproduce commands share, declared once (defaults: experiments/presets.py).
_EPOCHS = click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=TABLE_BUDGET.epochs,
    show_default=True,
    help="Epochs per run (paper/code: 200).",
)
_SYNTH_MAX_STEPS = click.option(
    "--synth-max-steps",
    type=click.IntRange(min=0),
    default=TABLE_BUDGET.synth_max_steps,
    show_default=True,
    help="Synthesis cap per pass (code: 2000).",
)
_DEVICE = click.option(
    "--device", default="auto", show_default=True, callback=device_option_check, help="auto, cpu, cuda[:N]."
)
_ALLOW_CPU_RESNET = click.option(
    "--allow-cpu-resnet", is_flag=True, help="Run ResNet-32 rows on the CPU too (hours per run)."
)
_NO_PROGRESS = click.option("--no-progress", is_flag=True, help="Hide progress bars.")
_TABLE_DATASET = click.option(
    "--dataset",
    default=TABLE3_DATASET,
    show_default=True,
    help="Registered dataset (mnist: the paper's); 'sample', the bundled MNIST sample, for a quick "
    "offline smoke run.",
)
_DATA_DIR = click.option(
    "--data-dir", default=DATA_DIR, show_default=True, help="Dataset root (torchvision layout)."
)
_LIMIT_TRAIN = click.option(
    "--limit-train",
    type=click.IntRange(min=1),
    default=None,
    help="Train on the first N training images only (smoke runs).",
)
_LIMIT_TEST = click.option(
    "--limit-test",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate and attack the first N test images only (of every OOD set too; smoke runs).",
)


def _reproduce_options(fn: Any) -> Any:
    """The options every table shares; their defaults are the budgets of experiments/presets.py."""
    opts = [
        click.option(
            "--seeds",
            default=TABLE_BUDGET.seeds_text,
            show_default=True,
            callback=_seeds,
            help="Comma-separated seeds; tables give mean and std over them.",
        ),
        _EPOCHS,
        _SYNTH_MAX_STEPS,
        _DATA_DIR,
        click.option(
            "--runs-dir",
            default=RUNS_DIR,
            show_default=True,
            help="Where runs are trained, reused and resumed (shared by Tables 2-4).",
        ),
        click.option(
            "--out", "out_dir", default=RESULTS_DIR, show_default=True, help="Folder for the table files."
        ),
        _DEVICE,
        _ALLOW_CPU_RESNET,
        _NO_PROGRESS,
        _REPLACE_MEASURED,
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@main.group()
def reproduce() -> None:
    """Reproduce the paper's tables from real runs (results/table*.csv and .md)."""


@reproduce.command("table2")
@_reproduce_options
@click.option(
    "--rows",
    default=",".join(f"{d}:{a}" for d, a in TABLE2_ROWS),
    show_default=True,
    callback=_rows,
    help="DATASET:ARCH rows; rows without data or GPU are marked not run.",
)
def reproduce_table2_cmd(rows: tuple[tuple[str, str], ...], **kw: Any) -> None:
    """Table 2: test error of baseline vs WINN, mean ± std over seeds."""
    from ..experiments.table2 import GridSpec, reproduce_table2

    setup_logging(False)
    spec = GridSpec(
        rows=rows,
        seeds=kw["seeds"],
        epochs=kw["epochs"],
        synth_max_steps=kw["synth_max_steps"],
        data_dir=kw["data_dir"],
        runs_dir=kw["runs_dir"],
        device=kw["device"],
        allow_cpu_resnet=kw["allow_cpu_resnet"],
        progress=not kw["no_progress"],
    )
    reproduce_table2(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "table2.md").read_text())


@main.command(
    help=f"""Offline demo: baseline vs WINN on the bundled MNIST sample, then FGSM and PGD.

    Trains both methods ({QUICK["epochs"]} epochs on 2,500 real MNIST images; {QUICK["synth_per_class"]}
    new pseudo-negatives per class per epoch, synthesis capped at {QUICK["synth_max_steps"]} steps),
    attacks both at eps = {QUICK["eps"]} and prints a Table 2/3 style summary. A few minutes on 2 CPU
    cores. Small-sample numbers: see README for the full-MNIST tables.
    """
)
@click.option(
    "--out",
    default=QUICKSTART_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the two runs, the attack record and summary.md.",
)
@click.option(
    "--device", default="auto", show_default=True, callback=device_option_check, help="auto, cpu, cuda[:N]."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of both runs and the attacks.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@overwrite_option("quickstart")
def quickstart(out: str, device: str, seed: int, no_progress: bool, overwrite: bool) -> None:
    """Offline demo (its help text is built from the quickstart budget, presets.QUICK)."""
    from ..experiments.quickstart import quickstart as run_quickstart

    setup_logging(False)
    table = run_quickstart(
        out, device=device, seed=seed, progress=not no_progress, overwrite=overwrite, command=command_line()
    )
    click.echo(
        f"\nbaseline vs WINN on the bundled MNIST sample ({QUICK['epochs']} epochs, "
        f"eps {QUICK['eps']} in [0,1] pixel units, 1,000 test images):\n"
    )
    click.echo(table.to_markdown(index=False))
    click.echo(f"\nRecords and checkpoints: {out}/ (summary.md, attack-record.json, */record.json)")


def _attack_table_spec(cls: type[Any], kw: dict[str, Any], **fields: Any) -> Any:
    """A Table 3/4 spec from the shared reproduce options (and --limit-train/--limit-test)."""
    extra = {k: kw[k] for k in ("limit_train",) if kw.get(k)}
    return cls(
        **fields,
        seeds=kw["seeds"],
        epochs=kw["epochs"],
        synth_max_steps=kw["synth_max_steps"],
        data_dir=kw["data_dir"],
        runs_dir=kw["runs_dir"],
        device=kw["device"],
        allow_cpu_resnet=kw["allow_cpu_resnet"],
        progress=not kw["no_progress"],
        extra=extra,
        limit_test=kw.get("limit_test"),
    )


@reproduce.command("table3")
@_reproduce_options
@click.option(
    "--arch",
    "archs",
    multiple=True,
    default=TABLE3_ARCHS,
    show_default=True,
    help="Architectures (repeatable); ResNet rows need a GPU or --allow-cpu-resnet and "
    "otherwise show the paper's numbers marked not run here.",
)
@_TABLE_DATASET
@_LIMIT_TRAIN
@_LIMIT_TEST
def reproduce_table3_cmd(archs: tuple[str, ...], dataset: str, **kw: Any) -> None:
    """Table 3: MNIST FGSM (eps 0.125) and PGD adversarial error, correction rates."""
    from ..experiments.tables34 import Table3Spec, reproduce_table3

    setup_logging(False)
    spec = _attack_table_spec(Table3Spec, kw, rows=[(dataset, a) for a in archs])
    reproduce_table3(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "table3.md").read_text())


@reproduce.command("table4")
@_reproduce_options
def reproduce_table4_cmd(**kw: Any) -> None:
    """Table 4: SVHN ResNet-32 FGSM (eps 0.005); marked not run here without the SVHN files."""
    from ..experiments.tables34 import Table4Spec, reproduce_table4

    setup_logging(False)
    spec = _attack_table_spec(Table4Spec, kw)
    reproduce_table4(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "table4.md").read_text())


def _register_commands() -> None:
    from .attack import attack
    from .ood import ood
    from .unsup import generate_cmd, score_cmd, train_unsupervised_cmd

    for cmd in (attack, ood, train_unsupervised_cmd, generate_cmd, score_cmd):
        main.add_command(cmd)


_register_commands()


def _grid_options(choices: tuple[Variant, ...], default: tuple[Variant, ...], what: str) -> Any:
    """The options shared by the ablation grid and the effect map (one declaration)."""
    options = [
        click.option(
            "--variant",
            "variants",
            multiple=True,
            type=click.Choice([v.name for v in choices]),
            default=tuple(v.name for v in default),
            show_default=True,
            help=f"WINN variants (repeatable): {what}. Each is paired with the baseline of the "
            "same seed and epochs.",
        ),
        click.option(
            "--seeds", default=TABLE_BUDGET.seeds_text, show_default=True, callback=_seeds, help="Seeds."
        ),
        _TABLE_DATASET,
        _DATA_DIR,
        click.option(
            "--runs-root",
            default=RUNS_ROOT,
            show_default=True,
            help="Runs root: ROOT/table2 (shared with Tables 2-3) and ROOT/ablations/<variant> "
            "(shared by the ablations and the effect map); each pair's attack results are kept in "
            "ROOT/ablations/attacks, so an interrupted or extended grid attacks only new pairs.",
        ),
        click.option("--out", "out_dir", default=RESULTS_DIR, show_default=True, help="Table folder."),
        _DEVICE,
        _LIMIT_TRAIN,
        _LIMIT_TEST,
        _NO_PROGRESS,
        _REPLACE_MEASURED,
    ]

    def apply(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def _grid_spec(variants: tuple[str, ...], known: tuple[Variant, ...], kw: dict[str, Any]) -> Any:
    from ..experiments.ablations import AblationSpec

    setup_logging(False)
    return AblationSpec(
        variants=[v for v in known if v.name in variants],
        seeds=kw["seeds"],
        dataset=kw["dataset"],
        data_dir=kw["data_dir"],
        runs_dir=kw["runs_root"],
        device=kw["device"],
        limit_test=kw["limit_test"],
        progress=not kw["no_progress"],
        extra={"limit_train": kw["limit_train"]} if kw["limit_train"] else {},
    )


@reproduce.command("ablations")
@_grid_options(
    DEFAULT_VARIANTS, DEFAULT_VARIANTS, "the Table 2/3 setting, alpha x10, synthesis cap x5, epochs x2"
)
def reproduce_ablations_cmd(variants: tuple[str, ...], **kw: Any) -> None:
    """Ablations: alpha, synthesis budget and epochs vs FGSM/PGD robustness (issue 3)."""
    from ..experiments.ablations import run_ablations

    spec = _grid_spec(variants, DEFAULT_VARIANTS, kw)
    run_ablations(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "ablations.md").read_text())


@reproduce.command("effect-map")
@_grid_options(
    EFFECT_MAP_VARIANTS,
    EFFECT_MAP_VARIANTS,
    "WINN at 1x, 3x, 10x, 30x and 100x the paper's alpha for 15 epochs, and the paper's alpha for "
    "30 epochs; runs of Tables 2-3 and the ablations are reused. On 2 CPU cores each new WINN "
    "run takes 20-32 min (15 epochs: 20.2-20.6 min alone, Table 2's 31-32 min) or 41-45 min "
    "(30 epochs; its 30-epoch baseline 6-7 min), and attacking each seed's pair about 2.5 min alone "
    "(10 min beside other work)",
)
def reproduce_effect_map_cmd(variants: tuple[str, ...], **kw: Any) -> None:
    """Effect map: WINN's clean, FGSM and PGD error against alpha and epochs (issue 13 §5)."""
    from ..experiments.effect_map import run_effect_map

    spec = _grid_spec(variants, EFFECT_MAP_VARIANTS, kw)
    run_effect_map(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "effect-map.md").read_text())


_SHARED_RUNS = ", ".join(dict.fromkeys("ROOT/" + "/".join(m.shared) for m in DEFENCE_METHODS if m.shared))
_TRAIN_ATTACK = TrainConfig().adversarial  # the MNIST standard training attack (config.AdversarialConfig)


@reproduce.command("defences")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice([m.name for m in DEFENCE_METHODS]),
    default=tuple(m.name for m in DEFENCE_METHODS),
    show_default=True,
    help="Methods (repeatable): cross-entropy baseline, WINN at the paper's alpha and at 10x it, "
    f"PGD adversarial training (Madry et al. 2018), TRADES (Zhang et al. 2019, beta "
    f"{_TRAIN_ATTACK.trades_beta:g}) and WINN+AT; these three train against PGD at the MNIST "
    f"standard eps {_TRAIN_ATTACK.eps:g}, its steps set by --preset.",
)
@click.option(
    "--preset",
    type=click.Choice(list(DEFENCES_BUDGETS)),
    default="full",
    show_default=True,
    help="Budget: full = the issue's protocol ("
    + _budget_text(DEFENCES_BUDGETS["full"])
    + "; 35-70 h on 2 CPU cores, minutes on a GPU); cpu = what 2 cores do in about 3 h ("
    + _budget_text(DEFENCES_BUDGETS["cpu"])
    + "; the reasons for each cut: README). --seeds, --epochs and --subset-size override it.",
)
@click.option(
    "--seeds",
    default=None,
    callback=_optional_seeds,
    help="Comma-separated seeds; one run per method and seed, mean ± std over them. [default: the preset's]",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epochs per run, every method alike (paper/code: 200). [default: the preset's]",
)
@_SYNTH_MAX_STEPS
@click.option(
    "--eps",
    "eps",
    multiple=True,
    type=FiniteFloat(0.0, 1.0, min_open=True),
    default=DEFENCES_EPS,
    show_default=True,
    help=f"Attack radii (repeatable), L-inf in [0, 1] pixel units: the paper's {MNIST_EPS:g} "
    f"and the MNIST standard {MNIST_STANDARD_EPS:g}.",
)
@_TABLE_DATASET
@click.option(
    "--arch",
    default=DEFENCES_ARCH,
    show_default=True,
    help="Registered model or a user factory 'pkg.module:factory' (trusted: you named it).",
)
@_DATA_DIR
@click.option(
    "--runs-root",
    default=RUNS_ROOT,
    show_default=True,
    help=f"Runs root: runs are trained, reused and resumed in ROOT/{DEFENCES_SUBDIR}; finished "
    f"runs with the same settings in {_SHARED_RUNS} (Table 2's, the alpha ablation's) are "
    "reused, never changed.",
)
@click.option(
    "--out",
    "out_dir",
    default=RESULTS_DIR,
    show_default=True,
    help="Folder for defences.{csv,md,json} and defences-seeds.csv.",
)
@_DEVICE
@click.option(
    "--subset-size",
    type=click.IntRange(min=0),
    default=None,
    help="The subset attacks (full: APGD-CE, APGD-DLR, Square; cpu: all but FGSM) see a fixed "
    "seeded subset of this many test images (recorded in defences.json; the table marks those "
    f"cells). 0: every attack on every image. [default: the preset's, {DEFENCES_SUBSET}]",
)
@_LIMIT_TRAIN
@_LIMIT_TEST
@_ALLOW_CPU_RESNET
@_NO_PROGRESS
@_REPLACE_MEASURED
def reproduce_defences_cmd(methods: tuple[str, ...], eps: tuple[float, ...], **kw: Any) -> None:
    """WINN against PGD-AT, TRADES and WINN+AT under FGSM, PGD, APGD-CE/DLR and Square (issue 13)."""
    from ..experiments.defences import DefencesSpec, reproduce_defences

    setup_logging(False)
    given = {k: kw[k] for k in ("seeds", "epochs", "subset_size") if kw[k] is not None}
    if "subset_size" in given:
        given["subset_size"] = given["subset_size"] or None
    spec = DefencesSpec.from_budget(
        kw["preset"],
        **given,
        methods=methods,
        synth_max_steps=kw["synth_max_steps"],
        dataset=kw["dataset"],
        arch=kw["arch"],
        eps=eps,
        limit_train=kw["limit_train"],
        limit_test=kw["limit_test"],
        data_dir=kw["data_dir"],
        runs_root=kw["runs_root"],
        device=kw["device"],
        allow_cpu_resnet=kw["allow_cpu_resnet"],
        progress=not kw["no_progress"],
    )
    reproduce_defences(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "defences.md").read_text())


@reproduce.command("ood")
@_reproduce_options
@click.option(
    "--arch",
    "archs",
    multiple=True,
    default=("vanilla",),
    show_default=True,
    help="Architectures (repeatable).",
)
@_TABLE_DATASET
@click.option(
    "--ood",
    "ood_sets",
    multiple=True,
    default=OOD_SETS,
    show_default=True,
    help="OOD sets (repeatable), as for `robust-winn ood --ood`.",
)
@click.option(
    "--ood-data-dir",
    default=OOD_DATA_DIR,
    show_default=True,
    help="Root of registered OOD datasets (Debian's dataset-fashion-mnist installs there).",
)
@_LIMIT_TRAIN
@_LIMIT_TEST
@click.option(
    "--pseudo-negatives",
    type=click.IntRange(min=0),
    default=OODTableSpec.pseudo_negatives,
    show_default=True,
    help="Pseudo-negatives per class and model for the energy picture.",
)
def reproduce_ood_cmd(archs: tuple[str, ...], dataset: str, ood_sets: tuple[str, ...], **kw: Any) -> None:
    """OOD detection (AUROC, FPR95) and calibration of Table 3's baseline and WINN (issue 14)."""
    from ..experiments.ood import reproduce_ood

    setup_logging(False)
    spec = _attack_table_spec(
        OODTableSpec,
        kw,
        rows=[(dataset, a) for a in archs],
        ood=ood_sets,
        ood_data_dir=kw["ood_data_dir"],
        pseudo_negatives=kw["pseudo_negatives"],
        negatives_max_steps=kw["synth_max_steps"],
    )
    reproduce_ood(
        spec, out_dir=kw["out_dir"], command=command_line(), replace_measured=kw["replace_measured"]
    )
    click.echo((Path(kw["out_dir"]) / "ood.md").read_text())
