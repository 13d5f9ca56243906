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

from ..config import FastPathConfig, Method, Precision, StopRule, SynthesisConfig, TrainConfig
from .common import (
    SEED,
    FiniteFloat,
    RobustWinnGroup,
    command_line,
    device_option_check,
    overwrite_option,
    setup_logging,
)


class _Group(RobustWinnGroup):
    """The main group; ``train --mode unsupervised`` is routed to ``train-unsupervised``."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        """``train --mode unsupervised ...`` runs ``train-unsupervised ...`` (paper §4, Alg. 1)."""
        if args and args[0] == "train":
            mode, rest = _pop_mode(args[1:])
            if mode == "unsupervised":
                return super().resolve_command(ctx, ["train-unsupervised", *rest])
            if mode not in (None, "supervised"):
                raise click.BadParameter(f"must be 'supervised' or 'unsupervised', got {mode!r}",
                                         ctx=ctx, param_hint="'--mode'")
            args = ["train", *rest]
        return super().resolve_command(ctx, args)


def _pop_mode(args: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--mode X`` / ``--mode=X`` out of a train command line."""
    for i, a in enumerate(args):
        if a == "--mode" and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2:]
        if a.startswith("--mode="):
            return a.split("=", 1)[1], args[:i] + args[i + 1:]
    return None, list(args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="robust-winn")
def main() -> None:
    """robust_winn: Wasserstein Introspective Neural Networks (Lee et al., CVPR 2018).

    Train classifiers that are also generators (WINN) beside cross-entropy baselines, attack
    them, and reproduce the paper's tables. Start with `robust-winn quickstart`.
    """


def _train_options(fn: Any) -> Any:
    opts = [
        click.option("--dataset", default="mnist", show_default=True,
                     help="Registered dataset (see `robust-winn list`); 'sample' is the bundled "
                          "MNIST sample."),
        click.option("--arch", default="vanilla", show_default=True,
                     help="Registered model name or a user factory 'pkg.module:factory' returning an "
                          "nn.Module that maps [-1,1] images to (N, K) logits."),
        click.option("--method", type=click.Choice([m.value for m in Method]), default="winn",
                     show_default=True,
                     help="baseline = cross-entropy only; winn = CE + alpha*(W + lambda*GP)."),
        click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Passes over the training split (paper/code: 200)."),
        click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False),
                     help="Root holding the torchvision layout, e.g. DIR/MNIST/raw/*.gz."),
        click.option("--download/--no-download", default=False, show_default=True,
                     help="Let torchvision download missing files (needs network)."),
        click.option("--val-size", type=click.IntRange(min=0), default=None,
                     help="Last N training images used for validation [default: 15000 for MNIST]."),
        click.option("--limit-train", type=click.IntRange(min=1), default=None,
                     help="Keep only the first N training images (quick runs)."),
        click.option("--limit-test", type=click.IntRange(min=1), default=None,
                     help="Keep only the first N test images (quick runs)."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seeds initialisation, data order, pool draws and synthesis."),
        click.option("--device", default="auto", show_default=True, callback=device_option_check,
                     help="auto (cuda if available), cpu, cuda or cuda:N."),
        click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
                     help="Positives per step (and as many pseudo-negatives)."),
        click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=1e-3,
                     show_default=True, help="Classifier Adam learning rate (betas 0.0, 0.9)."),
        click.option("--alpha", type=FiniteFloat(min=0), default=0.01, show_default=True,
                     help="Weight of the WINN term (paper: 0.01)."),
        click.option("--gp-lambda", type=FiniteFloat(min=0), default=10.0, show_default=True,
                     help="Gradient-penalty weight lambda."),
        click.option("--synth-max-steps", type=click.IntRange(min=0), default=2000,
                     show_default=True, help="Cap on Adam steps per synthesis pass (code: 2000)."),
        click.option("--synth-per-class", type=click.IntRange(min=1), default=100,
                     show_default=True, help="New pseudo-negatives per class after each epoch."),
        click.option("--stop-rule", type=click.Choice([r.value for r in StopRule]),
                     default=StopRule.BATCH_MEAN.value, show_default=True,
                     help="batch-mean: stop a class batch when |mean f - tau| <= 1e-3 (released "
                          "code); per-sample: freeze each image once |f - tau| <= 1e-3."),
        click.option("--pool-capacity", type=click.IntRange(min=1), default=25_000,
                     show_default=True, help="Most pseudo-negatives kept per class (FIFO past that)."),
        click.option("--pool-dtype", type=click.Choice(["float32", "uint8"]), default="float32",
                     show_default=True, help="Pool storage: exact float32 or 4x smaller uint8."),
        click.option("--precision", type=click.Choice([p.value for p in Precision]),
                     default=Precision.FLOAT32.value, show_default=True,
                     help="bf16: classifier forward passes under bf16 autocast (CUDA only; "
                          "GP, thresholds and losses stay float32). Falls back to float32 off CUDA."),
        click.option("--channels-last/--no-channels-last", default=False, show_default=True,
                     help="Model and image batches in channels_last memory format."),
        click.option("--compile/--no-compile", "compile_model", default=False, show_default=True,
                     help="torch.compile the classifier forward (not the GP); eager if it fails."),
        click.option("--pin-memory/--no-pin-memory", default=None,
                     help="Pinned host memory and non-blocking copies of batches "
                          "[default: on with CUDA; ignored on CPU]."),
        click.option("--no-progress", is_flag=True,
                     help="Hide progress bars (hidden anyway when not a TTY)."),
        click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _config(kw: dict[str, Any], out: str) -> TrainConfig:
    syn = SynthesisConfig(
        max_steps=kw["synth_max_steps"], per_class=kw["synth_per_class"],
        stop_rule=StopRule(kw["stop_rule"]), pool_capacity=kw["pool_capacity"],
        pool_dtype=kw["pool_dtype"],
    )
    return TrainConfig(
        dataset=kw["dataset"], data_dir=kw["data_dir"], download=kw["download"],
        val_size=kw["val_size"], limit_train=kw["limit_train"], limit_test=kw["limit_test"],
        arch=kw["arch"], method=Method(kw["method"]), epochs=kw["epochs"],
        batch_size=kw["batch_size"], lr=kw["lr"], alpha=kw["alpha"], gp_lambda=kw["gp_lambda"],
        synthesis=syn, seed=kw["seed"], device=kw["device"], out=out,
        progress=not kw["no_progress"],
        fast=FastPathConfig(
            precision=Precision(kw["precision"]), channels_last=kw["channels_last"],
            compile=kw["compile_model"], pin_memory=kw["pin_memory"],
        ),
    )


