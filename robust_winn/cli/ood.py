"""``robust-winn ood``: out-of-distribution detection and calibration of trained classifiers (issue 14).

Thin by design (DESIGN §1): parse options, check every name, load the checkpoints, claim
``--out`` (writable, locked, no earlier results replaced without ``--overwrite``), call
:func:`robust_winn.evaluation.ood.evaluate_ood` and write its files. Bad input (a
:class:`robust_winn.errors.UserError` or a click usage error) is one ``Error:`` line, exit 2.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..data.datasets import list_datasets
from ..data.ood_sets import list_synthetic_sets
from ..errors import UnknownNameError
from ..evaluation.ood import evaluate_ood
from ..evaluation.ood_inputs import OODModel, load_ood_model, parse_ood, parse_scores
from ..evaluation.ood_report import OOD_FILES, write_ood_outputs
from ..evaluation.ood_scores import DEFAULT_SCORES, SCORE_MEANING, Score
from ..experiments.presets import ATTACK_BATCH_SIZE, TABLE_BUDGET
from ..runtime.device import resolve_device
from ..runtime.rundir import claim
from .common import (
    SEED,
    RobustWinnCommand,
    device_option_check,
    overwrite_option,
    setup_logging,
    trust_option,
)

__all__ = ["ood"]


def _command(ctx: click.Context) -> str:
    """The command line, rebuilt from the parsed options (valid however it was invoked)."""
    parts = ["robust-winn", "ood"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or param.name == "help":
            continue
        for v in value if isinstance(value, tuple) else (value,):
            parts += [param.opts[0]] if v is True else [param.opts[0], shlex.quote(str(v))]
    return " ".join(parts)


def _labels(paths: tuple[str, ...]) -> list[str]:
    """Each checkpoint's name in tables: its folder's name, or the whole path when that repeats."""
    names = [Path(p).resolve().parent.name or p for p in paths]
    return [n if names.count(n) == 1 else p for n, p in zip(names, paths, strict=True)]


@click.command("ood", cls=RobustWinnCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    "model_paths",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="robust_winn checkpoint (.pt), repeatable; named in the tables by its folder.",
)
@click.option(
    "--in",
    "in_dist",
    default=None,
    help="Registered dataset whose test split is in-distribution [default: the first checkpoint's].",
)
@click.option(
    "--ood",
    "ood_sets",
    multiple=True,
    required=True,
    help="OOD set, repeatable: a registered dataset (fashion-mnist), a synthetic set "
    f"({', '.join(list_synthetic_sets())}), folder:PATH (image files), npz:PATH (array 'images', "
    "uint8 or float [0, 1], NHWC or NCHW) or adv:ATTACK:EPS (each model's own adversarial test "
    "images, e.g. adv:fgsm:0.125).",
)
@click.option(
    "--score",
    "scores",
    multiple=True,
    type=click.Choice([s.value for s in Score]),
    default=tuple(s.value for s in DEFAULT_SCORES),
    show_default=True,
    help="Scores, repeatable; higher = more in-distribution: "
    + "; ".join(f"{s.value}: {m}" for s, m in SCORE_MEANING.items())
    + ". Critic scores of a model whose critic was never trained (not WINN) are reported as n/a.",
)
@click.option(
    "--data-dir",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Root of the in-distribution dataset (torchvision layout, e.g. DIR/MNIST/raw).",
)
@click.option(
    "--ood-data-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Root of registered OOD datasets [default: --data-dir]; /usr/share/datasets for Debian's "
    "dataset-fashion-mnist package.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help=f"Output folder: {', '.join(OOD_FILES)}.",
)
@overwrite_option("OOD results")
@trust_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use the first N images of every set [default: all].",
)
@click.option(
    "--no-resize", is_flag=True, help="Refuse user images of another size instead of resizing them."
)
@click.option(
    "--pseudo-negatives",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Pseudo-negatives each model synthesises per class for the energy picture (0: none).",
)
@click.option(
    "--synth-max-steps",
    type=click.IntRange(min=0),
    default=TABLE_BUDGET.synth_max_steps,
    show_default=True,
    help="Step cap of that synthesis (at most the run's own).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=ATTACK_BATCH_SIZE,
    show_default=True,
    help="Images per batch.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=device_option_check,
    help="auto, cpu, cuda or cuda:N.",
)
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seeds the synthetic sets, attacks and pseudo-negatives.",
)
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def ood(
    model_paths: tuple[str, ...],
    in_dist: str | None,
    ood_sets: tuple[str, ...],
    scores: tuple[str, ...],
    data_dir: str,
    ood_data_dir: str | None,
    out: str,
    overwrite: bool,
    trust_code: bool,
    limit: int | None,
    no_resize: bool,
    pseudo_negatives: int,
    synth_max_steps: int,
    batch_size: int,
    device: str,
    seed: int,
    quiet: bool,
) -> None:
    """Does the critic know what it has not seen? OOD detection and calibration (issue 14).

    For each model, OOD set and score: AUROC, AUPR-In and FPR at 95% TPR (in-distribution =
    positive), the calibration of its in-distribution test predictions (ECE, NLL, Brier), a
    histogram of f(x) and of the energy per model, and a reliability diagram.
    """
    setup_logging(quiet)
    for name in ood_sets:
        parse_ood(name)  # UnknownNameError / BadValueError: one line, exit 2, before any work
    parse_scores(scores)
    if in_dist is not None and in_dist not in list_datasets():
        raise UnknownNameError(
            f"--in: unknown dataset {in_dist!r}; choose one of: {', '.join(list_datasets())}"
        )
    dev = resolve_device(device)
    models: dict[str, str | Path | OODModel] = {
        label: load_ood_model(path, device=dev, trust_code=trust_code)
        for label, path in zip(_labels(model_paths), model_paths, strict=True)
    }
    with claim(out, results=OOD_FILES, overwrite=overwrite, resumable=False) as folder:
        result = evaluate_ood(
            models,
            ood=ood_sets,
            in_dist=in_dist,
            scores=scores,
            data_dir=data_dir,
            ood_data_dir=ood_data_dir,
            limit=limit,
            resize=not no_resize,
            batch_size=batch_size,
            device=dev,
            seed=seed,
            pseudo_negatives=pseudo_negatives,
            synth_max_steps=synth_max_steps,
            command=_command(click.get_current_context()),
        )
        written = write_ood_outputs(result, folder)
    for name, m in result.record["models"].items():
        c = m["calibration"]["clean"]
        click.echo(
            f"{name}: test accuracy {100 * c['accuracy']:.2f}%, ECE {100 * c['ece']:.2f}%, NLL {c['nll']:.4f}"
        )
    for r in result.record["rows"]:
        auroc = "n/a (critic not trained)" if r["auroc"] is None else f"{100 * r['auroc']:.2f}%"
        click.echo(f"  {r['model']} vs {r['ood']}, {r['score']}: AUROC {auroc}")
    click.echo(f"wrote {Path(folder)}/{{{', '.join(p.name for p in written.values())}}}")
