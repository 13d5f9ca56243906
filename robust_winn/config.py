"""Typed run configuration (DESIGN §5.2): one dataclass per concern, saved into every run.

Defaults are the released supervised code's values (REFERENCE §1.4-1.7); where the paper and
the code disagree the code wins and REFERENCE §5 says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .errors import BadValueError

MAX_SEED = 2**32 - 1  # seeds feed torch generators (and seed + 2, seed * 1_000_003 + ...)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """Raise :class:`BadValueError` unless ``value`` is a finite number in the given range.

    Args:
        name: the setting's name as the user knows it (``lr``, ``synthesis.max_steps``).
        low, high: inclusive bounds (``low_open``: ``value > low``); None = unbounded.
        integer: must be an ``int`` (``bool`` is not).
        optional: ``None`` is allowed.
    """
    if value is None and optional:
        return
    wrong_type = not isinstance(value, int if integer else (int, float))
    if isinstance(value, bool) or wrong_type:
        kind = "an integer" if integer else "a number"
        raise BadValueError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise BadValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise BadValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise BadValueError(f"{name} must be <= {high:g}, got {value!r}")


class Method(str, Enum):
    """Training objective: cross-entropy alone, or WINN (CE + alpha * (W + lambda * GP))."""

    BASELINE = "baseline"
    WINN = "winn"


class StopRule(str, Enum):
    """When synthesis of a group of pseudo-negatives stops (REFERENCE §1.6 step 6)."""

    BATCH_MEAN = "batch-mean"  # |mean_batch f - tau| <= tol: the released code (faithful)
    PER_SAMPLE = "per-sample"  # each image freezes once |f_i - tau| <= tol (DESIGN §4)


@dataclass
class SynthesisConfig:
    """Pseudo-negative synthesis by Adam in image space (REFERENCE §1.5-1.6)."""

    lr: float = 0.02  # Adam learning rate on images
    beta1: float = 0.9  # Adam beta1 (paper)
    beta2: float = 0.9  # Adam beta2 (code; paper silent)
    max_steps: int = 2000  # hard cap on ascent steps per synthesis pass
    tol: float = 1e-3  # early stop when the gap to tau is at most this
    ce_weight: float = 0.5  # weight of CE(target class) in the synthesis objective
    per_class: int = 100  # new pseudo-negatives per class after every epoch
    init_per_class: int = 100  # raw init-generator images per class in the initial pool
    stop_rule: StopRule = StopRule.BATCH_MEAN  # see StopRule
    pool_capacity: int = 25_000  # per-class bound of the pool (code: unbounded; 20,100 at 200 ep)
    pool_dtype: str = "float32"  # "float32" (exact) or "uint8" (quantised like the PNG original)


class Precision(str, Enum):
    """Arithmetic of the classifier's forward passes (training/fastpaths.py)."""

    FLOAT32 = "float32"  # everything in float32 (the only choice on CPU)
    BF16 = "bf16"  # bf16 autocast for the classifier forward passes, on CUDA only


@dataclass
class FastPathConfig:
    """Optional GPU fast paths (DESIGN §4); none changes what is computed, only how fast.

    What was asked for here and what the device allowed are both written to record.json.
    """

    precision: Precision = Precision.FLOAT32  # bf16 falls back to float32 off CUDA
    channels_last: bool = False  # model and image batches in torch.channels_last
    compile: bool = False  # torch.compile the classifier (eager if it fails)
    pin_memory: bool | None = None  # pinned, non-blocking host->GPU copies; None: on for CUDA


