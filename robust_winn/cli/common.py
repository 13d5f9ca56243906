"""Pieces every ``robust-winn`` command shares (DESIGN §1, §5.4): option types, logging, header.

The commands themselves stay thin; the error contract lives in :class:`RobustWinnGroup`:
a :class:`robust_winn.errors.UserError` or a click usage error is printed as one line
``Error: ...`` with exit code 2, anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import logging
import math
import shlex
import sys
from typing import Any

import click

from ..config import MAX_SEED
from ..errors import UserError, one_line

__all__ = [
    "RobustWinnCommand",
    "RobustWinnGroup",
    "FiniteFloat",
    "SEED",
    "device_option_check",
    "command_line",
    "setup_logging",
    "overwrite_option",
    "trust_option",
]


class _ErrorContract:
    """``main`` of a command or group: one ``Error:`` line and exit 2 for bad input.

    A :class:`UserError` or click usage error becomes one line with exit code 2 (exit 1 for a
    plain ``ClickException`` such as a diverging loss); any other exception is not caught, so
    Python prints its traceback and exits with 1. Commands get this both when run through the
    ``robust-winn`` group and when invoked on their own (tests, embedding).
    """

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)  # type: ignore[misc]
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            msg = exc.format_message()
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                msg += f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {' '.join(msg.split())}", err=True)
            sys.exit(exc.exit_code)
        except UserError as exc:
            click.echo(f"Error: {one_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


class RobustWinnCommand(_ErrorContract, click.Command):
    """A command with the error contract (see :class:`_ErrorContract`)."""


class RobustWinnGroup(_ErrorContract, click.Group):
    """A group with the error contract; its subcommands get it too."""

    command_class = RobustWinnCommand
    group_class = type  # subgroups (reproduce) are RobustWinnGroups too


class FiniteFloat(click.FloatRange):
    """A float option that refuses NaN and infinities (``click.FloatRange`` lets them through)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


SEED = click.IntRange(0, MAX_SEED)  # seeds feed torch generators (64-bit) after small offsets


def device_option_check(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Validate ``--device`` before any work (auto, cpu, cuda, cuda:N)."""
    from ..runtime.device import resolve_device

    resolve_device(value)  # BadValueError: one line, exit 2
    return value


def overwrite_option(what: str = "run") -> Any:
    """``--overwrite``: the only way to replace results already in ``--out``."""
    return click.option(
        "--overwrite", is_flag=True, help=f"Replace the {what} already in --out (refused without this flag)."
    )


trust_option = click.option(
    "--trust-checkpoint-code",
    "trust_code",
    is_flag=True,
    help="Let checkpoints whose architecture is an import string 'pkg.module:factory' import and "
    "run that code. Off by default: a checkpoint may only name registered models.",
)


def command_line() -> str:
    """The command as typed (``robust-winn`` + argv), for records."""
    return "robust-winn " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def setup_logging(quiet: bool) -> None:
    """INFO (or WARNING with ``--quiet``) messages on stderr, one plain line each."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
