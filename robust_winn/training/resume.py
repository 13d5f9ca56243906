"""What a resumed run may change, and the check that refuses the rest (DESIGN §2).

A resumed run continues with the optimizer, RNG and pool states of its checkpoint, so a
setting that shaped those states (seed, learning rates, data limits, synthesis settings,
method, architecture) cannot be changed on resume: the record would claim a value the run did
not use. Only settings that say how long, where and how fast to run may change.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from ..errors import ResumeError

__all__ = ["RUN_FILES", "changed_settings", "check_resume_settings"]

# Files whose presence in an output folder means it holds a training run.
RUN_FILES = ("checkpoint-last.pt", "checkpoint-best.pt", "record.json", "epochs.csv", "iterations.csv")


def _flat(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flat(v, key + ".")
        else:
            yield key, v


def changed_settings(had: dict[str, Any], want: dict[str, Any], free: Collection[str]) -> list[str]:
    """``"key: run has A, asked B"`` for each setting that differs and is not in ``free``.

    Keys are dotted paths (``synthesis.max_steps``); a ``free`` entry frees a key and every
    key below it (``fast`` frees ``fast.precision``).
    """
    a, b = dict(_flat(had)), dict(_flat(want))
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or key.startswith(f + ".") for f in free):
            continue
        if a.get(key) != b.get(key):
            out.append(f"{key} (run: {a.get(key)!r}, asked: {b.get(key)!r})")
    return out


def check_resume_settings(
    had: dict[str, Any], want: dict[str, Any], free: Collection[str], where: str
) -> None:
    """Raise :class:`ResumeError` naming every setting that a resume of ``where`` cannot honour."""
    changed = changed_settings(had, want, free)
    if changed:
        raise ResumeError(
            f"--resume: {where} was started with other settings that a resumed run cannot change: "
            f"{'; '.join(changed)}. Repeat the run's own options, or start a new run in another "
            f"--out (or replace it with --overwrite)"
        )
