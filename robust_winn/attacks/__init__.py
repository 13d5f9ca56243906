"""Adversarial evaluation: the attack registry and the harness (paper §5.6, Tables 3-4)."""

from .harness import evaluate
from .registry import (
    AttackKind,
    AttackSpec,
    build_attack,
    list_attacks,
    parse_attack,
    register_attack,
)

__all__ = [
    "AttackKind",
    "AttackSpec",
    "build_attack",
    "evaluate",
    "list_attacks",
    "parse_attack",
    "register_attack",
]
