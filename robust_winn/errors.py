"""The error contract (DESIGN §5.4): a user's mistake is an explicit type, anything else a bug.

Every exception that means "the input was wrong" (an option value, a path, a data file, a
checkpoint, a user's own model factory) derives from :class:`UserError`. The command line prints
such an error as one line ``Error: <message>`` and exits with code 2. Any other exception is a
bug in robust_winn: it keeps its traceback and exits with code 1, so a bug is never disguised
as a user error (a plain ``KeyError`` or ``ValueError`` from our own code is such a bug).

The concrete types also derive from the builtin a Python caller would expect (``ValueError``
for bad values, ``KeyError`` for unknown names, ``RuntimeError`` for unusable files), so
``except ValueError`` keeps working for API users.
"""

from __future__ import annotations

__all__ = [
    "UserError",
    "BadValueError",
    "UnknownNameError",
    "DataUnavailableError",
    "CheckpointError",
    "ModelSpecError",
    "RunDirError",
    "ResumeError",
    "one_line",
]


class UserError(Exception):
    """Bad input: the CLI prints ``Error: <message>`` on one line and exits with code 2."""

    exit_code = 2

    def __str__(self) -> str:
        # KeyError's own __str__ quotes its argument; a user error reads as its message.
        return str(self.args[0]) if self.args else self.__class__.__name__


class BadValueError(UserError, ValueError):
    """An option or argument value that is out of range, not finite, or of the wrong kind."""


class UnknownNameError(UserError, KeyError):
    """A name that is not registered (dataset, model, attack); the message lists the choices."""


class DataUnavailableError(UserError, RuntimeError):
    """A dataset's files are missing, unreadable or corrupt, and may not be downloaded."""


class CheckpointError(UserError, RuntimeError):
    """A file that is not a readable, intact, trusted robust_winn checkpoint."""


class ModelSpecError(UserError, ValueError):
    """An architecture name, factory or keyword set that cannot give a valid model."""


class RunDirError(UserError, RuntimeError):
    """An output folder that may not be written: results in it, another process, no access."""


class ResumeError(UserError, RuntimeError):
    """``--resume`` was asked for but the run cannot be continued as asked."""


def one_line(exc: BaseException) -> str:
    """The exception's message squeezed onto one line (for the CLI's ``Error:`` line)."""
    return " ".join(str(exc).split()) or exc.__class__.__name__
