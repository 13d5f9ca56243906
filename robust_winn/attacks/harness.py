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
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.datasets import DataSplits, ImageSet, load_dataset
from ..errors import BadValueError
from ..evaluation.metrics import correction_rates, error_rate, worst_case_error, wrong_mask
from ..models import ModelSpecError
from ..runtime.distributed import all_gather_cat, all_gather_objects, current, shard_bounds
from ..runtime.frozen import frozen_eval
from .registry import AttackSpec, build_attack, check_eps, parse_attack
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


def _check_outputs(name: str, out: Tensor, batch: int, num_classes: int | None) -> list[str]:
    """Shape, finiteness and 'probabilities instead of logits' checks on one forward pass."""
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ModelSpecError(f"{name}: model must return (N, K) logits; got {shape} for N={batch}")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ModelSpecError(
            f"{name}: model gives {out.shape[1]} outputs but the dataset has {num_classes} classes"
        )
    if not torch.isfinite(out).all():
        raise ModelSpecError(f"{name}: model returns non-finite logits on clean test images")
    rows_sum_to_one = torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-3)
    if rows_sum_to_one and out.min() >= 0 and out.max() <= 1:
        return [
            f"{name}: outputs are in [0, 1] and sum to 1 per row: the model looks like it ends "
            f"in softmax. Return logits instead: the attacks' cross-entropy applies its own "
            f"softmax, and a double softmax flattens the gradients"
        ]
    return []


def _warn(messages: list[str], new: list[str]) -> None:
    for m in new:
        log.warning(m)
    messages.extend(new)


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
        batch_size: images per attack batch.
        device: ``None`` (the first model's device), ``"auto"``, ``"cpu"``, ``"cuda[:N]"``.
        seed: seeds random starts and the attacks' own generators; the global RNG is restored.
        tolerance: absolute error slack of the sanity checks (plus one example).
        outcomes: filled with the per-example predictions (and adversarial images if its
            ``keep_images``) behind the record's numbers, for ``attack --save-examples``.

    Returns:
        A JSON-ready record: ``models`` (clean error, gradient statistics), ``results`` (one row
        per source, attack, eps, scorer: white-box or transfer error), ``correction`` (one row per
        referee, other model, attack, eps: N, N_A, N_AB, adversarial error, correction rate),
        ``worst_case``, ``curves`` (error vs eps, eps 0 = clean), ``warnings`` and ``cost``
        (seconds of the clean pass, of each attack and of scoring; images forwarded through
        each model, attacks' own passes included; adversarial images made; ``gpu_s`` on CUDA;
        summed over ranks in a distributed run).

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
    data = _Data(dataset, data_dir=data_dir, limit=limit)
    ctx = current()
    if ctx.enabled:
        if data.n < ctx.world_size:
            raise BadValueError(f"{data.n} test images cannot be shared by {ctx.world_size} processes")
        data.restrict(*shard_bounds(data.n, ctx))
    dev = _resolve_device(device, next(iter(named.values())))
    warnings: list[str] = []
    if getattr(data, "input_range_note", False):
        _warn(warnings, ["images are all >= 0: robust_winn models expect [-1, 1], not [0, 1]"])

    for n, m in named.items():
        if m.training:
            _warn(warnings, [f"{n}: model was in train mode; evaluated in eval mode (restored afterwards)"])
        m.to(dev)
    cuda = [dev] if dev.type == "cuda" else []
    counter = _ForwardCounter(named)
    # Attacks need gradients w.r.t. the images only: frozen parameters spare backward the
    # weight gradients (~25% of an FGSM step on CPU).
    try:
        with frozen_eval(*named.values()), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            keep = outcomes is not None and outcomes.keep_images
            raw = _run(named, data, specs, eps_list, batch_size, dev, seed, warnings, keep)
        raw["cost"]["forward_images"] = dict(counter.images)
        if ctx.enabled:
            raw = _gather(raw, warnings)
    finally:
        counter.close()
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


class _ForwardCounter:
    """Counts the images each model forwards: the harness's own passes and the attacks'."""

    def __init__(self, named: dict[str, nn.Module]) -> None:
        self.images: dict[str, int] = dict.fromkeys(named, 0)
        self._hooks = [m.register_forward_pre_hook(self._hook(n)) for n, m in named.items()]

    def _hook(self, name: str) -> Any:
        def count(_module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], Tensor):
                self.images[name] += int(args[0].shape[0])

        return count

    def close(self) -> None:
        for h in self._hooks:
            h.remove()


