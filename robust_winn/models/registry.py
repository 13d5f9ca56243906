"""Model registry and factory (DESIGN §5.1, timm-style ``create_model``).

Any ``nn.Module`` mapping images in [-1, 1] of shape (N, C, H, W) to (N, K) logits is a
classifier here. Register one with ``@register_model("name")`` or name it on the command line
as ``pkg.module:factory``; either way :func:`build_classifier` checks its output shape.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError, UnknownNameError
from ..registry import Registry, check_kwargs

__all__ = [
    "ModelSpecError",
    "UnknownModelError",
    "register_model",
    "create_model",
    "list_models",
    "build_classifier",
    "check_classifier",
]


class UnknownModelError(UnknownNameError, ModelSpecError):
    """An architecture name that is not registered: an unknown name and a bad model spec at once."""


_MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model", error=UnknownModelError, hint=", or give an import string 'pkg.module:factory'"
)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a factory ``fn(*, in_channels, num_classes, image_size, **kw)``.

    The docstring's first line is the description ``robust-winn list`` shows; a name registered
    twice is a ``ValueError``.
    """
    return _MODELS.register(name)


def list_models() -> dict[str, str]:
    """Registered model names -> one-line description."""
    return _MODELS.describe()


GEOMETRY = ("in_channels", "num_classes", "image_size")  # offered to every factory, taken if declared


def _user_frame(exc: BaseException) -> str:
    """``file:line`` of the innermost traceback frame outside robust_winn (the user's code)."""
    import traceback

    here = str(Path(__file__).resolve().parents[1])
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelSpecError(f"import string must look like 'pkg.module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ModelSpecError(f"cannot import {spec!r}: no module named {exc.name!r}") from exc
        raise ModelSpecError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc} ({_user_frame(exc)})"
        ) from exc
    except Exception as exc:  # the user's module: any error on import is theirs to fix
        raise ModelSpecError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc} ({_user_frame(exc)})"
        ) from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ModelSpecError(f"{module_name!r} has no callable {attr!r}")
    return fn


def _accepted_kwargs(name: str, fn: Callable[..., nn.Module], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Geometry keywords the factory declares, plus every other keyword (unknown ones refused)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: offer nothing optional
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if not takes_any:
        valid = dict.fromkeys(sorted(named | set(GEOMETRY)), "")
        check_kwargs(repr(name), kwargs, valid, error=ModelSpecError)
    missing = sorted(
        k
        for k, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and k not in kwargs
    )
    if missing:
        raise ModelSpecError(
            f"{name!r} needs argument(s) {', '.join(missing)} that robust_winn cannot give; a factory "
            f"receives only {', '.join(GEOMETRY)} (declare defaults for anything else)"
        )
    return {k: v for k, v in kwargs.items() if takes_any or k in named}


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, or call a ``pkg.module:factory`` import string (timm-style).

    Every factory is offered ``in_channels``, ``num_classes`` and ``image_size`` and receives
    those it declares; any other keyword must be a parameter of the factory, else
    :class:`ModelSpecError` names the valid ones (a typo is never silently ignored). An error
    raised by a user's factory is reported with its message and ``file:line``.

    Raises:
        UnknownModelError: an unregistered name (both a ``ModelSpecError`` and a ``KeyError``;
            the message lists the choices).
        ModelSpecError: an unknown keyword, a factory that fails or returns no module.
    """
    user = ":" in name
    fn = _import_factory(name) if user else _MODELS[name]
    accepted = _accepted_kwargs(name, fn, kwargs)
    try:
        model = fn(**accepted)
    except Exception as exc:
        if not user and not isinstance(exc, (TypeError, ValueError)):
            raise  # a bug in a built-in model keeps its traceback
        where = f" ({_user_frame(exc)})" if user else ""
        raise ModelSpecError(f"{name!r} failed: {type(exc).__name__}: {exc}{where}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_classifier(model: nn.Module, image_shape: tuple[int, int, int], num_classes: int) -> None:
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
