"""Model registry and factory (DESIGN §5.1, timm-style ``create_model``).

Any ``nn.Module`` mapping images in [-1, 1] of shape (N, C, H, W) to (N, K) logits is a
classifier here. Register one with ``@register_model("name")`` or name it on the command line
as ``pkg.module:factory``; either way :func:`build_classifier` checks its output shape.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError

__all__ = [
    "ModelSpecError",
    "register_model",
    "create_model",
    "list_models",
    "build_classifier",
    "check_classifier",
]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a factory ``fn(*, in_channels, num_classes, image_size, **kw)``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        _DESCRIPTIONS[name] = (inspect.getdoc(fn) or "").split("\n")[0]
        return fn

    return deco


def list_models() -> dict[str, str]:
    """Registered model names -> one-line description."""
    _ensure_builtins()
    return dict(sorted(_DESCRIPTIONS.items()))


def _ensure_builtins() -> None:
    from . import critic64, densenet, resnet, vanilla, wgan_resnet  # noqa: F401  (registration)


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelSpecError(f"import string must look like 'pkg.module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSpecError(f"cannot import module {module_name!r} from {spec!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ModelSpecError(f"{module_name!r} has no callable {attr!r}")
    return fn


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, or call a ``pkg.module:factory`` import string.

    Registered factories receive ``in_channels``, ``num_classes`` and ``image_size``; a user
    factory receives only the keyword arguments its signature accepts.
    """
    _ensure_builtins()
    if ":" in name:
        fn = _import_factory(name)
    elif name in _MODELS:
        fn = _MODELS[name]
    else:
        raise ModelSpecError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(_MODELS))}, "
            f"or give an import string 'pkg.module:factory'"
        )
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = kwargs if takes_any else {k: v for k, v in kwargs.items() if k in params}
    model = fn(**accepted)
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_classifier(
    model: nn.Module, image_shape: tuple[int, int, int], num_classes: int
) -> None:
    """Run a 2-image dummy batch and check for (2, num_classes) finite logits."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(2, *image_shape, device=device)
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # a user model may raise anything on a wrong input shape
        raise ModelSpecError(
            f"model failed on a (2, {', '.join(map(str, image_shape))}) input in [-1, 1]: {exc}"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelSpecError(
            f"model must map (N, {', '.join(map(str, image_shape))}) images to (N, {num_classes}) "
            f"logits; got {shape} for N=2"
        )


def build_classifier(
    name: str, *, image_shape: tuple[int, int, int], num_classes: int, **kwargs: Any
) -> nn.Module:
    """create_model with the dataset's geometry, then :func:`check_classifier`."""
    c, h, _ = image_shape
    model = create_model(name, in_channels=c, num_classes=num_classes, image_size=h, **kwargs)
    check_classifier(model, image_shape, num_classes)
    return model