def _run(
    named: dict[str, nn.Module],
    data: _Data,
    specs: list[AttackSpec],
    eps_list: list[float],
    batch_size: int,
    dev: torch.device,
    seed: int,
    warnings: list[str],
    keep_images: bool = False,
) -> dict[str, Any]:
    """The batched loop: clean pass (with input gradients), then every attack on every model."""
    images: dict[tuple[str, str, float], list[Tensor]] = defaultdict(list)
    first_clean = torch.empty(0)
    clean: dict[str, list[Tensor]] = defaultdict(list)
    adv: dict[tuple[str, str, float, str], list[Tensor]] = defaultdict(list)
    zero_img: dict[str, int] = defaultdict(int)
    zero_px: dict[str, int] = defaultdict(int)
    labels: list[Tensor] = []
    built: dict[tuple[str, str, float], Any] = {}
    outside = 0.0
    pixels = 0
    num_classes = data.num_classes
    times: dict[str, float] = defaultdict(float)  # seconds: clean pass, each attack, scoring
    attacked = 0  # adversarial images made (all sources, attacks, eps > 0)
    for x, y in data.batches(batch_size):
        t = time.perf_counter()
        x, y = x.to(dev), y.to(dev)  # (B, C, H, W) in [-1, 1], (B,)
        pixels = x[0].numel()
        labels.append(y.cpu())
        if keep_images and len(labels) == 1:
            first_clean = ((x[:8] + 1.0) / 2.0).cpu()
        for name, m in named.items():
            xg = x.clone().requires_grad_(True)
            logits = m(xg)  # (B, K)
            if len(labels) == 1:
                _warn(warnings, _check_outputs(name, logits.detach(), x.shape[0], num_classes))
            num_classes = num_classes or int(logits.shape[1])
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
            zero = grad.flatten(1) == 0  # (B, C*H*W)
            zero_img[name] += int(zero.all(1).sum())
            zero_px[name] += int(zero.sum())
            clean[name].append(logits.detach().argmax(1).cpu())
        times["clean_time_s"] += time.perf_counter() - t
        for src, m in named.items():
            for spec in specs:
                for e in eps_list:
                    key = (src, spec.label, e)
                    t = time.perf_counter()
                    if e == 0:
                        x_adv = x
                    else:
                        attacked += x.shape[0]
                        if key not in built:
                            built[key] = build_attack(
                                spec,
                                m,
                                eps=e,
                                num_classes=num_classes,
                                image_channels=x.shape[1],
                                seed=seed,
                            )
                            built[key].set_device(dev)
                        x_adv = built[key](x, y).detach()  # (B, C, H, W) in [-1, 1]
                        # distance in [0, 1] units beyond the ball, or beyond [0, 1]
                        dist = ((x_adv - x).abs() / 2).amax().item() - e
                        rng = max(x_adv.max().item() - 1.0, -1.0 - x_adv.min().item()) / 2
                        outside = max(outside, dist, rng)
                    if keep_images and e > 0:
                        images[key].append(((x_adv + 1.0) / 2.0).float().cpu())  # [0, 1] units
                    t1 = time.perf_counter()
                    times[f"attack_time_s:{spec.label}"] += t1 - t
                    with torch.no_grad():
                        for scorer, ms in named.items():
                            adv[(src, spec.label, e, scorer)].append(ms(x_adv).argmax(1).cpu())
                    times["score_time_s"] += time.perf_counter() - t1
    if outside > 1e-5:
        _warn(
            warnings,
            [f"some adversarial examples leave the eps-ball or [0, 1] by {outside:.2e} (attack bug)"],
        )
    return {
        "labels": torch.cat(labels),
        "clean": {k: torch.cat(v) for k, v in clean.items()},
        "adv": {k: torch.cat(v) for k, v in adv.items()},
        "images": {k: torch.cat(v) for k, v in images.items()},
        "clean_images": first_clean,
        "zero_img": dict(zero_img),
        "zero_px": dict(zero_px),
        "pixels_per_image": pixels,
        "cost": {**times, "adversarial_images": attacked},
    }


def _gather(raw: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Join every rank's per-example outcomes (rank order = test-set order) and counts."""
    counts = all_gather_objects((raw["zero_img"], raw["zero_px"], list(warnings), raw["cost"]))
    for _, _, ws, _ in counts:
        warnings.extend(w for w in ws if w not in warnings)  # type: ignore[attr-defined]
    return {
        "labels": all_gather_cat(raw["labels"]),
        "clean": {k: all_gather_cat(v) for k, v in raw["clean"].items()},
        "adv": {k: all_gather_cat(v) for k, v in raw["adv"].items()},
        "images": {k: all_gather_cat(v) for k, v in raw["images"].items()},
        "clean_images": all_gather_cat(raw["clean_images"]),
        "zero_img": {k: sum(c[0][k] for c in counts) for k in raw["zero_img"]},  # type: ignore[index]
        "zero_px": {k: sum(c[1][k] for c in counts) for k in raw["zero_px"]},  # type: ignore[index]
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
        img = raw["zero_img"][name] / n
        px = raw["zero_px"][name] / (n * raw["pixels_per_image"])
        models[name] = {
            "clean_error": error_rate(raw["clean"][name], y),
            "zero_gradient_image_fraction": img,
            "zero_gradient_pixel_fraction": px,
        }
        _warn(warnings, zero_gradient_warnings(name, image_fraction=img, entry_fraction=px))

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
    _warn(warnings, run_sanity_checks(results, tolerance=tolerance + 1.0 / n))
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
