"""Attack results kept on disk, keyed by everything they depend on (issue 13).

Attacking is the expensive half of the defence table and of the effect map (a PGD-40 on all
10,000 MNIST test images costs minutes per model on 2 CPU cores), and both grids grow one seed,
method or variant at a time, often over several sessions. A result is therefore kept in its own
JSON file whose name carries a digest of its key; a later command with an equal key reads it
instead of attacking again, and any change that could change a number (another checkpoint,
eps, attack list, subset, seed, device, torch version or thread count: CPU results are
bit-identical only at the same thread count) gives another key and another file. A file that
does not parse, or holds another key, is recomputed and replaced. Writes are atomic, so an
interrupted command leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..runtime.atomic import write_files_atomically
from ..runtime.device import resolve_device

__all__ = ["checkpoint_sha256", "runtime_key", "cached"]

log = logging.getLogger(__name__)


def checkpoint_sha256(path: str | Path) -> str:
    """SHA-256 of a checkpoint file's bytes: the model part of a cache key."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def runtime_key(device: str) -> dict[str, Any]:
    """The part of a key that the machine decides: device type, torch version, thread count."""
    return {
        "device": resolve_device(device).type,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def cached(
    folder: str | Path,
    name: str,
    key: Mapping[str, Any],
    compute: Callable[[], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """``compute()``'s JSON-ready dict, or the one an earlier call with an equal ``key`` saved.

    The file is ``folder/<name>-<first 16 hex digits of the key's SHA-256>.json`` and holds
    ``{"key": key, **value}``; ``name`` only helps a reader find it.

    Returns:
        The value and True if it was read from disk, False if it was computed (and saved).
    """
    text = json.dumps(key, sort_keys=True)
    plain = json.loads(text)  # tuples become lists, as in the saved file
    path = Path(folder) / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    try:
        saved = json.loads(path.read_text())
        if saved["key"] == plain:
            log.info("reusing the attack results in %s", path)
            return {k: v for k, v in saved.items() if k != "key"}, True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    if "key" in value:
        raise ValueError("a cached value may not hold the name 'key'")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_files_atomically({path: json.dumps({"key": plain, **value}, indent=1)})
    return value, False
