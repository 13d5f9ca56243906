"""Attack harness: adversarial error and correction rates of one or more classifiers.

Paper §5.6, Tables 3-4; REFERENCE §2. For every attacked ("referee") model A, every attack and
every eps, adversarial examples are made on A over the whole test set and classified by *every*
model. That gives, in one pass:

- A's adversarial error (white-box) and, for each other model B, B's correction rate on A's
  errors (Table 3: referee = baseline -> correction by WINN; referee = WINN -> by baseline);
- B's error on examples made on A (transfer);
- per-example worst case over all attacks run, RobustBench's convention (an image is broken if
  its clean prediction is wrong or any attack broke it; ``error_attacks_only`` leaves out the first).

Differences from the released FGSM script (REFERENCE §2), both deliberate:
- batches instead of one image at a time (DESIGN §4). The CE gradient of a batch mean is the
  per-image gradient divided by the batch size, so sign(grad) is the same up to float underflow;
- the step is taken in [0, 1] units with eps in [0, 1] units (eps 0.125 there is the code's
  0.25 on [-1, 1]); the clip to [0, 1] is the code's clip to [-1, 1].

The per-batch loop is in loop.py: the clean pass (clean predictions, zero-gradient statistics)
is taken from the attacks' own first pass where it is the same computation (issue 16), and the
zero-gradient statistics are those of the batch-mean gradient the attacks use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.datasets import DataSplits, ImageSet, load_dataset
from ..errors import BadValueError
from ..evaluation.calibration import summarise_terms
from ..evaluation.metrics import correction_rates, error_rate, worst_case_error, wrong_mask
from ..runtime.distributed import all_gather_cat, all_gather_objects, current, shard_bounds
from ..runtime.frozen import frozen_eval
from .loop import run_batches, warn
from .registry import AttackSpec, check_eps, parse_attack
from .sanity import run_sanity_checks, zero_gradient_warnings

log = logging.getLogger(__name__)

__all__ = ["evaluate"]

DataLike = str | DataSplits | ImageSet | tuple[Tensor, Tensor]


class _Data:
    """Test images as float [-1, 1] batches, whatever form they were handed in."""

    def __init__(self, data: DataLike, *, data_dir: str | Path, limit: int | None) -> None:
        self.num_classes: int | None = None
        self.name = "tensors"
        if isinstance(data, str):
            data = load_dataset(data, data_dir=data_dir, limit_test=limit)
            limit = None
        if isinstance(data, DataSplits):
            self.name, self.num_classes, data = data.name, data.num_classes, data.test
        if isinstance(data, ImageSet):
            self.name = self.name if self.name != "tensors" else "imageset"
            data = data.subset(slice(0, limit)) if limit is not None else data
            self._set: ImageSet | None = data
            self.n = len(data)
        else:
            images, labels = data
            if not images.is_floating_point() or images.dim() != 4:
                raise BadValueError("images must be a float (N, C, H, W) tensor in [-1, 1]")
            lo, hi = float(images.min()), float(images.max())
            if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
                raise BadValueError(
                    f"images must lie in [-1, 1] (robust_winn models see x/255*2-1); got [{lo:.3g}, {hi:.3g}]"
                )
            self.input_range_note = lo >= 0.0
            self._set = None
            self._x, self._y = images[:limit], labels[:limit].long()
            self.n = int(self._x.shape[0])
        if self.n == 0:
            raise BadValueError("the test set is empty")

    def restrict(self, start: int, stop: int) -> None:
        """Keep rows [start, stop) only (one rank's share of a distributed evaluation)."""
        if self._set is not None:
            self._set = self._set.subset(slice(start, stop))
        else:
            self._x, self._y = self._x[start:stop], self._y[start:stop]
        self.n = stop - start

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        if self._set is not None:
            yield from self._set.batches(batch_size)
            return
        for s in range(0, self.n, batch_size):
            yield self._x[s : s + batch_size], self._y[s : s + batch_size]


def _resolve_device(device: str | torch.device | None, model: nn.Module) -> torch.device:
    if device is None:
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadValueError(f"device {device!r} was asked for but no CUDA device is available")
    return dev


@dataclass
class Outcomes:
    """Per-example outcomes of :func:`evaluate`, filled in when passed as ``outcomes=``.

    ``labels`` (N,), ``clean[model]`` (N,) clean predictions, ``adv[(source, attack, eps,
    scorer)]`` (N,) predictions on the source's adversarial examples, all in test-set order;
    with ``keep_images`` also ``images[(source, attack, eps)]``: the adversarial examples
    (N, C, H, W) in [0, 1] pixel units, float32 (exact), on the CPU.
    """

    keep_images: bool = False
    labels: Tensor | None = None
    clean: dict[str, Tensor] = field(default_factory=dict)
    adv: dict[tuple[str, str, float, str], Tensor] = field(default_factory=dict)
    images: dict[tuple[str, str, float], Tensor] = field(default_factory=dict)
    clean_images: Tensor | None = None  # with keep_images: the first 8 test images, [0, 1] units


def evaluate(
    models: nn.Module | Mapping[str, nn.Module],
    *,
    dataset: DataLike = "mnist",
    attacks: Sequence[str | AttackSpec] = ("fgsm",),
    eps: Sequence[float] = (0.125,),
    data_dir: str | Path = "data",
    limit: int | None = None,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    seed: int = 0,
    tolerance: float = 0.01,
    outcomes: Outcomes | None = None,
    gradient_sample: int | None = 1000,
) -> dict[str, Any]:
    """Attack every model with every attack and eps; score each adversarial set by every model.

    Paper §5.6, Tables 3-4; REFERENCE §2 (FGSM, adversarial error, correction rates).

    Under an initialised torch.distributed process group each rank attacks a contiguous share
    of the test set and the per-example outcomes are all-gathered in the original order, so
    every rank returns the record of a single-process run (exactly so for deterministic
    attacks; random starts are drawn per rank).

    Args:
        models: one classifier, or ``{name: classifier}``; each maps [-1, 1] images to (N, K)
            logits. Models are moved to ``device``, put in eval mode with frozen parameters
            for the run, and their mode and ``requires_grad`` flags are restored afterwards.
        dataset: registered dataset name (its test split is used), a ``DataSplits``, an
            ``ImageSet``, or ``(images, labels)`` with float images in [-1, 1].
        attacks: names or ``"name:key=value,..."`` strings (see ``list_attacks``).
        eps: L-inf radii in [0, 1] pixel units; eps = 0 is the clean set (no attack runs).
        data_dir: dataset root when ``dataset`` is a name.
        limit: keep only the first N test images.
        batch_size: images per attack batch. 500 is the fastest measured on 2 CPU cores for
            the vanilla MNIST model (whole FGSM job: 4,682 images/s; 250 2%, 100 7%, 1000 10%,
            2000 33% slower; issue 16, ``benchmarks/peers.py --batch-sweep``); memory grows with
            it, not with the test set (one batch at a time is on the device).
        device: ``None`` (the first model's device), ``"auto"``, ``"cpu"``, ``"cuda[:N]"``.
        seed: seeds random starts and the attacks' own generators; the global RNG is restored.
        tolerance: absolute error slack of the sanity checks (plus one example).
        outcomes: filled with the per-example predictions (and adversarial images if its
            ``keep_images``) behind the record's numbers, for ``attack --save-examples``.
        gradient_sample: the zero-input-gradient statistics come free, for every image, from
            FGSM's (or PGD-without-random-start's) own first pass; without such an attack they
            need an extra forward + backward, run on the first ``gradient_sample`` test images
            only (whole batches; each rank's first ones in a distributed run), or on every
            image with ``None``. ``models[name]["zero_gradient_images"]`` says how many.

    Returns:
        A JSON-ready record: ``models`` (clean error, gradient statistics and the number of
        images they are over, clean ``calibration``), ``results`` (one row per source, attack,
        eps, scorer: white-box or transfer error, and the scorer's ``calibration`` on those
        examples: ECE over 15 bins, NLL, Brier, accuracy, mean confidence and the reliability
        bins; issue 14, evaluation/calibration.py), ``correction`` (one row per referee, other
        model, attack, eps: N, N_A, N_AB, adversarial error, correction rate), ``worst_case``,
        ``curves`` (error vs eps, eps 0 = clean), ``warnings`` and ``cost`` (seconds of the
        harness's own clean pass, of each attack, the clean pass it shares included, and of
        scoring; images forwarded through each model, attacks' own passes included; images whose clean logits
        came from an attack's pass; adversarial images made; ``gpu_s`` on CUDA; summed over
        ranks in a distributed run).

    Raises:
        KeyError: unknown attack or dataset. ValueError: eps outside [0, 1], bad data.
        ModelSpecError: a model's output is not (N, K) finite logits for the dataset's K.
    """
    t0 = time.perf_counter()
    named = {"model": models} if isinstance(models, nn.Module) else dict(models)
    if not named:
        raise BadValueError("no model to evaluate")
    specs = [parse_attack(a) for a in attacks]
    if not specs:
        raise BadValueError("no attack given")
    if len({s.label for s in specs}) != len(specs):
        raise BadValueError("the same attack is listed twice")
    eps_list = sorted({check_eps(e) for e in eps})
    if batch_size < 1:
        raise BadValueError("batch_size must be >= 1")
    if gradient_sample is not None and (
        isinstance(gradient_sample, bool) or not isinstance(gradient_sample, int) or gradient_sample < 1
    ):
        raise BadValueError(
            f"gradient_sample must be an integer >= 1 (or None: every image), got {gradient_sample}"
        )
    data = _Data(dataset, data_dir=data_dir, limit=limit)
    ctx = current()
    if ctx.enabled:
        if data.n < ctx.world_size:
            raise BadValueError(f"{data.n} test images cannot be shared by {ctx.world_size} processes")
        data.restrict(*shard_bounds(data.n, ctx))
    dev = _resolve_device(device, next(iter(named.values())))
    warnings: list[str] = []
    if getattr(data, "input_range_note", False):
        warn(warnings, ["images are all >= 0: robust_winn models expect [-1, 1], not [0, 1]"])

    for n, m in named.items():
        if m.training:
            warn(warnings, [f"{n}: model was in train mode; evaluated in eval mode (restored afterwards)"])
        m.to(dev)
    cuda = [dev] if dev.type == "cuda" else []
    keep = outcomes is not None and outcomes.keep_images
    # Attacks need gradients w.r.t. the images only: frozen parameters spare backward the
    # weight gradients (~25% of an FGSM step on CPU).
    with frozen_eval(*named.values()), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        raw = run_batches(
            named,
            data.batches(batch_size),
            specs=specs,
            eps_list=eps_list,
            num_classes=data.num_classes,
            dev=dev,
            seed=seed,
            warnings=warnings,
            keep_images=keep,
            gradient_sample=gradient_sample,
        )
    if ctx.enabled:
        raw = _gather(raw, warnings)
    record = _summarise(named, specs, eps_list, raw, warnings, tolerance)
    if outcomes is not None:
        outcomes.labels, outcomes.clean, outcomes.adv = raw["labels"], raw["clean"], raw["adv"]
        outcomes.images = raw["images"]
        outcomes.clean_images = raw["clean_images"][:8] if keep else None
    wall = time.perf_counter() - t0
    gpu_s = wall * ctx.world_size if dev.type == "cuda" else None
    record.update(
        dataset=data.name,
        n=raw["labels"].numel(),
        batch_size=batch_size,
        device=str(dev),
        seed=seed,
        eps=eps_list,
        wall_time_s=wall,
        cost={**raw["cost"], "gpu_s": gpu_s},
    )
    return record


def _gather(raw: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Join every rank's per-example outcomes (rank order = test-set order) and counts."""
    counts = all_gather_objects((raw["zero_img"], raw["zero_px"], list(warnings), raw["cost"], raw["zero_n"]))
    for _, _, ws, _, _ in counts:
        warnings.extend(w for w in ws if w not in warnings)  # type: ignore[attr-defined]
    return {
        "labels": all_gather_cat(raw["labels"]),
        "clean": {k: all_gather_cat(v) for k, v in raw["clean"].items()},
        "adv": {k: all_gather_cat(v) for k, v in raw["adv"].items()},
        "clean_cal": {k: all_gather_cat(v) for k, v in raw["clean_cal"].items()},
        "adv_cal": {k: all_gather_cat(v) for k, v in raw["adv_cal"].items()},
        "images": {k: all_gather_cat(v) for k, v in raw["images"].items()},
        "clean_images": all_gather_cat(raw["clean_images"]),
        "zero_img": {k: sum(c[0][k] for c in counts) for k in raw["zero_img"]},  # type: ignore[index]
        "zero_px": {k: sum(c[1][k] for c in counts) for k in raw["zero_px"]},  # type: ignore[index]
        "zero_n": {k: sum(c[4][k] for c in counts) for k in raw["zero_n"]},  # type: ignore[index]
        "pixels_per_image": raw["pixels_per_image"],
        "cost": _sum_costs([c[3] for c in counts]),
    }


def _sum_costs(costs: list[Any]) -> dict[str, Any]:
    """Every rank's cost summed: counts in images, times in process-seconds."""
    total: dict[str, Any] = {}
    for cost in costs:
        for k, v in cost.items():
            if isinstance(v, dict):
                sub = total.setdefault(k, {})
                for name, n in v.items():
                    sub[name] = sub.get(name, 0) + n
            else:
                total[k] = total.get(k, 0) + v
    return total


CALIBRATION_BINS = 15  # Guo et al. 2017


def _calibration(terms: Tensor) -> dict[str, Any]:
    """ECE, NLL, Brier, accuracy, mean confidence and the reliability bins of one example set."""
    metrics, rel = summarise_terms(terms, bins=CALIBRATION_BINS)
    return {
        **metrics,
        "reliability": {"bins": CALIBRATION_BINS, **{k: rel[k] for k in ("confidence", "accuracy", "count")}},
    }


def _summarise(
    named: dict[str, nn.Module],
    specs: list[AttackSpec],
    eps_list: list[float],
    raw: dict[str, Any],
    warnings: list[str],
    tolerance: float,
) -> dict[str, Any]:
    """Turn prediction tensors into the record's tables and run the sanity checks."""
    y = raw["labels"]
    n = int(y.numel())
    models: dict[str, Any] = {}
    for name in named:
        measured = raw["zero_n"][name]
        img = raw["zero_img"][name] / measured
        px = raw["zero_px"][name] / (measured * raw["pixels_per_image"])
        models[name] = {
            "clean_error": error_rate(raw["clean"][name], y),
            "zero_gradient_image_fraction": img,
            "zero_gradient_pixel_fraction": px,
            "zero_gradient_images": measured,  # the first images of the set (of each rank's share)
            "calibration": _calibration(raw["clean_cal"][name]),
        }
        warn(warnings, zero_gradient_warnings(name, image_fraction=img, entry_fraction=px))

    results, correction, worst = [], [], []
    for (src, label, e, scorer), pred in raw["adv"].items():
        spec = next(s for s in specs if s.label == label)
        results.append(
            {
                "source": src,
                "scorer": scorer,
                "attack": label,
                "kind": spec.kind.value,
                "eps": e,
                "type": "white-box" if src == scorer else "transfer",
                "n": n,
                "errors": int(wrong_mask(pred, y).sum()),
                "error": error_rate(pred, y),
                "calibration": _calibration(raw["adv_cal"][(src, label, e, scorer)]),
            }
        )
        if src != scorer:
            cr = correction_rates(raw["adv"][(src, label, e, src)], pred, y)
            correction.append(
                {
                    "referee": src,
                    "other": scorer,
                    "attack": label,
                    "eps": e,
                    "referee_clean_error": models[src]["clean_error"],
                    **cr.to_dict(),
                }
            )
    for src in named:
        for scorer in named:
            for e in eps_list:
                broken = torch.stack(
                    [wrong_mask(raw["adv"][(src, s.label, e, scorer)], y) for s in specs]
                )  # (n_attacks, N)
                clean_wrong = wrong_mask(raw["clean"][scorer], y)  # (N,)
                worst.append(
                    {
                        "source": src,
                        "scorer": scorer,
                        "eps": e,
                        "attacks": [s.label for s in specs],
                        "error": worst_case_error(broken, clean_wrong),  # RobustBench: clean or any attack
                        "error_attacks_only": worst_case_error(broken),  # older convention, labelled
                    }
                )
    curves = [
        {
            "source": src,
            "scorer": scorer,
            "attack": s.label,
            "eps": [0.0] + [e for e in eps_list if e > 0],
            "error": [models[scorer]["clean_error"]]
            + [error_rate(raw["adv"][(src, s.label, e, scorer)], y) for e in eps_list if e > 0],
        }
        for src in named
        for scorer in named
        for s in specs
    ]
    warn(warnings, run_sanity_checks(results, tolerance=tolerance + 1.0 / n))
    return {
        "models": models,
        "attacks": [
            {"label": s.label, "name": s.name, "params": s.params, "kind": s.kind.value} for s in specs
        ],
        "results": results,
        "correction": correction,
        "worst_case": worst,
        "curves": curves,
        "warnings": warnings,
    }