@dataclass
class TrainConfig:
    """Everything one supervised training run depends on."""

    dataset: str = "mnist"  # registered dataset name (robust_winn.data.datasets.list_datasets)
    data_dir: str = "data"  # torchvision-layout root
    download: bool = False  # let torchvision download (needs network)
    val_size: int | None = None  # None: the dataset's default (MNIST 15,000)
    limit_train: int | None = None  # keep the first N training images (quick runs)
    limit_test: int | None = None  # keep the first N test images
    arch: str = "vanilla"  # registered model name or "pkg.module:factory"
    method: Method = Method.WINN  # baseline or winn
    epochs: int = 10  # passes over the training split
    batch_size: int = 100  # positives per step (and as many pseudo-negatives)
    lr: float = 1e-3  # classifier Adam lr (paper §5.6)
    beta1: float = 0.0  # classifier Adam beta1 (paper)
    beta2: float = 0.9  # classifier Adam beta2 (code)
    alpha: float = 0.01  # weight of the WINN term (paper §5.6)
    gp_lambda: float = 10.0  # gradient-penalty weight (code)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    seed: int = 0  # seeds model init, data order, pool draws, synthesis
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_batch_size: int = 1000  # batch size for validation/test error
    out: str = "runs/run"  # output folder (checkpoints, record.json, epochs.csv)
    progress: bool = True  # tqdm progress bars
    fast: FastPathConfig = field(default_factory=FastPathConfig)  # GPU fast paths (off by default)

    def validate(self) -> None:
        """Raise :class:`BadValueError` naming the first setting out of range, NaN or infinite."""
        s = self.synthesis
        for name, value, kw in (
            ("epochs", self.epochs, {"low": 1, "integer": True}),
            ("batch_size", self.batch_size, {"low": 1, "integer": True}),
            ("eval_batch_size", self.eval_batch_size, {"low": 1, "integer": True}),
            ("seed", self.seed, {"low": 0, "high": MAX_SEED, "integer": True}),
            ("lr", self.lr, {"low": 0, "low_open": True}),
            ("beta1", self.beta1, {"low": 0, "high": 1}),
            ("beta2", self.beta2, {"low": 0, "high": 1}),
            ("alpha", self.alpha, {"low": 0}),
            ("gp_lambda", self.gp_lambda, {"low": 0}),
            ("val_size", self.val_size, {"low": 0, "integer": True, "optional": True}),
            ("limit_train", self.limit_train, {"low": 1, "integer": True, "optional": True}),
            ("limit_test", self.limit_test, {"low": 1, "integer": True, "optional": True}),
            ("synthesis.lr", s.lr, {"low": 0, "low_open": True}),
            ("synthesis.beta1", s.beta1, {"low": 0, "high": 1}),
            ("synthesis.beta2", s.beta2, {"low": 0, "high": 1}),
            ("synthesis.max_steps", s.max_steps, {"low": 0, "integer": True}),
            ("synthesis.tol", s.tol, {"low": 0}),
            ("synthesis.ce_weight", s.ce_weight, {"low": 0}),
            ("synthesis.per_class", s.per_class, {"low": 1, "integer": True}),
            ("synthesis.init_per_class", s.init_per_class, {"low": 1, "integer": True}),
            ("synthesis.pool_capacity", s.pool_capacity, {"low": 1, "integer": True}),
        ):
            check_number(name, value, **kw)
        if s.pool_dtype not in ("float32", "uint8"):
            raise BadValueError(f"synthesis.pool_dtype must be float32 or uint8, got {s.pool_dtype!r}")
        for enum, value, name in ((Method, self.method, "method"), (StopRule, s.stop_rule, "stop_rule")):
            try:
                enum(value)
            except ValueError:
                choices = ", ".join(m.value for m in enum)
                raise BadValueError(f"{name} must be one of {choices}, got {value!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON- and weights_only-safe dict (enums as their values)."""
        d = asdict(self)
        d["method"] = Method(self.method).value
        d["synthesis"]["stop_rule"] = StopRule(self.synthesis.stop_rule).value
        d["fast"]["precision"] = Precision(self.fast.precision).value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; a dict without ``fast`` (older runs) gets the defaults."""
        d = dict(d)
        syn = dict(d.pop("synthesis", {}))
        syn["stop_rule"] = StopRule(syn.get("stop_rule", StopRule.BATCH_MEAN.value))
        fast = dict(d.pop("fast", {}))
        fast["precision"] = Precision(fast.get("precision", Precision.FLOAT32.value))
        d["method"] = Method(d.get("method", Method.WINN.value))
        return cls(synthesis=SynthesisConfig(**syn), fast=FastPathConfig(**fast), **d)