@main.command()
@_train_options
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: checkpoint-best.pt, checkpoint-last.pt, record.json, epochs.csv.")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/checkpoint-last.pt (exactly: RNG, optimizer and pool restored); "
                   "only --epochs, --device, --data-dir and speed options may differ from the run's.")
@overwrite_option()
def train(out: str, resume: bool, overwrite: bool, **kw: Any) -> None:
    """Train a classifier by cross-entropy (baseline) or WINN (paper §5.6).

    `--mode unsupervised` trains a WINN generator instead and takes the options of
    `robust-winn train-unsupervised --help` (paper §4, Algorithm 1).
    """
    from ..training import NonFiniteLossError
    from ..training import train as run_train

    setup_logging(kw["quiet"])
    cfg = _config(kw, out)
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
    """List registered datasets, models and attacks."""
    from ..attacks.registry import list_attacks
    from ..data.datasets import list_datasets
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


def _seeds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("give comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise click.BadParameter("at least one seed")
    return seeds


def _rows(ctx: click.Context, param: click.Parameter, value: str) -> tuple[tuple[str, str], ...]:
    rows = []
    for item in value.split(","):
        dataset, sep, arch = item.strip().partition(":")
        if not sep or not dataset or not arch:
            raise click.BadParameter(f"{item!r}: use DATASET:ARCH, e.g. mnist:vanilla")
        rows.append((dataset, arch))
    return tuple(rows)


_REPLACE_MEASURED = click.option(
    "--replace-measured", is_flag=True,
    help="Allow rows measured in the existing table under --out to be replaced by rows this run "
         "does not measure (not run here, not requested, or left out). Without it such a run is "
         "refused before any work.",
)


def _reproduce_options(fn: Any) -> Any:
    opts = [
        click.option("--seeds", default="0,1,2", show_default=True, callback=_seeds,
                     help="Comma-separated seeds; tables give mean and std over them."),
        click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True,
                     help="Epochs per run (paper/code: 200)."),
        click.option("--synth-max-steps", type=click.IntRange(min=0), default=200,
                     show_default=True, help="Synthesis cap per pass (code: 2000)."),
        click.option("--data-dir", default="data", show_default=True, help="Dataset root."),
        click.option("--runs-dir", default="runs/table2", show_default=True,
                     help="Where runs are trained, reused and resumed (shared by Tables 2-4)."),
        click.option("--out", "out_dir", default="results", show_default=True,
                     help="Folder for the table files."),
        click.option("--device", default="auto", show_default=True, callback=device_option_check,
                     help="auto, cpu, cuda[:N]."),
        click.option("--allow-cpu-resnet", is_flag=True,
                     help="Run ResNet-32 rows on the CPU too (hours per run)."),
        click.option("--no-progress", is_flag=True, help="Hide progress bars."),
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
@click.option("--rows", default="mnist:vanilla,mnist:resnet32,svhn:resnet32", show_default=True,
              callback=_rows, help="DATASET:ARCH rows; rows without data or GPU are marked not run.")
def reproduce_table2_cmd(rows: tuple[tuple[str, str], ...], **kw: Any) -> None:
    """Table 2: test error of baseline vs WINN, mean ± std over seeds."""
    from ..experiments.table2 import GridSpec, reproduce_table2

    setup_logging(False)
    spec = GridSpec(
        rows=rows, seeds=kw["seeds"], epochs=kw["epochs"], synth_max_steps=kw["synth_max_steps"],
        data_dir=kw["data_dir"], runs_dir=kw["runs_dir"], device=kw["device"],
        allow_cpu_resnet=kw["allow_cpu_resnet"], progress=not kw["no_progress"],
    )
    reproduce_table2(spec, out_dir=kw["out_dir"], command=command_line(),
                     replace_measured=kw["replace_measured"])
    click.echo((Path(kw["out_dir"]) / "table2.md").read_text())


@main.command()
@click.option("--out", default="runs/quickstart", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the two runs, the attack record and summary.md.")
@click.option("--device", default="auto", show_default=True, callback=device_option_check,
              help="auto, cpu, cuda[:N].")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of both runs and the attacks.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@overwrite_option("quickstart")
def quickstart(out: str, device: str, seed: int, no_progress: bool, overwrite: bool) -> None:
    """Offline demo: baseline vs WINN on the bundled MNIST sample, then FGSM and PGD.

    Trains both methods (8 epochs on 2,500 real MNIST images; 50 new pseudo-negatives per class
    per epoch, synthesis capped at 100 steps),
    attacks both at eps = 0.125 and prints a Table 2/3 style summary. A few minutes on 2 CPU
    cores. Small-sample numbers: see README for the full-MNIST tables.
    """
    from ..experiments.quickstart import QUICK
    from ..experiments.quickstart import quickstart as run_quickstart

    setup_logging(False)
    table = run_quickstart(out, device=device, seed=seed, progress=not no_progress,
                           overwrite=overwrite, command=command_line())
    click.echo(f"\nbaseline vs WINN on the bundled MNIST sample ({QUICK['epochs']} epochs, "
               f"eps {QUICK['eps']} in [0,1] pixel units, 1,000 test images):\n")
    click.echo(table.to_markdown(index=False))
    click.echo(f"\nRecords and checkpoints: {out}/ (summary.md, attack-record.json, */record.json)")


def _table_extra(kw: dict[str, Any]) -> dict[str, Any] | None:
    extra = {k: kw[k] for k in ("limit_train",) if kw.get(k)}
    return extra or None


@reproduce.command("table3")
@_reproduce_options
@click.option("--arch", "archs", multiple=True, default=("vanilla", "resnet32"), show_default=True,
              help="Architectures (repeatable); ResNet rows need a GPU or --allow-cpu-resnet and "
                   "otherwise show the paper's numbers marked not run here.")
@click.option("--dataset", default="mnist", show_default=True,
              help="mnist (paper); 'sample' for a quick offline smoke run.")
@click.option("--limit-train", type=click.IntRange(min=1), default=None,
              help="Train on the first N images only (smoke runs).")
@click.option("--limit-test", type=click.IntRange(min=1), default=None,
              help="Attack the first N test images only (smoke runs).")
def reproduce_table3_cmd(archs: tuple[str, ...], dataset: str, **kw: Any) -> None:
    """Table 3: MNIST FGSM (eps 0.125) and PGD adversarial error, correction rates."""
    from ..experiments.tables34 import reproduce_table3

    setup_logging(False)
    reproduce_table3(
        kw["out_dir"], seeds=kw["seeds"], epochs=kw["epochs"], data_dir=kw["data_dir"],
        arch=archs, dataset=dataset, runs_dir=kw["runs_dir"], device=kw["device"],
        synth_max_steps=kw["synth_max_steps"], allow_cpu_resnet=kw["allow_cpu_resnet"],
        limit_test=kw["limit_test"], progress=not kw["no_progress"], extra=_table_extra(kw),
        command=command_line(), replace_measured=kw["replace_measured"],
    )
    click.echo((Path(kw["out_dir"]) / "table3.md").read_text())


@reproduce.command("table4")
@_reproduce_options
def reproduce_table4_cmd(**kw: Any) -> None:
    """Table 4: SVHN ResNet-32 FGSM (eps 0.005); marked not run here without the SVHN files."""
    from ..experiments.tables34 import reproduce_table4

    setup_logging(False)
    reproduce_table4(
        kw["out_dir"], seeds=kw["seeds"], epochs=kw["epochs"], data_dir=kw["data_dir"],
        runs_dir=kw["runs_dir"], device=kw["device"], synth_max_steps=kw["synth_max_steps"],
        allow_cpu_resnet=kw["allow_cpu_resnet"], progress=not kw["no_progress"],
        command=command_line(), replace_measured=kw["replace_measured"],
    )
    click.echo((Path(kw["out_dir"]) / "table4.md").read_text())


def _register_commands() -> None:
    from .attack import attack
    from .unsup import generate_cmd, score_cmd, train_unsupervised_cmd

    for cmd in (attack, train_unsupervised_cmd, generate_cmd, score_cmd):
        main.add_command(cmd)


_register_commands()


@reproduce.command("ablations")
@click.option("--variant", "variants", multiple=True,
              type=click.Choice(["default", "alpha0.1", "cap1000", "epochs30"]),
              default=("default", "alpha0.1", "cap1000", "epochs30"), show_default=True,
              help="WINN variants (repeatable): the Table 2/3 setting, alpha x10, synthesis cap x5, "
                   "epochs x2. Each is paired with the baseline of the same seed and epochs.")
@click.option("--seeds", default="0,1,2", show_default=True, callback=_seeds, help="Seeds.")
@click.option("--dataset", default="mnist", show_default=True, help="mnist, or sample (smoke run).")
@click.option("--data-dir", default="data", show_default=True, help="Dataset root.")
@click.option("--runs-root", default="runs", show_default=True,
              help="Runs root: ROOT/table2 (shared with Tables 2-3) and ROOT/ablations/<variant>.")
@click.option("--out", "out_dir", default="results", show_default=True, help="Table folder.")
@click.option("--device", default="auto", show_default=True, callback=device_option_check,
              help="auto, cpu, cuda[:N].")
@click.option("--limit-train", type=click.IntRange(min=1), default=None, help="Smoke runs only.")
@click.option("--limit-test", type=click.IntRange(min=1), default=None,
              help="Attack only the first N test images.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@_REPLACE_MEASURED
def reproduce_ablations_cmd(variants: tuple[str, ...], **kw: Any) -> None:
    """Ablations: alpha, synthesis budget and epochs vs FGSM/PGD robustness (issue 3)."""
    from ..experiments.ablations import DEFAULT_VARIANTS, AblationSpec, run_ablations

    setup_logging(False)
    spec = AblationSpec(
        variants=[v for v in DEFAULT_VARIANTS if v.name in variants], seeds=kw["seeds"],
        dataset=kw["dataset"], data_dir=kw["data_dir"], runs_dir=kw["runs_root"],
        device=kw["device"], limit_test=kw["limit_test"], progress=not kw["no_progress"],
        extra={"limit_train": kw["limit_train"]} if kw["limit_train"] else {},
    )
    run_ablations(spec, out_dir=kw["out_dir"], command=command_line(),
                  replace_measured=kw["replace_measured"])
    click.echo((Path(kw["out_dir"]) / "ablations.md").read_text())
