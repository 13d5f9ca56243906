"""The inputs of an OOD evaluation (issue 14 §1): set names, models, and the sets made per model.

- :func:`parse_ood` reads an ``--ood`` name: a registered dataset (its test split), a synthetic
  set of :mod:`robust_winn.data.ood_sets`, ``folder:PATH``, ``npz:PATH`` or ``adv:ATTACK:EPS``;
  :func:`load_fixed_set` loads the sets that do not depend on the model, in its geometry.
- :func:`load_ood_model` loads a checkpoint and what it says about the critic
  (:func:`~.ood_scores.critic_status`), its seed and its synthesis settings.
- :func:`adversarial_set`: a model's own adversarial examples of the in-distribution test images,
  made by the attack harness (:func:`robust_winn.attacks.harness.evaluate`, eps in [0, 1] pixel
  units; DESIGN §2).
- :func:`synthesize_pseudo_negatives`: a few of the model's own pseudo-negatives, made as WINN's
  training makes them after every epoch (paper §4.1, REFERENCE §1.6: fresh init-generator images,
  one threshold tau per class drawn between the min and max batch mean of f on positives, here the
  in-distribution test batches), with a capped step count that the record states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..attacks.harness import Outcomes, evaluate
from ..attacks.registry import check_eps, parse_attack
from ..config import StopRule, SynthesisConfig
from ..data.datasets import DataSplits, ImageSet, list_datasets, load_dataset
from ..data.ood_sets import (
    conform_images,
    list_synthetic_sets,
    load_image_folder,
    load_npz_images,
    synthetic_set,
)
from ..errors import BadValueError, UnknownNameError
from ..models.init_nets import DCGANInitGenerator
from ..models.introspective import Introspective
from ..runtime.checkpoint import load_classifier
from ..synthesis import PseudoNegativeSampler
from .ood_scores import Score, critic_status

__all__ = [
    "OODModel",
    "OODSpec",
    "SetKind",
    "adversarial_set",
    "check_geometry",
    "load_fixed_set",
    "load_ood_model",
    "parse_ood",
    "parse_scores",
    "synthesize_pseudo_negatives",
]

SYNTH_SEED_OFFSET = 2  # training's init generator is seeded with the run's seed + 2 (objectives/winn.py)


class SetKind(str, Enum):
    """Where an OOD set comes from."""

    DATASET = "dataset"  # a registered dataset's test split
    SYNTHETIC = "synthetic"  # a built-in seeded set (robust_winn.data.ood_sets)
    FOLDER = "folder"  # folder:PATH of image files
    NPZ = "npz"  # npz:PATH of an image array
    ADV = "adv"  # adv:ATTACK:EPS, made on each model


@dataclass(frozen=True)
class OODSpec:
    """One parsed ``--ood`` name."""

    name: str  # as reported (attack label canonical for adv sets)
    kind: SetKind
    target: str  # dataset or synthetic name, path, or attack spec
    eps: float = 0.0  # adv sets: L-inf radius in [0, 1] pixel units (> 0); 0 for the others


def parse_ood(name: str) -> OODSpec:
    """Parse an OOD set name (see the module docstring); unknown names list the choices.

    Raises:
        UnknownNameError: neither a registered dataset, a synthetic set nor a prefixed form.
        BadValueError: an empty path, or an ``adv:`` form without a valid attack and eps.
    """
    prefix, sep, rest = name.partition(":")
    if sep and prefix in (SetKind.FOLDER.value, SetKind.NPZ.value):
        if not rest:
            raise BadValueError(f"--ood {name}: give a path after '{prefix}:'")
        return OODSpec(name, SetKind(prefix), rest)
    if sep and prefix == SetKind.ADV.value:
        attack, _, eps_text = rest.rpartition(":")
        try:
            eps = float(eps_text)
        except ValueError:
            eps = None
        if not attack or eps is None:
            raise BadValueError(
                f"--ood {name}: write adversarial sets as adv:ATTACK:EPS, e.g. adv:fgsm:0.125"
            )
        eps = check_eps(eps)
        if eps == 0:
            raise BadValueError(f"--ood {name}: eps 0 gives the clean test images, not an OOD set")
        label = parse_attack(attack).label
        return OODSpec(f"adv:{label}:{eps:g}", SetKind.ADV, label, eps)
    if name in list_synthetic_sets():
        return OODSpec(name, SetKind.SYNTHETIC, name)
    if name in list_datasets():
        return OODSpec(name, SetKind.DATASET, name)
    raise UnknownNameError(
        f"unknown OOD set {name!r}; choose a dataset ({', '.join(list_datasets())}), a synthetic set "
        f"({', '.join(list_synthetic_sets())}), folder:PATH, npz:PATH or adv:ATTACK:EPS"
    )


def parse_scores(names: Sequence[str | Score]) -> tuple[Score, ...]:
    """Scores by name, in order, each once; an unknown name lists the choices."""
    out: list[Score] = []
    for n in names:
        try:
            s = Score(n)
        except ValueError:
            raise UnknownNameError(
                f"unknown OOD score {n!r}; choose one of: {', '.join(s.value for s in Score)}"
            ) from None
        if s in out:
            raise BadValueError(f"score {s.value} is listed twice")
        out.append(s)
    if not out:
        raise BadValueError("no OOD score given")
    return tuple(out)


@dataclass
class OODModel:
    """A classifier to score: the model and what its checkpoint says about it."""

    model: Introspective  # logits and critic f(x), images in [-1, 1]
    critic_reason: str | None = None  # None: the critic head was trained; else why it was not
    source: str = "model"  # the checkpoint path, for the record
    seed: int = 0  # the training run's seed (its init generator is seeded from it)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)  # its synthesis settings
    tau_batch: int = 100  # training batch size: tau lies between batch means of f on positives
    meta: dict[str, Any] = field(default_factory=dict)  # the checkpoint's model/dataset/method entries


def load_ood_model(
    path: str | Path,
    *,
    device: torch.device | str = "cpu",
    trusted_code: Sequence[str] = (),
    trust_code: bool = False,
) -> OODModel:
    """Load a supervised checkpoint for :func:`evaluate_ood` (its critic judged by its method)."""
    model, state = load_classifier(
        path, map_location=device, trusted_code=trusted_code, trust_code=trust_code
    )
    syn = (state.get("config") or {}).get("synthesis") or {}
    names = {f.name for f in fields(SynthesisConfig)} - {"stop_rule"}
    synthesis = SynthesisConfig(**{k: v for k, v in syn.items() if k in names})
    if "stop_rule" in syn:
        synthesis.stop_rule = StopRule(syn["stop_rule"])
    return OODModel(
        model=model,
        critic_reason=critic_status(state),
        source=str(path),
        seed=int(state.get("seed", 0) or 0),
        synthesis=synthesis,
        tau_batch=int((state.get("config") or {}).get("batch_size", 100)),
        meta={k: state.get(k) for k in ("model", "dataset", "method")},
    )


def load_fixed_set(
    spec: OODSpec,
    reference: Tensor,
    *,
    shape: tuple[int, int, int],
    data_dir: str | Path,
    limit: int | None,
    resize: bool,
    seed: int,
    index: int,
) -> Tensor:
    """A model-independent OOD set as uint8 images of ``shape``."""
    if spec.kind is SetKind.SYNTHETIC:
        return synthetic_set(spec.target, reference, seed=seed * 1000 + index)  # one stream per set
    if spec.kind is SetKind.FOLDER:
        return load_image_folder(spec.target, shape, resize=resize, limit=limit)
    if spec.kind is SetKind.NPZ:
        return load_npz_images(spec.target, shape, resize=resize, limit=limit)
    data = load_dataset(spec.target, data_dir=data_dir, limit_test=limit)
    return conform_images(data.test.images, shape, resize=resize, where=spec.name)


def adversarial_set(
    m: OODModel, test: ImageSet, attack: str, eps: float, *, batch_size: int, device: torch.device, seed: int
) -> tuple[Tensor, Tensor, list[str]]:
    """The model's own adversarial test images in [-1, 1], which of them fool it, harness warnings.

    ``attack`` is a canonical attack label (:attr:`OODSpec.target`), ``eps`` in [0, 1] pixel units.
    """
    outcomes = Outcomes(keep_images=True)
    rec = evaluate(
        {"model": m.model},
        dataset=test,
        attacks=[attack],
        eps=[eps],
        batch_size=batch_size,
        device=device,
        seed=seed,
        outcomes=outcomes,
    )
    images = outcomes.images[("model", attack, eps)] * 2.0 - 1.0  # (N, C, H, W): [0, 1] -> [-1, 1]
    fooled = outcomes.adv[("model", attack, eps, "model")] != test.labels  # (N,)
    return images, fooled, list(rec["warnings"])


def synthesize_pseudo_negatives(
    m: OODModel, f_in: np.ndarray, *, per_class: int, max_steps: int, seed: int, device: torch.device
) -> tuple[Tensor, dict[str, Any]]:
    """``per_class`` fresh pseudo-negatives per class, synthesised as WINN's training does."""
    k = int(m.model.critic_head.in_features)
    shape = tuple(int(v) for v in (m.meta.get("model") or {}).get("image_shape", ()))
    gen = torch.Generator().manual_seed(seed)
    b = m.tau_batch
    means = torch.tensor([float(f_in[i : i + b].mean()) for i in range(0, len(f_in), b)])  # (batches,)
    lo, hi = float(means.min()), float(means.max())
    taus = lo + (hi - lo) * torch.rand(k, generator=gen)  # one tau per class batch (REFERENCE §1.6)
    init = DCGANInitGenerator(shape, generator=torch.Generator().manual_seed(m.seed + SYNTH_SEED_OFFSET))
    targets = torch.arange(k).repeat_interleave(per_class)  # (K * per_class,)
    x0 = init.to(device).sample(targets.numel(), generator=gen)
    s = m.synthesis
    sampler = PseudoNegativeSampler(
        lr=s.lr,
        beta1=s.beta1,
        beta2=s.beta2,
        max_steps=min(max_steps, s.max_steps),
        tol=s.tol,
        ce_weight=s.ce_weight,
        stop_rule=s.stop_rule,
    )
    x, stats = sampler.synthesize(m.model, x0, targets.to(device), targets, taus)
    info = {
        "per_class": per_class,
        "images": int(targets.numel()),
        "max_steps": sampler.max_steps,
        "steps": stats.steps,
        "converged": stats.converged,
        "final_gap": stats.final_gap,
        "tau_range": [lo, hi],
    }
    return x.cpu(), info


def check_geometry(name: str, m: OODModel, data: DataSplits) -> None:
    """Refuse a model whose input shape or class count differs from the in-distribution dataset's.

    A model without that metadata (an :class:`OODModel` built in Python) is taken to fit.
    """
    meta = m.meta.setdefault("model", {})
    meta.setdefault("image_shape", list(data.image_shape))
    meta.setdefault("num_classes", data.num_classes)
    if (tuple(meta["image_shape"]), meta["num_classes"]) != (data.image_shape, data.num_classes):
        raise BadValueError(
            f"{name} ({m.source}) takes images {tuple(meta['image_shape'])} with {meta['num_classes']} "
            f"classes, but {data.name} has {data.image_shape} with {data.num_classes}; give the "
            f"dataset it was trained on (--in)"
        )
