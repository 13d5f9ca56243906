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
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torchattacks
from torch import nn
from torchattacks.attack import Attack

__all__ = [
    "AttackKind",
    "AttackSpec",
    "build_attack",
    "check_eps",
    "list_attacks",
    "parse_attack",
    "register_attack",
]


class AttackKind(str, Enum):
    """What the attack knows and how it searches; used by the harness's sanity checks."""

    SINGLE_STEP = "single-step"  # one gradient step (FGSM)
    ITERATIVE = "iterative"  # many gradient steps (PGD): must be at least as strong as FGSM
    ENSEMBLE = "ensemble"  # several attacks, per-example best (AutoAttack)
    GRADIENT_FREE = "gradient-free"  # queries only (Square): should not beat gradient attacks


Factory = Callable[..., Attack]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    kind: AttackKind
    description: str


_ATTACKS: dict[str, _Entry] = {}


def register_attack(
    name: str, *, kind: AttackKind, description: str
) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(model, *, eps, num_classes, seed, **params) -> Attack``.

    The factory gets the model to attack (it maps [-1, 1] images to logits) and returns an
    unconfigured-normalisation torchattacks attack; :func:`build_attack` adds the rest.
    """

    def deco(fn: Factory) -> Factory:
        if name in _ATTACKS:
            raise ValueError(f"attack {name!r} is already registered")
        _ATTACKS[name] = _Entry(fn, AttackKind(kind), description)
        return fn

    return deco


def list_attacks() -> dict[str, str]:
    """Registered attack names -> one-line description."""
    return {k: v.description for k, v in sorted(_ATTACKS.items())}


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown attack {name!r}; choose one of: {', '.join(sorted(_ATTACKS))}")


def check_eps(eps: float) -> float:
    """Return ``eps`` as float if it lies in [0, 1] (pixel units, DESIGN §2), else ValueError."""
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(
            f"eps must be in [0, 1] pixel units (the paper's MNIST eps is 0.125), got {eps}"
        )
    return eps


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
        if self.name not in _ATTACKS:
            raise _unknown(self.name)
        return _ATTACKS[self.name].kind


def parse_attack(spec: str | AttackSpec) -> AttackSpec:
    """Parse ``"name"`` or ``"name:key=value,..."``; checks the name and the parameter keys.

    Raises:
        KeyError: unknown attack name (the message lists the choices).
        ValueError: malformed text or a parameter the attack does not take.
    """
    if isinstance(spec, AttackSpec):
        out = spec
    else:
        name, _, rest = spec.strip().partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"attack parameters must look like key=value, got {item!r}")
            params[key.strip()] = _parse_value(value.strip())
        out = AttackSpec(name.strip(), params)
    if out.name not in _ATTACKS:
        raise _unknown(out.name)
    allowed = [
        p for p, v in inspect.signature(_ATTACKS[out.name].factory).parameters.items()
        if v.kind is inspect.Parameter.KEYWORD_ONLY and p not in ("eps", "num_classes", "seed")
    ]
    bad = sorted(set(out.params) - set(allowed))
    if bad:
        raise ValueError(
            f"attack {out.name!r} takes no parameter {', '.join(bad)}; "
            f"it takes: {', '.join(allowed) or 'none'}"
        )
    return out


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
        KeyError: unknown attack; ValueError: eps outside [0, 1] or an unknown parameter.
    """
    spec = parse_attack(spec)
    eps = check_eps(eps)
    atk = _ATTACKS[spec.name].factory(
        model, eps=eps, num_classes=num_classes, seed=seed, **spec.params
    )
    atk.set_normalization_used(mean=[0.5] * image_channels, std=[0.5] * image_channels)
    return atk


# --------------------------------------------------------------------------- built-ins


@register_attack(
    "fgsm", kind=AttackKind.SINGLE_STEP,
    description="FGSM (Goodfellow et al. 2015): x + eps*sign(grad CE), clipped to [0,1]; "
    "the paper's Table 3-4 attack (REFERENCE §2)",
)
def _fgsm(model: nn.Module, *, eps: float, num_classes: int, seed: int) -> Attack:
    del num_classes, seed
    return torchattacks.FGSM(model, eps=eps)


@register_attack(
    "pgd", kind=AttackKind.ITERATIVE,
    description="L-inf PGD (Madry et al. 2018); steps=40, alpha=2.5*eps/steps, random_start, "
    "restarts=1 (each restart keeps the examples that already fool the model)",
)
def _pgd(
    model: nn.Module, *, eps: float, num_classes: int, seed: int, steps: int = 40,
    alpha: float | None = None, random_start: bool = True, restarts: int = 1,
) -> Attack:
    del num_classes, seed
    if steps < 1 or restarts < 1:
        raise ValueError("pgd: steps and restarts must be >= 1")
    step = 2.5 * eps / steps if alpha is None else float(alpha)
    runs = [
        torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=random_start)
        for _ in range(restarts)
    ]
    return runs[0] if restarts == 1 else torchattacks.MultiAttack(runs)


@register_attack(
    "autoattack", kind=AttackKind.ENSEMBLE,
    description="AutoAttack standard (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square "
    "(5000 queries), per-example best; slow on CPU - use --limit",
)
def _autoattack(
    model: nn.Module, *, eps: float, num_classes: int, seed: int, version: str = "standard"
) -> Attack:
    return torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version=version, n_classes=num_classes, seed=seed
    )


@register_attack(
    "apgd", kind=AttackKind.ITERATIVE,
    description="APGD-CE (Croce & Hein 2020), 100 steps: the first AutoAttack member alone",
)
def _apgd(
    model: nn.Module, *, eps: float, num_classes: int, seed: int, steps: int = 100,
    restarts: int = 1,
) -> Attack:
    del num_classes
    return torchattacks.APGD(
        model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, loss="ce", seed=seed
    )


@register_attack(
    "square", kind=AttackKind.GRADIENT_FREE,
    description="Square attack (Andriushchenko et al. 2020), L-inf, gradient-free; "
    "queries=5000 (lower it on CPU)",
)
def _square(
    model: nn.Module, *, eps: float, num_classes: int, seed: int, queries: int = 5000,
    restarts: int = 1,
) -> Attack:
    del num_classes
    return torchattacks.Square(
        model, norm="Linf", eps=eps, n_queries=queries, n_restarts=restarts, seed=seed
    )
