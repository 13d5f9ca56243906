"""Attack registry: a name (plus optional parameters) -> a configured torchattacks attack.

Conventions (DESIGN §2): epsilon is in [0, 1] pixel units; robust_winn models see [-1, 1].
Every attack built here is told so with ``set_normalization_used(mean=0.5, std=0.5)``. In
torchattacks 3.5.1 that setting means "the inputs handed to the attack are *normalised*":
``Attack.__call__`` maps them back to [0, 1] (``x * 0.5 + 0.5``), runs the attack there (so
epsilon, step sizes and the [0, 1] clip are in pixel units), normalises again before each
forward pass (``get_logits``), and returns normalised examples. The harness therefore feeds
model-range images in [-1, 1] and gets [-1, 1] back; feeding [0, 1] images would normalise
twice (checked against the source of ``torchattacks/attack.py``).

An attack is named on the command line as ``name`` or ``name:key=value,key=value``, e.g.
``pgd:steps=40,alpha=0.01,restarts=5``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import NoneType, UnionType
from typing import Any

import torchattacks
from torch import nn
from torchattacks.attack import Attack

from ..errors import BadValueError
from ..registry import Registry, check_kwargs

__all__ = [
    "AttackKind",
    "AttackSpec",
    "Param",
    "attack_params",
    "build_attack",
    "check_eps",
    "list_attacks",
    "parse_attack",
    "register_attack",
]

# Upper bounds that only catch typos (steps=4000000 would run for weeks) and memory blow-ups
# (each PGD restart is one attack object); every published setting is far below them.
MAX_STEPS = 100_000
MAX_RESTARTS = 1_000
MAX_QUERIES = 1_000_000
MAX_TARGETS = 999  # target classes of APGD-T: all wrong classes of ImageNet-1k


class AttackKind(str, Enum):
    """What the attack knows and how it searches; used by the harness's sanity checks."""

    SINGLE_STEP = "single-step"  # one gradient step (FGSM)
    ITERATIVE = "iterative"  # many gradient steps (PGD): must be at least as strong as FGSM
    ENSEMBLE = "ensemble"  # several attacks, per-example best (AutoAttack)
    GRADIENT_FREE = "gradient-free"  # queries only (Square): should not beat gradient attacks


Factory = Callable[..., Attack]
_RESERVED = ("eps", "num_classes", "seed")  # given by build_attack, never by the user


