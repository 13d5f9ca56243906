"""Writing a set of result files whole or not at all (DESIGN §4: nothing lost on interruption).

Tables, records and pictures of one command change together: each file is rendered in memory
first (text, or bytes such as a PNG from :func:`figure_png`), then :func:`write_files_atomically`
puts them in place.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["figure_png", "write_files_atomically"]


def figure_png(fig: Any, *, dpi: int) -> bytes:
    """A matplotlib figure rendered to PNG bytes; the figure is closed either way."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_files_atomically(files: Mapping[Path, str | bytes]) -> None:
    """Write text (``str``) or binary (``bytes``, e.g. a rendered PNG) files so that an
    interruption never leaves half a file or half a table.

    Every file is first written in full to a temporary file in its folder (``NAME.<random>.tmp``,
    flushed and fsynced), and only then are all of them renamed over their targets with
    ``os.replace``: a reader sees each file either old or new, and the whole set changes within
    a few renames. Temporary files are removed on any failure. A replaced file keeps its mode;
    a new one gets 0644.
    """
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            tmps.append((Path(tmp), path))
            binary = isinstance(text, bytes)
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        for tmp, path in tmps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
