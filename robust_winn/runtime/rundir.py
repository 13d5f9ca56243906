"""Output folders that never lose a run (DESIGN §2): checked, claimed, locked.

Every command that writes results goes through :func:`claim` before it does any work:

1. the folder is created if needed and proven writable (a probe file), so an unwritable
   ``--out`` fails in the first second, not after an hour of training or attacking;
2. an exclusive lock (``fcntl.flock`` on ``OUT/.robust_winn.lock``) refuses a second
   robust_winn process on the same folder; the kernel releases it when the holder dies, so a
   crash never leaves the folder locked;
3. results already there are refused unless the caller resumes them or the user passed
   ``--overwrite``; with overwrite they are removed first, so no file of the old run can be
   mistaken for the new one's;
4. temporary files that an interrupted atomic write left behind (``*.tmp``) are removed: the
   lock proves no other process is writing them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import BadValueError, ResumeError, RunDirError

__all__ = ["LOCK_NAME", "check_writable", "claim", "existing_results", "stale_temp_files"]

LOCK_NAME = ".robust_winn.lock"


def check_writable(out: str | Path, option: str = "--out") -> Path:
    """Create ``out`` (with parents) and prove a file can be written there; return it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{option} {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunDirError(f"{option} {out} cannot be written: {exc.strerror or exc}") from exc
    return out


def check_writable_file(path: str | Path, option: str = "--out") -> Path:
    """Check that the file ``path`` can be created (its folder exists or can be, and is writable)."""
    path = Path(path)
    if path.is_dir():
        raise RunDirError(f"{option} {path} is a folder; give a file name")
    check_writable(path.parent if str(path.parent) else Path("."), option)
    return path


def existing_results(out: Path, names: Sequence[str]) -> list[str]:
    """Which of ``names`` exist in ``out``."""
    return [n for n in names if (out / n).exists()]


def stale_temp_files(out: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (``NAME.<random>.tmp``) in ``out``."""
    return sorted(p for p in out.glob("*.tmp") if p.is_file())


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    path = out / LOCK_NAME
    while True:
        fh = open(path, "a+")  # noqa: SIM115 (held for the whole block)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunDirError(
                f"{out} is in use by another robust-winn process (pid {holder}); wait for it to "
                f"finish or choose another --out"
            ) from None
        # The previous holder may have removed the file between our open and our lock.
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fh.close()  # releases the flock


@contextlib.contextmanager
def claim(
    out: str | Path,
    *,
    results: Sequence[str],
    resume: bool = False,
    overwrite: bool = False,
    option: str = "--out",
    resumable: bool = True,
) -> Iterator[Path]:
    """Hold ``out`` for one run: writable, locked, and never silently replacing results.

    Args:
        out: the output folder (created if missing).
        results: file names whose presence means the folder holds results.
        resume: the caller continues the results there (they must exist; checked by the caller).
        overwrite: the user asked to replace the results; they are deleted first.
        option: the command-line option that named ``out``, for messages.
        resumable: the command has a ``--resume`` (the refusal suggests it only then).

    Raises:
        BadValueError: both resume and overwrite. ResumeError: resume of a missing folder.
        RunDirError: not writable, locked by another process, or holds results.
    """
    if resume and overwrite:
        raise BadValueError("--resume continues a run and --overwrite replaces it: give one of them")
    if resume and not Path(out).is_dir():  # nothing to continue: create no folder
        raise ResumeError(f"--resume: {out} does not exist, so there is no run to continue")
    path = check_writable(out, option)
    with _lock(path):
        for tmp in stale_temp_files(path):
            tmp.unlink(missing_ok=True)
        found = existing_results(path, results)
        if found and not resume:
            if not overwrite:
                cont = "--resume to continue that run, " if resumable else ""
                raise RunDirError(
                    f"{option} {path} already holds results ({', '.join(found)}); pass {cont}"
                    f"--overwrite to replace it, or choose another {option}"
                )
            for name in found:
                (path / name).unlink()
        yield path
