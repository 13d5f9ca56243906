"""Typed run configuration (DESIGN §5.2): one dataclass per concern, saved into every run.

Defaults are the released supervised code's values (REFERENCE §1.4-1.7); where the paper and
the code disagree the code wins and REFERENCE §5 says so.

Each knob is declared once (issue 12 §2): a field's ``metadata``, built by :func:`knob`, holds
its help text, its valid range or choices and, where it differs from the default mapping, its
command-line form. :func:`check_fields` validates a configuration from these declarations and
:mod:`robust_winn.cli.knobs` generates the ``robust-winn`` options from them.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

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


def knob(
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple[str, ...] | None = None,
    cli: Mapping[str, Any] | bool = True,
    presets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata of one configuration field: everything about the knob, in one place.

    Args:
        help: what the setting does, as ``--help`` shows it (every field has one).
        low, high, low_open: valid range of a number, as for :func:`check_number`; integer-ness
            and ``None`` come from the field's type.
        choices: valid values of a text field.
        cli: ``False``: not a command-line option (Python API only); ``True``: the default
            mapping (``field_name`` -> ``--field-name``; bool -> ``--x/--no-x``; enum and
            choices -> a choice; numbers -> a range type from ``low``/``high``); or a mapping
            of what differs: ``flag`` (the option's name), ``invert`` (a ``--no-x`` flag that
            sets the field False), ``help`` (the flag's own help, for ``invert``), ``path``
            (``"dir"`` or ``"file"``), ``device`` (checked like ``--device``), ``required``,
            ``choices`` and ``low`` (narrower than the field's own).
        presets: the field's value in named budget presets other than the default
            (``UnsupConfig.preset``); the dataclass default is the ``paper`` value.
    """
    meta: dict[str, Any] = {"help": help, "cli": cli}
    bounds = {"low": low, "high": high}
    if low is not None or high is not None:
        meta["range"] = {k: v for k, v in bounds.items() if v is not None} | (
            {"low_open": True} if low_open else {}
        )
    if choices is not None:
        meta["choices"] = tuple(choices)
    if presets:
        meta["presets"] = dict(presets)
    return meta


def field_kind(annotation: Any) -> tuple[Any, bool]:
    """``(type, optional)`` of a resolved field annotation: ``int | None`` -> ``(int, True)``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def check_fields(config: Any, prefix: str = "") -> None:
    """Raise :class:`BadValueError` naming the first field that breaks its :func:`knob`.

    Numbers must be finite, of the field's kind (an ``int`` field takes no float) and in the
    declared range (``None`` only where the type allows it); enum fields must be one of the
    enum's values, text fields with ``choices`` one of those. Nested configurations are checked
    with a dotted prefix (``synthesis.max_steps``).
    """
    hints = get_type_hints(type(config))
    for f in fields(config):
        name, value = prefix + f.name, getattr(config, f.name)
        kind, optional = field_kind(hints[f.name])
        if is_dataclass(kind):
            check_fields(value, name + ".")
        elif isinstance(kind, type) and issubclass(kind, Enum):
            try:
                kind(value)
            except ValueError:
                choices = ", ".join(m.value for m in kind)
                raise BadValueError(f"{name} must be one of {choices}, got {value!r}") from None
        elif kind in (int, float):
            check_number(name, value, integer=kind is int, optional=optional, **f.metadata.get("range", {}))
        elif "choices" in f.metadata and value not in f.metadata["choices"]:
            raise BadValueError(f"{name} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")


class Method(str, Enum):
    """The built-in training objectives (robust_winn.objectives registers one for each)."""

    BASELINE = "baseline"  # cross-entropy alone
    WINN = "winn"  # CE + alpha * (W + lambda * GP), paper §5.6
    PGD_AT = "pgd-at"  # Madry et al. 2018: CE on PGD examples
    TRADES = "trades"  # Zhang et al. 2019: CE + beta * KL(clean || adversarial)
    WINN_AT = "winn-at"  # PGD-AT plus WINN's critic term


class StopRule(str, Enum):
    """When synthesis of a group of pseudo-negatives stops (REFERENCE §1.6 step 6)."""

    BATCH_MEAN = "batch-mean"  # |mean_batch f - tau| <= tol: the released code (faithful)
    PER_SAMPLE = "per-sample"  # each image freezes once |f_i - tau| <= tol (DESIGN §4)


@dataclass
class SynthesisConfig:
    """Pseudo-negative synthesis by Adam in image space (REFERENCE §1.5-1.6)."""

    lr: float = field(
        default=0.02, metadata=knob("Adam learning rate on images.", low=0, low_open=True, cli=False)
    )
    beta1: float = field(
        default=0.9, metadata=knob("Adam beta1 on images (paper).", low=0, high=1, cli=False)
    )
    beta2: float = field(
        default=0.9, metadata=knob("Adam beta2 on images (code; paper silent).", low=0, high=1, cli=False)
    )
    max_steps: int = field(
        default=2000,
        metadata=knob(
            "Cap on Adam steps per synthesis pass (code: 2000).", low=0, cli={"flag": "--synth-max-steps"}
        ),
    )
    tol: float = field(
        default=1e-3,
        metadata=knob("Early stop when the gap to the threshold tau is at most this.", low=0, cli=False),
    )
    ce_weight: float = field(
        default=0.5, metadata=knob("Weight of CE(target class) in the synthesis objective.", low=0, cli=False)
    )
    per_class: int = field(
        default=100,
        metadata=knob(
            "New pseudo-negatives per class after each epoch.", low=1, cli={"flag": "--synth-per-class"}
        ),
    )
    init_per_class: int = field(
        default=100,
        metadata=knob("Raw init-generator images per class in the initial pool.", low=1, cli=False),
    )
    stop_rule: StopRule = field(
        default=StopRule.BATCH_MEAN,
        metadata=knob(
            "batch-mean: stop a class batch when |mean f - tau| <= 1e-3 (released code); per-sample: "
            "freeze each image once |f - tau| <= 1e-3."
        ),
    )
    pool_capacity: int = field(
        default=25_000,
        metadata=knob(  # code: unbounded; 20,100 at 200 epochs
            "Most pseudo-negatives kept per class (FIFO past that).", low=1
        ),
    )
    pool_dtype: str = field(
        default="float32",
        metadata=knob(  # uint8: quantised like the PNG original
            "Pool storage: exact float32 or 4x smaller uint8.", choices=("float32", "uint8")
        ),
    )


class Precision(str, Enum):
    """Arithmetic of the classifier's forward passes (training/fastpaths.py)."""

    FLOAT32 = "float32"  # everything in float32 (the only choice on CPU)
    BF16 = "bf16"  # bf16 autocast for the classifier forward passes, on CUDA only


