"""Checkpoints (DESIGN §2): one file, atomic write, safe ``weights_only`` load.

A checkpoint holds the model state, the architecture name and kwargs, dataset geometry,
method, full config, metrics, package versions, seed, and (for exact resume) the optimizer,
pseudo-negative pool and RNG states. It is written to a temporary file and renamed, so an
interruption never leaves a half-written file, and it is read with ``weights_only=True``, so
unpickling can never execute code.

Two more guarantees:

- **Integrity.** ``sha256`` is a digest of the whole content (every tensor's dtype, shape and
  bytes, every other value, keys in sorted order); a file whose content no longer matches (a
  flipped byte, a hand edit) is refused with one line.
- **A checkpoint never chooses code.** Its ``model.arch`` may name a registered architecture;
  an import string ``pkg.module:factory`` is refused unless the user named that same string
  (``--arch``) or passed ``--trust-checkpoint-code``, because importing it runs the module and
  calling it runs the factory. Its ``kwargs`` must be parameters the factory declares.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import platform
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.torch_version import TorchVersion

from ..errors import CheckpointError

__all__ = [
    "CheckpointError",
    "content_digest",
    "model_meta",
    "require_keys",
    "save_checkpoint",
    "load_checkpoint",
    "load_classifier",
    "versions",
]

log = logging.getLogger(__name__)

FORMAT = "robust_winn.runtime.checkpoint/1"


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on (recorded in checkpoints and records)."""
    import numpy
    import torchvision

    from .. import __version__

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


def content_digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's content, ``sha256`` itself excluded (keys sorted, tensors as bytes)."""
    h = hashlib.sha256()

    def walk(obj: Any, key: str) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"{key}|tensor|{t.dtype}|{tuple(t.shape)}\n".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(obj, dict):
            keys = sorted((k for k in obj if key or k != "sha256"), key=repr)
            h.update(f"{key}|dict|{len(keys)}\n".encode())
            for k in keys:
                walk(obj[k], f"{key}/{k!r}")
        elif isinstance(obj, (list, tuple)):
            h.update(f"{key}|seq|{len(obj)}\n".encode())
            for i, v in enumerate(obj):
                walk(v, f"{key}/{i}")
        else:
            h.update(f"{key}|{type(obj).__name__}|{obj!r}\n".encode())

    walk(state, "")
    return h.hexdigest()


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **state}
    payload.pop("sha256", None)
    payload["sha256"] = content_digest(payload)
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
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
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
    stored = state.get("sha256")
    if stored is None:
        log.warning(
            "%s was written before checkpoints carried a content hash: its integrity cannot be checked", path
        )
    elif stored != content_digest(state):
        raise CheckpointError(
            f"{path} is corrupt: its content does not match the SHA-256 stored in it (a damaged "
            f"or edited file); use another copy or retrain"
        )
    return state


def require_keys(state: dict[str, Any], path: str | Path, keys: Collection[str]) -> None:
    """Raise :class:`CheckpointError` naming the entries of ``keys`` that ``state`` lacks."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not a checkpoint of this kind of run")


def model_meta(
    state: dict[str, Any],
    path: str | Path,
    *,
    trusted_code: Collection[str] = (),
    trust_code: bool = False,
    keys: Collection[str] = ("image_shape", "num_classes"),
) -> dict[str, Any]:
    """The checkpoint's ``model`` entry, checked: well-formed, and naming no untrusted code.

    Args:
        state: a loaded checkpoint.
        path: its file, for messages.
        trusted_code: import strings the user named on the command line (``--arch``).
        trust_code: the user passed ``--trust-checkpoint-code``.
        keys: the entries besides ``arch`` that must be present.

    Raises:
        CheckpointError: a missing or malformed entry, or an import string not trusted.
    """
    meta = state.get("model")
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), str):
        raise CheckpointError(f"{path} holds no model metadata (model.arch)")
    missing = [k for k in keys if k not in meta]
    if missing:
        raise CheckpointError(f"{path} lacks model metadata: {', '.join('model.' + k for k in missing)}")
    shape = meta.get("image_shape")
    if "image_shape" in keys and not (
        isinstance(shape, (list, tuple))
        and len(shape) == 3
        and all(isinstance(v, int) and 0 < v <= 4096 for v in shape)
    ):
        raise CheckpointError(f"{path}: model.image_shape must be 3 positive integers, got {shape!r}")
    k = meta.get("num_classes")
    if "num_classes" in keys and not (isinstance(k, int) and 0 < k <= 100_000):
        raise CheckpointError(f"{path}: model.num_classes must be a positive integer, got {k!r}")
    kwargs = meta.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise CheckpointError(f"{path}: model.kwargs must map names to values")
    arch = meta["arch"]
    if ":" in arch and not trust_code and arch not in trusted_code:
        raise CheckpointError(
            f"{path} names code as its architecture ({arch!r}); a checkpoint may only name "
            f"registered models. If you trust this file and that module, pass --arch {arch} "
            f"or --trust-checkpoint-code"
        )
    return meta


def load_state(module: nn.Module, weights: dict[str, Any], path: str | Path, what: str = "model") -> None:
    """``module.load_state_dict(weights)``, a mismatch reported as a :class:`CheckpointError`."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the {what} weights do not fit its architecture: {first}") from exc


def load_classifier(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    trusted_code: Collection[str] = (),
    trust_code: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained classifier (with its critic head) from a checkpoint, in eval mode.

    Args:
        path: a supervised robust_winn checkpoint.
        map_location: any ``torch.load`` location or ``"auto"``.
        trusted_code, trust_code: see :func:`model_meta` (a checkpoint never chooses code).

    Returns:
        (model, checkpoint dict). ``model(x)`` maps [-1, 1] images to logits.
    """
    from ..models import Introspective, build_classifier

    map_location = _map_location(map_location)
    state = load_checkpoint(path, map_location)
    meta = model_meta(state, path, trusted_code=trusted_code, trust_code=trust_code)
    if not isinstance(state.get("model_state"), dict):
        raise CheckpointError(f"{path} holds no classifier weights (model_state)")
    clf = build_classifier(
        meta["arch"],
        image_shape=tuple(meta["image_shape"]),
        num_classes=meta["num_classes"],
        **meta.get("kwargs", {}),
    )
    model = Introspective(clf, meta["num_classes"])
    load_state(model, state["model_state"], path)
    model.to(map_location).eval()
    return model, state
