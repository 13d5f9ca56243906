"""Checkpoints (DESIGN §2): one file, atomic write, safe ``weights_only`` load.

A checkpoint holds the model state, the architecture name and kwargs, dataset geometry,
method, full config, metrics, package versions, seed, and (for exact resume) the optimizer,
pseudo-negative pool and RNG states. It is written to a temporary file and renamed, so an
interruption never leaves a half-written file, and it is read with ``weights_only=True``, so
loading one can never execute code.
"""

from __future__ import annotations

import os
import pickle
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.torch_version import TorchVersion

from .errors import CheckpointError

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_classifier", "versions"]

FORMAT = "robust_winn.checkpoint/1"


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on (recorded in checkpoints and records)."""
    import numpy
    import torchvision

    from . import __version__

    out = {
        "robust_winn": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # TorchVersion -> plain str (weights_only-safe)
        "torchvision": str(torchvision.__version__),
        "numpy": numpy.__version__,
    }
    try:
        import torchattacks

        out["torchattacks"] = torchattacks.__version__
    except ImportError:  # optional at training time
        pass
    return out


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _map_location(map_location: str | torch.device) -> str | torch.device:
    """``"auto"`` (the CLI's default device) -> ``"cuda"`` when available, else ``"cpu"``."""
    if map_location == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return map_location


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; clear errors for anything else.

    ``map_location`` is any ``torch.load`` location or ``"auto"``.
    """
    path = Path(path)
    map_location = _map_location(map_location)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # TorchVersion is a plain str subclass; allow it for files written before it was str()'d.
        with torch.serialization.safe_globals([TorchVersion]):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a torch file, or it holds objects that safe "
            f"loading (weights_only=True) refuses because they could run code"
        ) from exc
    except Exception as exc:  # torch raises several types for corrupt files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.__class__.__name__}: {first}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robust_winn checkpoint (format {FORMAT})")
    return state


def load_classifier(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained classifier (with its critic head) from a checkpoint, in eval mode.

    Returns:
        (model, checkpoint dict). ``model(x)`` maps [-1, 1] images to logits.
    """
    from .models import Introspective, build_classifier

    map_location = _map_location(map_location)
    state = load_checkpoint(path, map_location)
    meta = state["model"]
    clf = build_classifier(
        meta["arch"],
        image_shape=tuple(meta["image_shape"]),
        num_classes=meta["num_classes"],
        **meta.get("kwargs", {}),
    )
    model = Introspective(clf, meta["num_classes"])
    model.load_state_dict(state["model_state"])
    model.to(map_location).eval()
    return model, state