@dataclass
class FastPathConfig:
    """Optional GPU fast paths (DESIGN §4); none changes what is computed, only how fast.

    What was asked for here and what the device allowed are both written to record.json.
    """

    precision: Precision = field(
        default=Precision.FLOAT32,
        metadata=knob(
            "bf16: classifier forward passes under bf16 autocast (CUDA only; GP, thresholds and losses "
            "stay float32). Falls back to float32 off CUDA."
        ),
    )
    channels_last: bool = field(
        default=False, metadata=knob("Model and image batches in channels_last memory format.")
    )
    compile: bool = field(
        default=False, metadata=knob("torch.compile the classifier forward (not the GP); eager if it fails.")
    )
    pin_memory: bool | None = field(
        default=None,
        metadata=knob(
            "Pinned host memory and non-blocking copies of batches [default: on with CUDA; ignored on CPU]."
        ),
    )


@dataclass
class AdversarialConfig:
    """The training-time attack of ``pgd-at``, ``trades`` and ``winn-at`` (issue 13).

    Defaults are the MNIST standard (Madry et al. 2018; TRADES): L-inf eps 0.3 in [0, 1] pixel
    units, 40 signed-gradient steps of 0.01, a random start; TRADES beta 6.
    """

    eps: float = field(
        default=0.3,
        metadata=knob(
            "pgd-at/trades/winn-at: L-inf radius of the training attack in [0, 1] pixel units.",
            low=0,
            high=1,
            cli={"flag": "--train-eps"},
        ),
    )
    steps: int = field(
        default=40,
        metadata=knob(
            "pgd-at/trades/winn-at: signed-gradient steps of the training attack.",
            low=1,
            cli={"flag": "--train-steps"},
        ),
    )
    step_size: float = field(
        default=0.01,
        metadata=knob(
            "pgd-at/trades/winn-at: step size of the training attack, [0, 1] pixel units.",
            low=0,
            low_open=True,
            cli={"flag": "--train-step-size"},
        ),
    )
    random_start: bool = field(
        default=True,
        metadata=knob(
            "pgd-at/winn-at: start each attack at a uniform point of the eps-ball.",
            cli={"flag": "--train-random-start"},
        ),
    )
    trades_beta: float = field(
        default=6.0,
        metadata=knob(
            "trades: weight of the KL(clean || adversarial) term.", low=0, cli={"flag": "--trades-beta"}
        ),
    )


