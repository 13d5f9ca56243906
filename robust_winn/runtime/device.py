"""Device names -> ``torch.device``, checked once for every command (DESIGN §2)."""

from __future__ import annotations

import torch

from ..errors import BadValueError

__all__ = ["resolve_device", "synchronize"]


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise torch.device(name), checked.

    Raises:
        BadValueError: not a device name, or a CUDA device this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise BadValueError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise BadValueError(f"--device {name!r}: robust_winn runs on cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadValueError(f"--device {name!r} was asked for but no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BadValueError(f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    return dev


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work on ``device`` so that phase timers measure it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