@dataclass(frozen=True)
class Param:
    """How one attack parameter is checked: its type, its range or its choices.

    ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``object`` (no type check). Floats
    must be finite; ints are given as ints (``steps=40``, not ``40.0``); a float parameter also
    takes an int (``alpha=1`` is 1.0). ``low``/``high`` bound the value, excluded when
    ``low_open``/``high_open``. ``optional`` allows None (the factory's own default).
    """

    kind: type = object
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False

    def describe(self) -> str:
        """The accepted values in words, e.g. ``integer in [1, 100000]``."""
        if self.choices is not None:
            return "one of " + "/".join(self.choices)
        word = {int: "integer", float: "number", bool: "true/false", str: "text"}.get(self.kind, "value")
        if self.low is not None and self.high is not None:
            return (
                f"{word} in {'(' if self.low_open else '['}{_num(self.low)}, "
                f"{_num(self.high)}{')' if self.high_open else ']'}"
            )
        if self.low is not None:
            return f"{word} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{word} {'<' if self.high_open else '<='} {_num(self.high)}"
        return word

    def check(self, attack: str, key: str, value: Any) -> Any:
        """Return ``value`` converted to the declared type, or raise :class:`BadValueError`.

        The message names the attack and the parameter: ``pgd: alpha must be > 0, got -0.01``.
        """
        where = f"{attack}: {key}"
        raw = value  # messages show the value as given, not as converted
        if value is None:
            if self.optional:
                return None
            raise BadValueError(f"{where} needs a value ({self.describe()})")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise BadValueError(f"{where} must be true or false, got {_show(value)}")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise BadValueError(f"{where} must be an integer, got {_show(value)}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise BadValueError(f"{where} must be a number, got {_show(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise BadValueError(f"{where} must be a finite number, got {_show(value)}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise BadValueError(f"{where} must be text ({self.describe()}), got {_show(value)}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadValueError(f"{where} must be finite, got {_show(value)}")
        if self.choices is not None and value not in self.choices:
            raise BadValueError(f"{where} must be one of {', '.join(self.choices)}, got {_show(raw)}")
        if self.low is not None:
            if self.low_open and not value > self.low:
                raise BadValueError(f"{where} must be > {_num(self.low)}, got {_show(raw)}")
            if not self.low_open and not value >= self.low:
                raise BadValueError(f"{where} must be >= {_num(self.low)}, got {_show(raw)}")
        if self.high is not None:
            if self.high_open and not value < self.high:
                raise BadValueError(f"{where} must be < {_num(self.high)}, got {_show(raw)}")
            if not self.high_open and not value <= self.high:
                raise BadValueError(f"{where} must be <= {_num(self.high)}, got {_show(raw)}")
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _derived(annotation: Any, default: Any) -> Param:
    """A :class:`Param` from a factory's annotation (or, without one, its default's type)."""
    optional = default is None
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not NoneType]
        optional = optional or len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else object
    if annotation is inspect.Parameter.empty:
        known = default is not None and default is not inspect.Parameter.empty
        annotation = type(default) if known else object
    kind = annotation if annotation in (bool, int, float, str) else object
    return Param(kind, optional=optional)


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    kind: AttackKind
    params: dict[str, Param]


_ATTACKS: Registry[_Entry] = Registry("attack")


def _schema(name: str, fn: Factory, explicit: Mapping[str, Param] | None) -> dict[str, Param]:
    """Every keyword-only parameter of ``fn`` (but eps, num_classes, seed) -> its :class:`Param`."""
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):  # an annotation that cannot be evaluated
        sig = inspect.signature(fn)
    schema: dict[str, Param] = {}
    for key, p in sig.parameters.items():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and key not in _RESERVED:
            annotation = p.annotation if not isinstance(p.annotation, str) else inspect.Parameter.empty
            schema[key] = _derived(annotation, p.default)
    extra = sorted(set(explicit or {}) - set(schema))
    if extra:
        raise ValueError(
            f"attack {name!r}: params {', '.join(extra)} are not keyword-only parameters of its factory"
        )
    schema.update(explicit or {})
    return schema


def register_attack(
    name: str,
    *,
    kind: AttackKind,
    description: str,
    params: Mapping[str, Param] | None = None,
) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(model, *, eps, num_classes, seed, **params) -> Attack``.

    The factory gets the model to attack (it maps [-1, 1] images to logits) and returns an
    unconfigured-normalisation torchattacks attack; :func:`build_attack` adds the rest.

    Every keyword-only parameter of the factory (but ``eps``, ``num_classes``, ``seed``) is a
    user parameter, checked by :func:`parse_attack` before any model is loaded: its type comes
    from the annotation (or the default's type), and ``params`` gives a :class:`Param` with a
    range or choices (e.g. ``{"steps": Param(int, low=1)}``) where the type alone is too loose.
    """

    def deco(fn: Factory) -> Factory:
        _ATTACKS.add(name, _Entry(fn, AttackKind(kind), _schema(name, fn, params)), description)
        return fn

    return deco


def list_attacks() -> dict[str, str]:
    """Registered attack names -> one-line description."""
    return _ATTACKS.describe()


def attack_params(name: str) -> dict[str, Param]:
    """The user parameters of attack ``name`` and how each is checked (for help texts, tests)."""
    return dict(_ATTACKS[name].params)


def check_eps(eps: Any) -> float:
    """Return ``eps`` as float if it is a finite number in [0, 1] (pixel units, DESIGN §2).

    Raises:
        BadValueError: not a number, not finite, or outside [0, 1].
    """
    if isinstance(eps, bool):
        raise BadValueError(f"eps must be a number in [0, 1] pixel units, got {eps}")
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise BadValueError(f"eps must be a number in [0, 1] pixel units, got {_show(eps)}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise BadValueError(
            f"eps must be in [0, 1] pixel units (the paper's MNIST eps is 0.125), got {value}"
        )
    return value + 0.0  # -0.0 -> 0.0


def _parse_value(text: str) -> int | float | bool | str:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


@dataclass(frozen=True)
class AttackSpec:
    """One attack with its parameters, e.g. ``AttackSpec("pgd", {"steps": 40})``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The canonical string form, ``name`` or ``name:k=v,...`` (keys sorted)."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))

    @property
    def kind(self) -> AttackKind:
        """The registered :class:`AttackKind`."""
        return _ATTACKS[self.name].kind


def _split(text: str) -> AttackSpec:
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in _ATTACKS:  # an unknown name fails before its parameters are read
        raise _ATTACKS.unknown(name)
    params: dict[str, Any] = {}
    for item in (p.strip() for p in rest.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BadValueError(f"{name}: attack parameters must look like key=value, got {item!r}")
        if key in params:
            raise BadValueError(f"{name}: parameter {key} is given twice")
        params[key] = _parse_value(value.strip())
    return AttackSpec(name, params)


def parse_attack(spec: str | AttackSpec) -> AttackSpec:
    """Parse and check ``"name"`` or ``"name:key=value,..."`` (or check an :class:`AttackSpec`).

    Every parameter is checked against the attack's schema (type, finite, range, choices; see
    :func:`attack_params`), so a bad value fails here, before any model or data is loaded. The
    returned spec holds the converted values (``alpha=1`` -> 1.0).

    Raises:
        UnknownNameError: unknown attack name (the message lists the choices).
        BadValueError: malformed text, a parameter the attack does not take (the message lists
            the ones it takes) or a value of the wrong type or outside its range.
    """
    out = spec if isinstance(spec, AttackSpec) else _split(str(spec))
    schema = _ATTACKS[out.name].params
    check_kwargs(
        f"attack {out.name!r}",
        out.params,
        {k: p.describe() for k, p in schema.items()},
        noun="parameter",
        show=str,
    )
    return AttackSpec(out.name, {k: schema[k].check(out.name, k, v) for k, v in out.params.items()})


def build_attack(
    spec: str | AttackSpec,
    model: nn.Module,
    *,
    eps: float,
    num_classes: int,
    image_channels: int,
    seed: int = 0,
) -> Attack:
    """Build a torchattacks attack on ``model`` that takes and returns [-1, 1] images.

    Args:
        spec: attack name, ``"name:key=value,..."`` or an :class:`AttackSpec`.
        model: classifier mapping [-1, 1] images to (N, K) logits.
        eps: L-inf radius in [0, 1] pixel units (REFERENCE §2: MNIST 0.125).
        num_classes: K, for targeted sub-attacks of the ensemble.
        image_channels: C, for the normalisation (mean 0.5, std 0.5 per channel).
        seed: seed of the attacks that take one (APGD, FAB, Square).

    Raises:
        UnknownNameError: unknown attack. BadValueError: eps not a finite number in [0, 1], an
        unknown parameter or a parameter value out of range (checked before the model is used).
    """
    spec = parse_attack(spec)
    eps = check_eps(eps)
    atk = _ATTACKS[spec.name].factory(model, eps=eps, num_classes=num_classes, seed=seed, **spec.params)
    atk.set_normalization_used(mean=[0.5] * image_channels, std=[0.5] * image_channels)
    return atk


# --------------------------------------------------------------------------- built-ins


@register_attack(
    "fgsm",
    kind=AttackKind.SINGLE_STEP,
    description="FGSM (Goodfellow et al. 2015): x + eps*sign(grad CE), clipped to [0,1]; "
    "the paper's Table 3-4 attack (REFERENCE §2)",
)
def _fgsm(model: nn.Module, *, eps: float, num_classes: int, seed: int) -> Attack:
    del num_classes, seed
    return torchattacks.FGSM(model, eps=eps)


_STEPS = Param(int, low=1, high=MAX_STEPS)
_RESTARTS = Param(int, low=1, high=MAX_RESTARTS)


@register_attack(
    "pgd",
    kind=AttackKind.ITERATIVE,
    description="L-inf PGD (Madry et al. 2018); steps=40, alpha=2.5*eps/steps, random_start, "
    "restarts=1 (each restart keeps the examples that already fool the model)",
    # alpha is a step in [0, 1] pixel units: <= 0 never moves (0% error reads as robustness),
    # > 1 crosses the whole pixel range in one step.
    params={
        "steps": _STEPS,
        "alpha": Param(float, low=0.0, low_open=True, high=1.0, optional=True),
        "random_start": Param(bool),
        "restarts": _RESTARTS,
    },
)
def _pgd(
    model: nn.Module,
    *,
    eps: float,
    num_classes: int,
    seed: int,
    steps: int = 40,
    alpha: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
) -> Attack:
    del num_classes, seed
    step = 2.5 * eps / steps if alpha is None else float(alpha)
    runs = [
        torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=random_start)
        for _ in range(restarts)
    ]
    return runs[0] if restarts == 1 else torchattacks.MultiAttack(runs)


@register_attack(
    "autoattack",
    kind=AttackKind.ENSEMBLE,
    description="AutoAttack standard (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square "
    "(5000 queries), per-example best; slow on CPU - use --limit",
    params={"version": Param(str, choices=("standard", "plus", "rand"))},  # torchattacks 3.5.1's
)
def _autoattack(
    model: nn.Module, *, eps: float, num_classes: int, seed: int, version: str = "standard"
) -> Attack:
    return torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version=version, n_classes=num_classes, seed=seed
    )


@register_attack(
    "apgd",
    kind=AttackKind.ITERATIVE,
    description="APGD-CE (Croce & Hein 2020), 100 steps: the first AutoAttack member alone",
    params={"steps": _STEPS, "restarts": _RESTARTS},
)
def _apgd(
    model: nn.Module,
    *,
    eps: float,
    num_classes: int,
    seed: int,
    steps: int = 100,
    restarts: int = 1,
) -> Attack:
    del num_classes
    return torchattacks.APGD(
        model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, loss="ce", seed=seed
    )


@register_attack(
    "apgd-dlr",
    kind=AttackKind.ITERATIVE,
    description="APGD-DLR (Croce & Hein 2020), 100 steps: targeted by default (APGD-T, the "
    "AutoAttack member: one run per target class, the `targets` most likely wrong classes, all "
    "K-1 unless given); targeted=false runs untargeted APGD on the DLR loss",
    params={
        "steps": _STEPS,
        "restarts": _RESTARTS,
        "targeted": Param(bool),
        "targets": Param(int, low=1, high=MAX_TARGETS, optional=True),
    },
)
def _apgd_dlr(
    model: nn.Module,
    *,
    eps: float,
    num_classes: int,
    seed: int,
    steps: int = 100,
    restarts: int = 1,
    targeted: bool = True,
    targets: int | None = None,
) -> Attack:
    # The DLR loss divides by the gap between the top logit and the 3rd (untargeted) or the
    # mean of the 3rd and 4th (targeted): fewer classes than that index out of range.
    need = 4 if targeted else 3
    if num_classes < need:
        raise BadValueError(
            f"apgd-dlr: the {'targeted ' if targeted else ''}DLR loss needs at least "
            f"{need} classes, the model has {num_classes}"
        )
    if not targeted:
        if targets is not None:
            raise BadValueError("apgd-dlr: targets applies to the targeted attack only (targeted=true)")
        return torchattacks.APGD(
            model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, loss="dlr", seed=seed
        )
    if targets is not None and targets > num_classes - 1:
        raise BadValueError(
            f"apgd-dlr: targets must be <= {num_classes - 1} (the wrong classes of "
            f"{num_classes}), got {targets}"
        )
    atk = torchattacks.APGDT(
        model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, seed=seed, n_classes=num_classes
    )
    if targets is not None:
        # torchattacks 3.5.1 runs target classes 2..n_target_classes+1 of the sorted logits
        # (APGDT.perturb); AutoAttack standard uses 9, all wrong classes of MNIST/CIFAR-10.
        atk.n_target_classes = targets
    return atk


@register_attack(
    "square",
    kind=AttackKind.GRADIENT_FREE,
    description="Square attack (Andriushchenko et al. 2020), L-inf, gradient-free; "
    "queries=5000 (lower it on CPU)",
    params={"queries": Param(int, low=1, high=MAX_QUERIES), "restarts": _RESTARTS},
)
def _square(
    model: nn.Module,
    *,
    eps: float,
    num_classes: int,
    seed: int,
    queries: int = 5000,
    restarts: int = 1,
) -> Attack:
    del num_classes
    return torchattacks.Square(model, norm="Linf", eps=eps, n_queries=queries, n_restarts=restarts, seed=seed)
