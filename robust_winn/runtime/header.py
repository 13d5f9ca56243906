"""The run header: what every record and table says about how it was made (DESIGN §2 "Results").

Records (one JSON per run), table metadata and benchmark outputs all start from the same
facts: the command that made them, the date, the device, the number of torch intra-op threads
(CPU results are bit-identical only at the same thread count) and the package versions
(:func:`~robust_winn.runtime.checkpoint.versions`). :func:`run_header` assembles them once.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .checkpoint import versions

__all__ = ["run_header"]


def run_header(command: str | None, device: torch.device | str | None = None) -> dict[str, Any]:
    """The header of a run's record: ``command``, ``date``, ``device``, ``torch_threads``, ``versions``.

    Args:
        command: the command line as typed (``None`` for a Python API call).
        device: where the run computed (``None`` when it has no single device).

    Returns:
        A JSON-ready dict: the command, today's date (``YYYY-MM-DD``, local time), the device as
        text (or ``None``), ``torch.get_num_threads()`` and the package versions.
    """
    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "device": None if device is None else str(device),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
    }
