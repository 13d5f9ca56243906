"""Classifier architectures, the registry, and the introspective (critic-head) wrapper."""

from . import critic64, densenet, resnet, vanilla, wgan_resnet  # noqa: F401  (register built-ins)
from .introspective import Introspective
from .registry import (
    ModelSpecError,
    build_classifier,
    check_classifier,
    create_model,
    list_models,
    register_model,
)

__all__ = [
    "Introspective",
    "ModelSpecError",
    "build_classifier",
    "check_classifier",
    "create_model",
    "list_models",
    "register_model",
]
