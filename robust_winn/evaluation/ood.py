"""What the critic knows: out-of-distribution detection and calibration of classifiers (issue 14).

:func:`evaluate_ood` scores the in-distribution test images and every OOD set (:func:`~.ood_inputs.
parse_ood`: registered datasets, synthetic sets, ``folder:PATH``, ``npz:PATH``, ``adv:ATTACK:EPS``)
with each model and each score of :mod:`.ood_scores` (higher = more in-distribution; WINN's critic
f(x), REFERENCE §1.3, beside the max-softmax baseline and JEM's energy) and reports AUROC, AUPR-In
and FPR at 95% TPR per model, set and score, with the calibration of the in-distribution test
predictions (:mod:`.calibration`; under adversarial sets too). The raw scores, including those of
each model's own pseudo-negatives, feed the energy picture (:mod:`.ood_plot`);
:mod:`.ood_report` writes the files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.datasets import DataSplits, ImageSet, load_dataset
from ..data.ood_sets import list_synthetic_sets
from ..errors import BadValueError
from ..runtime.device import resolve_device
from ..runtime.header import run_header
from .calibration import calibration_metrics, calibration_terms, summarise_terms
from .ood_inputs import (
    OODModel,
    OODSpec,
    SetKind,
    adversarial_set,
    check_geometry,
    load_fixed_set,
    load_ood_model,
    parse_ood,
    parse_scores,
    synthesize_pseudo_negatives,
)
from .ood_scores import CRITIC_SCORES, DEFAULT_SCORES, SCORE_MEANING, Score, ood_metrics, score_images

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OOD_SETS", "IN_DIST", "OODResult", "PSEUDO", "evaluate_ood"]

IN_DIST = "in-distribution test"  # the positives' name in the raw scores and the pictures
PSEUDO = "pseudo-negatives"  # each model's own synthesised images (energy picture only)
DEFAULT_OOD_SETS = ("fashion-mnist", *list_synthetic_sets())


@dataclass
class OODResult:
    """What :func:`evaluate_ood` measured: a JSON-ready record and the raw scores for the pictures."""

    record: dict[str, Any]  # header, inputs, sets, calibration, one row per model x set x score
    values: dict[str, dict[Score, dict[str, np.ndarray]]]  # model -> score -> set -> (N,) scores


def _rows(
    model: str,
    values: dict[Score, dict[str, np.ndarray]],
    set_name: str,
    scores: Sequence[Score],
    reason: str | None,
    fooled: Tensor | None,
) -> list[dict[str, Any]]:
    """One row per score: the metrics, or why a critic score is not applicable.

    For adversarial sets also ``fooled`` (the share of examples the model misclassifies) and
    ``auroc_fooled``: the AUROC against those examples only.
    """
    rows = []
    for s in scores:
        row: dict[str, Any] = {"model": model, "ood": set_name, "score": s.value}
        if fooled is not None:
            row["fooled"] = float(fooled.float().mean())
        if s in CRITIC_SCORES and reason is not None:
            rows.append({**row, "auroc": None, "aupr": None, "fpr95": None, "status": f"n/a: {reason}"})
            continue
        row.update(ood_metrics(values[s][IN_DIST], values[s][set_name]))
        if fooled is not None and bool(fooled.any()):
            row["auroc_fooled"] = ood_metrics(values[s][IN_DIST], values[s][set_name][fooled.numpy()])[
                "auroc"
            ]
        rows.append({**row, "status": "measured"})
    return rows


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}


@dataclass
class _Run:
    """The settings one :func:`evaluate_ood` call applies to every model."""

    test: ImageSet
    specs: list[OODSpec]
    fixed: dict[str, Tensor]  # model-independent sets, uint8
    asked: tuple[Score, ...]
    batch_size: int
    device: torch.device
    seed: int
    pseudo_negatives: int
    synth_max_steps: int


def _score_model(
    name: str, m: OODModel, run: _Run
) -> tuple[list[dict[str, Any]], dict[Score, dict[str, np.ndarray]], dict[str, Any], list[str]]:
    """Rows, raw scores per set, record entry and warnings of one model."""
    asked = [s for s in run.asked if m.critic_reason is None or s not in CRITIC_SCORES]
    internal = tuple(dict.fromkeys([*asked, Score.CRITIC, Score.ENERGY]))  # f, energy: histograms, taus
    kw: dict[str, Any] = {"scores": internal, "batch_size": run.batch_size, "device": run.device}
    log.info("%s: scoring %d in-distribution test images", name, len(run.test))
    sc, logits = score_images(m.model, run.test.images, **kw)
    per: dict[Score, dict[str, np.ndarray]] = {s: {IN_DIST: sc[s]} for s in internal}
    clean, rel = summarise_terms(calibration_terms(logits, run.test.labels))
    calib = {"clean": clean}
    info: dict[str, Any] = {
        "source": m.source,
        "method": m.meta.get("method"),
        "critic": m.critic_reason or "trained",
    }
    info["reliability"] = {**rel, "ece": clean["ece"]}
    if run.pseudo_negatives:
        x_neg, info["pseudo_negatives"] = synthesize_pseudo_negatives(
            m,
            sc[Score.CRITIC],
            per_class=run.pseudo_negatives,
            max_steps=run.synth_max_steps,
            seed=run.seed,
            device=run.device,
        )
        for s, v in score_images(m.model, x_neg, **kw)[0].items():
            per[s][PSEUDO] = v
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for spec in run.specs:
        log.info("%s: scoring %s", name, spec.name)
        fooled = None
        if spec.kind is SetKind.ADV:
            images, fooled, warn = adversarial_set(
                m,
                run.test,
                spec.target,
                spec.eps,
                batch_size=run.batch_size,
                device=run.device,
                seed=run.seed,
            )
            warnings += [f"{name} {spec.name}: {w}" for w in warn]
        else:
            images = run.fixed[spec.name]
        sc_out, logits_out = score_images(m.model, images, **kw)
        for s in internal:
            per[s][spec.name] = sc_out[s]
        if fooled is not None:
            calib[spec.name] = calibration_metrics(logits_out, run.test.labels)
        rows += _rows(name, per, spec.name, run.asked, m.critic_reason, fooled)
    info["calibration"] = calib
    info["score_summary"] = {s.value: {k: _summary(v) for k, v in per[s].items()} for s in internal}
    return rows, per, info, warnings


def evaluate_ood(
    models: Mapping[str, str | Path | OODModel],
    *,
    ood: Sequence[str] = DEFAULT_OOD_SETS,
    in_dist: str | DataSplits | None = None,
    scores: Sequence[str | Score] = DEFAULT_SCORES,
    data_dir: str | Path = "data",
    ood_data_dir: str | Path | None = None,
    limit: int | None = None,
    resize: bool = True,
    batch_size: int = 500,
    device: str | torch.device = "auto",
    seed: int = 0,
    pseudo_negatives: int = 10,
    synth_max_steps: int = 200,
    trust_code: bool = False,
    command: str | None = None,
) -> OODResult:
    """AUROC, AUPR-In and FPR95 per model x OOD set x score, and clean calibration (issue 14).

    Args:
        models: ``{name: checkpoint path or OODModel}``; checkpoints are loaded safely, their
            critic judged trained only for WINN-trained methods (:func:`critic_status`).
        ood: OOD set names (:func:`parse_ood`).
        in_dist: the in-distribution dataset (its test split), a name or loaded splits; default
            the first checkpoint's dataset.
        scores: :class:`Score` names; critic scores of a model whose critic was never trained
            are reported as not applicable with the reason, never as numbers.
        data_dir: root of the in-distribution dataset (torchvision layout).
        ood_data_dir: root of registered OOD datasets (default ``data_dir``); for Debian's
            ``dataset-fashion-mnist`` package, ``/usr/share/datasets``.
        limit: use the first N images of every set (in-distribution test images included).
        resize: resize user images of another size to the model's input (else refuse them).
        batch_size: images per forward pass and per attack batch.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        seed: seeds the synthetic sets, random attack starts and the pseudo-negatives.
        pseudo_negatives: pseudo-negatives synthesised per class for the energy picture (0: none).
        synth_max_steps: their step cap (at most the run's own).
        trust_code: let checkpoints that name an import string run it (``--trust-checkpoint-code``).
        command: the command line, for the record.

    Returns:
        :class:`OODResult`; :func:`robust_winn.evaluation.ood_report.write_ood_outputs` writes it.

    Raises:
        UnknownNameError, BadValueError: bad set or score names, numbers or geometry (before
            any model is run). DataUnavailableError, CheckpointError: unreadable inputs.
    """
    t0 = time.perf_counter()
    specs = [parse_ood(n) for n in ood]
    if not specs:
        raise BadValueError("no OOD set given (--ood NAME)")
    if len({s.name for s in specs}) != len(specs):
        raise BadValueError(f"an OOD set is listed twice: {', '.join(s.name for s in specs)}")
    asked = parse_scores(scores)
    for what, value in (("limit", limit), ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise BadValueError(f"{what} must be >= 1, got {value}")
    if pseudo_negatives < 0 or synth_max_steps < 0:
        raise BadValueError("pseudo_negatives and synth_max_steps must be >= 0")
    if not models:
        raise BadValueError("no model given (--model CKPT)")
    dev = resolve_device(str(device))
    loaded = {
        k: v if isinstance(v, OODModel) else load_ood_model(v, device=dev, trust_code=trust_code)
        for k, v in models.items()
    }
    if in_dist is None:
        in_dist = (next(iter(loaded.values())).meta.get("dataset") or {}).get("name") or "mnist"
    data = (
        in_dist
        if isinstance(in_dist, DataSplits)
        else load_dataset(in_dist, data_dir=data_dir, limit_test=limit)
    )
    for name, m in loaded.items():
        check_geometry(name, m, data)
    test = data.test.subset(slice(0, limit))
    root = data_dir if ood_data_dir is None else ood_data_dir
    fixed = {
        s.name: load_fixed_set(
            s,
            test.images,
            shape=data.image_shape,
            data_dir=root,
            limit=limit,
            resize=resize,
            seed=seed,
            index=i,
        )
        for i, s in enumerate(specs)
        if s.kind is not SetKind.ADV
    }
    run = _Run(test, specs, fixed, asked, batch_size, dev, seed, pseudo_negatives, synth_max_steps)
    rows: list[dict[str, Any]] = []
    values: dict[str, dict[Score, dict[str, np.ndarray]]] = {}
    info: dict[str, Any] = {}
    warnings: list[str] = []
    for name, m in loaded.items():
        r, values[name], info[name], w = _score_model(name, m, run)
        rows, warnings = rows + r, warnings + w
    record = {
        **run_header(command, dev),
        "in_distribution": {"dataset": data.name, "n": len(test), "data_dir": str(data_dir)},
        "ood_data_dir": str(root),
        "ood_sets": [
            {"name": s.name, "kind": s.kind.value, "n": len(fixed[s.name]) if s.name in fixed else len(test)}
            for s in specs
        ],
        "synthetic_sets": {
            s.name: list_synthetic_sets()[s.name] for s in specs if s.kind is SetKind.SYNTHETIC
        },
        "scores": {s.value: SCORE_MEANING[s] for s in asked},
        "seed": seed,
        "limit": limit,
        "resize": resize,
        "models": info,
        "rows": rows,
        "warnings": warnings,
        "wall_time_s": time.perf_counter() - t0,
    }
    return OODResult(record, values)
