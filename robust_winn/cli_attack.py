"""``robust-winn attack``: attack trained classifiers and write records, tables and curves.

Thin by design (DESIGN §1): parse options, load models and data, call
:func:`robust_winn.attacks.evaluate`, write the outputs. Every library error that means bad
input becomes one ``Error:`` line and exit code 2 (``click.UsageError``).
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from typing import Any

import click
import torch
from torch import nn

from .attacks.tables import reproduce_table3, reproduce_table4
from .checkpoint import CheckpointError, load_checkpoint, load_classifier, versions
from .data import DataSplits, DataUnavailableError, load_dataset
from .models import ModelSpecError, build_classifier

__all__ = ["attack", "reproduce_table3", "reproduce_table4"]

log = logging.getLogger(__name__)

_BAD_INPUT = (KeyError, ValueError, CheckpointError, DataUnavailableError, ModelSpecError)


def _message(exc: BaseException) -> str:
    return exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("cuda was asked for but no CUDA device is available",
                                 param_hint="--device")
    return dev


def _read_checkpoint(path: str, option: str) -> dict[str, Any]:
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc
    if not isinstance(state.get("model"), dict) or "image_shape" not in state["model"]:
        raise click.BadParameter(f"{path} holds no classifier metadata", param_hint=option)
    return state


def _load_checkpoint_model(path: str, option: str, dev: torch.device) -> nn.Module:
    try:
        return load_classifier(path, map_location=dev)[0]
    except (CheckpointError, ModelSpecError, KeyError) as exc:
        raise click.BadParameter(_message(exc), param_hint=option) from exc
    except RuntimeError as exc:  # load_state_dict: the weights do not fit the architecture
        raise click.BadParameter(
            f"{path}: weights do not fit its architecture: {str(exc).splitlines()[0]}",
            param_hint=option) from exc


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
            f"{weights} is a robust_winn checkpoint; pass it with --model instead",
            param_hint="--weights")
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


@click.command("attack", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="robust_winn checkpoint (.pt) of the model to attack; its dataset is the "
                   "default --dataset.")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False),
              help="Second checkpoint: both models are attacked and each scores the other's "
                   "examples (paper Table 3: adversarial errors, correction rates, transfer).")
@click.option("--arch", help="Instead of --model: a registered name or 'pkg.module:factory' "
                             "returning an nn.Module that maps [-1,1] images to (N, K) logits.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="state_dict file (torch.save(model.state_dict())) loaded into --arch.")
@click.option("--attack", "attacks", multiple=True, default=("fgsm",), show_default=True,
              help="Attack name, repeatable: fgsm, pgd, apgd, autoattack, square; parameters as "
                   "'pgd:steps=40,alpha=0.01,restarts=5' (see `robust-winn list`).")
@click.option("--eps", "eps", multiple=True, type=float, default=(0.125,), show_default=True,
              help="L-inf radius in [0, 1] pixel units, repeatable (paper MNIST: 0.125 = the "
                   "code's 0.25 on [-1, 1]).")
@click.option("--dataset", default=None,
              help="Registered dataset whose test split is attacked [default: the checkpoint's "
                   "dataset, else mnist].")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Root holding the torchvision layout, e.g. DIR/MNIST/raw/*.gz.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: record.json, table.csv, table.md, curve.csv, curve.png.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Attack only the first N test images (quick runs) [default: all].")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Images per attack batch.")
@click.option("--device", default="auto", show_default=True,
              help="auto (cuda if available), cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds PGD random starts and the seeded attacks (APGD, FAB, Square).")
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def attack(
    model_path: str | None, baseline_path: str | None, arch: str | None, weights: str | None,
    attacks: tuple[str, ...], eps: tuple[float, ...], dataset: str | None, data_dir: str,
    out: str, limit: int | None, batch_size: int, device: str, seed: int, quiet: bool,
) -> None:
    """Attack a classifier (and optionally a baseline) on a test set (paper §5.6, Tables 3-4).

    Examples are made on each model in turn and classified by every model, giving adversarial
    error, correction rates (REFERENCE §2) and transfer errors, plus sanity warnings.
    """
    from .attacks import evaluate, parse_attack
    from .attacks.registry import check_eps
    from .attacks.report import write_attack_outputs

    t0 = time.perf_counter()
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if weights is not None and arch is None:
        raise click.UsageError("--weights needs --arch")
    if (model_path is None) == (arch is None):
        raise click.UsageError("give the model to attack with --model CKPT or --arch FACTORY "
                               "(--weights FILE), exactly one of them")
    try:
        for a in attacks:
            parse_attack(a)
    except (KeyError, ValueError) as exc:
        raise click.BadParameter(_message(exc), param_hint="--attack") from exc
    try:
        for e in eps:
            check_eps(e)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--eps") from exc
    dev = _device(device)
    paths = {k: v for k, v in (("model", model_path), ("baseline", baseline_path)) if v}
    states = {k: _read_checkpoint(v, f"--{k}") for k, v in paths.items()}
    first = next(iter(states.values()), {})
    name = dataset or first.get("dataset", {}).get("name") or "mnist"
    try:
        data = load_dataset(name, data_dir=data_dir, limit_test=limit)
        for k, st in states.items():
            _check_geometry(st, paths[k], data)
        models = {k: _load_checkpoint_model(v, f"--{k}", dev) for k, v in paths.items()}
        if arch is not None:
            models = {"model": _load_arch(arch, weights, data, dev), **models}
            paths = {"model": arch, **paths}
        record = evaluate(models, dataset=data, attacks=list(attacks), eps=list(eps),
                          batch_size=batch_size, device=dev, seed=seed)
    except _BAD_INPUT as exc:
        raise click.UsageError(_message(exc)) from exc
    record = {
        "command": _command(click.get_current_context()),
        "inputs": paths,
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        **record,
        "limit": limit,
        "wall_time_s": time.perf_counter() - t0,
    }
    paths = write_attack_outputs(record, out)
    for r in record["results"]:
        if r["type"] != "white-box":
            continue
        click.echo(f"{r['attack']} eps={r['eps']} on {r['source']}: "
                   f"adversarial error {100 * r['error']:.2f}%")
        for c in record["correction"]:
            if (c["referee"], c["attack"], c["eps"]) == (r["source"], r["attack"], r["eps"]):
                rate = c["correction_rate"]
                text = "n/a (N_A = 0)" if rate is None else f"{100 * rate:.2f}%"
                click.echo(f"  correction by {c['other']} of these errors: {text}")
    click.echo(f"wrote {paths['record.json'].parent}/{{record.json, table.csv, table.md, "
               f"curve.csv, curve.png}}")
