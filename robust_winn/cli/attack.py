"""``robust-winn attack``: attack trained classifiers and write records, tables and curves.

Thin by design (DESIGN §1): parse options, load models and data, call
:func:`robust_winn.attacks.evaluate`, write the outputs. Bad input (a
:class:`robust_winn.errors.UserError` or a click usage error) becomes one ``Error:`` line and
exit code 2 through the main group; ``--out`` is claimed (writable, locked, no earlier attack
replaced without ``--overwrite``) before any model is loaded, so no attack's results are lost.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Collection
from typing import Any

import click
import torch
from torch import nn

from ..attacks.report import ATTACK_FILES
from ..data.datasets import DataSplits, load_dataset
from ..experiments.presets import ATTACK_BATCH_SIZE, MNIST_EPS
from ..experiments.tables34 import reproduce_table3, reproduce_table4
from ..models import build_classifier
from ..runtime.checkpoint import CheckpointError, load_checkpoint, load_classifier, model_meta
from ..runtime.header import run_header
from ..runtime.rundir import claim
from .common import (
    SEED,
    FiniteFloat,
    RobustWinnCommand,
    device_option_check,
    overwrite_option,
    trust_option,
)

__all__ = ["attack", "reproduce_table3", "reproduce_table4"]

log = logging.getLogger(__name__)


def _read_checkpoint(path: str, option: str, trusted: Collection[str], trust_code: bool) -> dict[str, Any]:
    """Load and check a classifier checkpoint (metadata, trusted code) before any work."""
    try:
        state = load_checkpoint(path)
        model_meta(state, path, trusted_code=trusted, trust_code=trust_code)
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc
    return state


def _load_checkpoint_model(
    path: str, option: str, dev: torch.device, trusted: Collection[str], trust_code: bool
) -> nn.Module:
    try:
        return load_classifier(path, map_location=dev, trusted_code=trusted, trust_code=trust_code)[0]
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def _check_geometry(state: dict[str, Any], path: str, data: DataSplits) -> None:
    meta = state["model"]
    shape, k = tuple(meta["image_shape"]), int(meta["num_classes"])
    if shape != data.image_shape or k != data.num_classes:
        raise click.UsageError(
            f"{path} was trained on images {shape} with {k} classes, but dataset {data.name!r} "
            f"has images {data.image_shape} with {data.num_classes} classes; pick the dataset "
            f"the checkpoint was trained on (--dataset)"
        )


def _load_arch(arch: str, weights: str | None, data: DataSplits, dev: torch.device) -> nn.Module:
    model = build_classifier(arch, image_shape=data.image_shape, num_classes=data.num_classes)
    if weights is None:
        log.warning("--arch without --weights: attacking the factory's own weights")
        return model.to(dev)
    try:
        state = torch.load(weights, map_location=dev, weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        raise click.BadParameter(f"cannot read {weights}: {exc}", param_hint="--weights") from exc
    if isinstance(state, dict) and "model_state" in state:
        raise click.BadParameter(
            f"{weights} is a robust_winn checkpoint; pass it with --model instead", param_hint="--weights"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise click.BadParameter(
            f"{weights} does not fit {arch}: {str(exc).splitlines()[0]}", param_hint="--weights"
        ) from exc
    return model.to(dev)


def _command(ctx: click.Context) -> str:
    """The command line, rebuilt from the parsed options (valid however it was invoked)."""
    parts = ["robust-winn", "attack"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or param.name == "help":
            continue
        flag = param.opts[0]
        for v in value if isinstance(value, tuple) else (value,):
            parts += [flag] if v is True else [flag, shlex.quote(str(v))]
    return " ".join(parts)


@click.command("attack", cls=RobustWinnCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False),
    help="robust_winn checkpoint (.pt) of the model to attack; its dataset is the default --dataset.",
)
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(dir_okay=False),
    help="Second checkpoint: both models are attacked and each scores the other's "
    "examples (paper Table 3: adversarial errors, correction rates, transfer).",
)
@click.option(
    "--arch",
    help="Instead of --model: a registered name or 'pkg.module:factory' "
    "returning an nn.Module that maps [-1,1] images to (N, K) logits. "
    "With --model: the import string that the checkpoint names as its "
    "architecture, which you thereby trust to be imported and run.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    help="state_dict file (torch.save(model.state_dict())) loaded into --arch.",
)
@click.option(
    "--attack",
    "attacks",
    multiple=True,
    default=("fgsm",),
    show_default=True,
    help="Attack name, repeatable: fgsm, pgd, apgd, autoattack, square; parameters as "
    "'pgd:steps=40,alpha=0.01,restarts=5' (see `robust-winn list`).",
)
@click.option(
    "--eps",
    "eps",
    multiple=True,
    type=FiniteFloat(min=0, max=1),
    default=(MNIST_EPS,),
    show_default=True,
    help="L-inf radius in [0, 1] pixel units, repeatable (paper MNIST: 0.125 = the code's 0.25 on [-1, 1]).",
)
@click.option(
    "--dataset",
    default=None,
    help="Registered dataset whose test split is attacked [default: the checkpoint's dataset, else mnist].",
)
@click.option(
    "--data-dir",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Root holding the torchvision layout, e.g. DIR/MNIST/raw/*.gz.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: attack-record.json, attack-table.csv, attack-table.md, "
    "attack-curve.csv, attack-curve.png, attack-calibration.csv (ECE, NLL, Brier: clean and "
    "per example set) and attack-reliability.png (a training run's folder is fine).",
)
@overwrite_option("attack results")
@trust_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Attack only the first N test images (quick runs) [default: all].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=ATTACK_BATCH_SIZE,
    show_default=True,
    help="Images per attack batch.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=device_option_check,
    help="auto (cuda if available), cpu, cuda or cuda:N.",
)
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seeds PGD random starts and the seeded attacks (APGD, FAB, Square).",
)
@click.option(
    "--save-examples",
    is_flag=True,
    help="Also write examples-MODEL.csv per model: each test index, label, clean prediction, "
    "each attack's prediction and which (attack, eps) broke it first ('clean' for a "
    "clean mistake).",
)
@click.option(
    "--save-adversarial",
    is_flag=True,
    help="With --save-examples: also adversarial-MODEL.pt (every adversarial set in [0, 1] "
    "pixel units, uint8 where exact, else float32) and examples-MODEL.png (clean / "
    "adversarial / perturbation of the first 8 images, largest eps).",
)
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def attack(
    model_path: str | None,
    baseline_path: str | None,
    arch: str | None,
    weights: str | None,
    attacks: tuple[str, ...],
    eps: tuple[float, ...],
    dataset: str | None,
    data_dir: str,
    out: str,
    overwrite: bool,
    trust_code: bool,
    limit: int | None,
    batch_size: int,
    device: str,
    seed: int,
    save_examples: bool,
    save_adversarial: bool,
    quiet: bool,
) -> None:
    """Attack a classifier (and optionally a baseline) on a test set (paper §5.6, Tables 3-4).

    Examples are made on each model in turn and classified by every model, giving adversarial
    error, correction rates (REFERENCE §2) and transfer errors, plus sanity warnings.
    """
    from ..attacks import evaluate, parse_attack
    from ..attacks.harness import Outcomes
    from ..attacks.registry import check_eps
    from ..attacks.report import write_attack_outputs, write_examples

    t0 = time.perf_counter()
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if weights is not None and (arch is None or model_path is not None):
        raise click.UsageError("--weights needs --arch (and no --model)")
    if save_adversarial and not save_examples:
        raise click.UsageError("--save-adversarial needs --save-examples")
    if model_path is None and arch is None:
        raise click.UsageError(
            "give the model to attack with --model CKPT or --arch FACTORY (--weights FILE)"
        )
    for a in attacks:
        parse_attack(a)  # BadValueError / UnknownNameError: one line, exit 2
    for e in eps:
        check_eps(e)
    dev = (
        torch.device(device)
        if device != "auto"
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    trusted = (arch,) if arch is not None and model_path is not None else ()
    paths = {k: v for k, v in (("model", model_path), ("baseline", baseline_path)) if v}
    states = {k: _read_checkpoint(v, f"--{k}", trusted, trust_code) for k, v in paths.items()}
    with claim(out, results=ATTACK_FILES, overwrite=overwrite, resumable=False):
        first = next(iter(states.values()), {})
        name = dataset or first.get("dataset", {}).get("name") or "mnist"
        data = load_dataset(name, data_dir=data_dir, limit_test=limit)
        for k, st in states.items():
            _check_geometry(st, paths[k], data)
        models = {k: _load_checkpoint_model(v, f"--{k}", dev, trusted, trust_code) for k, v in paths.items()}
        if arch is not None and model_path is None:
            models = {"model": _load_arch(arch, weights, data, dev), **models}
            paths = {"model": arch, **paths}
        outcomes = Outcomes(keep_images=save_adversarial) if save_examples else None
        record = evaluate(
            models,
            dataset=data,
            attacks=list(attacks),
            eps=list(eps),
            batch_size=batch_size,
            device=dev,
            seed=seed,
            outcomes=outcomes,
        )
        record = {
            **run_header(_command(click.get_current_context()), dev),
            "inputs": paths,
            **record,
            "limit": limit,
            "wall_time_s": time.perf_counter() - t0,
        }
        written = write_attack_outputs(record, out)
        extra = write_examples(outcomes, record, out) if outcomes is not None else []
    for r in record["results"]:
        if r["type"] != "white-box":
            continue
        click.echo(
            f"{r['attack']} eps={r['eps']} on {r['source']}: adversarial error {100 * r['error']:.2f}%"
        )
        for c in record["correction"]:
            if (c["referee"], c["attack"], c["eps"]) == (r["source"], r["attack"], r["eps"]):
                rate = c["correction_rate"]
                text = "n/a (N_A = 0)" if rate is None else f"{100 * rate:.2f}%"
                click.echo(f"  correction by {c['other']} of these errors: {text}")
    names = ", ".join([*ATTACK_FILES, *(p.name for p in extra)])
    click.echo(f"wrote {written['record.json'].parent}/{{{names}}}")