@dataclass
class TrainConfig:
    """Everything one supervised training run depends on."""

    dataset: str = field(
        default="mnist",
        metadata=knob("Registered dataset (see `robust-winn list`); 'sample' is the bundled MNIST sample."),
    )
    data_dir: str = field(
        default="data",
        metadata=knob("Root holding the torchvision layout, e.g. DIR/MNIST/raw/*.gz.", cli={"path": "dir"}),
    )
    download: bool = field(
        default=False, metadata=knob("Let torchvision download missing files (needs network).")
    )
    val_size: int | None = field(
        default=None,
        metadata=knob("Last N training images used for validation [default: 15000 for MNIST].", low=0),
    )
    limit_train: int | None = field(
        default=None, metadata=knob("Keep only the first N training images (quick runs).", low=1)
    )
    limit_test: int | None = field(
        default=None, metadata=knob("Keep only the first N test images (quick runs).", low=1)
    )
    arch: str = field(
        default="vanilla",
        metadata=knob(
            "Registered model name or a user factory 'pkg.module:factory' returning an nn.Module that "
            "maps [-1,1] images to (N, K) logits."
        ),
    )
    method: Method = field(
        default=Method.WINN,
        metadata=knob(
            "baseline = cross-entropy only; winn = CE + alpha*(W + lambda*GP) (paper); pgd-at = "
            "Madry adversarial training; trades = TRADES; winn-at = PGD-AT plus WINN's critic term on "
            "clean positives (alpha, lambda as for winn)."
        ),
    )
    epochs: int = field(default=10, metadata=knob("Passes over the training split (paper/code: 200).", low=1))
    batch_size: int = field(
        default=100, metadata=knob("Positives per step (and as many pseudo-negatives).", low=1)
    )
    lr: float = field(
        default=1e-3,
        metadata=knob(  # paper §5.6
            "Classifier Adam learning rate (betas 0.0, 0.9).", low=0, low_open=True
        ),
    )
    beta1: float = field(
        default=0.0, metadata=knob("Classifier Adam beta1 (paper).", low=0, high=1, cli=False)
    )
    beta2: float = field(
        default=0.9, metadata=knob("Classifier Adam beta2 (code).", low=0, high=1, cli=False)
    )
    alpha: float = field(default=0.01, metadata=knob("Weight of the WINN term (paper: 0.01).", low=0))
    gp_lambda: float = field(default=10.0, metadata=knob("Gradient-penalty weight lambda.", low=0))
    synthesis: SynthesisConfig = field(
        default_factory=SynthesisConfig, metadata=knob("Pseudo-negative synthesis (REFERENCE §1.5-1.6).")
    )
    seed: int = field(
        default=0,
        metadata=knob("Seeds initialisation, data order, pool draws and synthesis.", low=0, high=MAX_SEED),
    )
    device: str = field(
        default="auto", metadata=knob("auto (cuda if available), cpu, cuda or cuda:N.", cli={"device": True})
    )
    eval_batch_size: int = field(
        default=1000, metadata=knob("Batch size for validation and test error.", low=1, cli=False)
    )
    out: str = field(
        default="runs/run",
        metadata=knob(
            "Output folder: checkpoint-best.pt, checkpoint-last.pt, record.json, epochs.csv.",
            cli={"path": "dir", "required": True},
        ),
    )
    progress: bool = field(
        default=True,
        metadata=knob(
            "tqdm progress bars.",
            cli={"invert": True, "help": "Hide progress bars (hidden anyway when not a TTY)."},
        ),
    )
    fast: FastPathConfig = field(
        default_factory=FastPathConfig, metadata=knob("Optional GPU fast paths (DESIGN §4), off by default.")
    )
    adversarial: AdversarialConfig = field(
        default_factory=AdversarialConfig,
        metadata=knob("Training-time attack of the adversarial methods (pgd-at, trades, winn-at)."),
    )

    def validate(self) -> None:
        """Raise :class:`BadValueError` naming the first setting out of range, NaN or infinite.

        The ranges and choices are the fields' own (:func:`knob`), checked by :func:`check_fields`.
        """
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and weights_only-safe dict (enums as their values)."""
        d = asdict(self)
        d["method"] = Method(self.method).value
        d["synthesis"]["stop_rule"] = StopRule(self.synthesis.stop_rule).value
        d["fast"]["precision"] = Precision(self.fast.precision).value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; older runs without ``fast`` or ``adversarial`` get defaults."""
        d = dict(d)
        syn = dict(d.pop("synthesis", {}))
        syn["stop_rule"] = StopRule(syn.get("stop_rule", StopRule.BATCH_MEAN.value))
        fast = dict(d.pop("fast", {}))
        fast["precision"] = Precision(fast.get("precision", Precision.FLOAT32.value))
        adversarial = AdversarialConfig(**d.pop("adversarial", {}))
        d["method"] = Method(d.get("method", Method.WINN.value))
        return cls(
            synthesis=SynthesisConfig(**syn), fast=FastPathConfig(**fast), adversarial=adversarial, **d
        )
