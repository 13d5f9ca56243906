"""Command-line options generated from the configuration dataclasses (issue 12 §2, DESIGN §1, §5.2).

A field's :func:`robust_winn.config.knob` metadata is the one place its help text, range,
choices and flag are written. :class:`Knobs` turns the fields of a configuration class into
click options (``robust-winn train`` from :class:`~robust_winn.config.TrainConfig`,
``train-unsupervised`` from :class:`~robust_winn.training.unsup_config.UnsupConfig`) and turns
the parsed values back into that configuration. Ranges become click types (:class:`FiniteFloat`
refuses NaN and infinities, ``click.IntRange``), so a bad value is one ``Error:`` line before
any work; ``validate()`` checks the same declarations for Python callers.

The default mapping: ``field_name`` -> ``--field-name``; a bool -> ``--x/--no-x``; an enum or a
field with ``choices`` -> a choice of their values; an ``int`` -> ``click.IntRange`` and a
``float`` -> :class:`FiniteFloat` over the declared range; fields of nested configurations
(``TrainConfig.synthesis``, ``.fast``) are options of their own. What differs is in the field's
``cli`` metadata (see :func:`~robust_winn.config.knob`); ``cli=False`` keeps a field off the
command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, get_type_hints

import click

from ..config import field_kind
from .common import FiniteFloat, device_option_check

__all__ = ["Knob", "Knobs"]


@dataclass(frozen=True)
class Knob:
    """One generated option and the configuration field it sets."""

    path: tuple[str, ...]  # field names from the configuration class down (synthesis, max_steps)
    field: Field[Any]  # the dataclass field: its default and knob metadata
    decls: tuple[str, ...]  # click's parameter declarations (``--download/--no-download``)
    attrs: Mapping[str, Any]  # click.Option's keyword arguments (type, default, help, ...)
    param: str  # the parameter name: the key of the command function's keyword arguments
    invert: bool  # a ``--no-x`` flag: the field is ``not`` the flag
    enum: type[Enum] | None  # the field's enum (options give its members' values)


class Knobs:
    """The click options of a configuration dataclass, and the way back to a configuration.

    Use the instance as a decorator on a click command (the options appear in ``--help`` in the
    fields' order); :meth:`build` or :meth:`values` read the command's keyword arguments.
    """

    def __init__(self, cls: type, *, preset_default: str | None = None) -> None:
        """Generate the options of ``cls``.

        Args:
            cls: a configuration dataclass whose fields carry :func:`~robust_winn.config.knob`
                metadata.
            preset_default: the name of the preset the dataclass defaults make (``paper``): fields
                with ``presets`` get no default of their own (``None``: the chosen preset's) and
                their help lists every preset's value.

        Raises:
            TypeError: a field without help, or two fields that map to the same flag or
                parameter (declaration bugs, found when the command line is built).
        """
        self.cls = cls
        self.knobs: tuple[Knob, ...] = tuple(_knobs(cls, (), preset_default))
        names = [k.param for k in self.knobs] + [o for k in self.knobs for o in k.decls[0].split("/")]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise TypeError(f"{cls.__name__}: fields map to the same option {', '.join(dup)}")

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Attach the options to a command function, as ``@click.option`` decorators would."""
        for k in reversed(self.knobs):
            fn = click.option(*k.decls, **k.attrs)(fn)
        return fn

    def values(self, kw: Mapping[str, Any]) -> dict[str, Any]:
        """The field values given by the parsed options, nested like the configuration.

        Enum fields get their members, inverted flags are undone; a preset field left unset is
        ``None`` (``UnsupConfig.preset`` then keeps the preset's value).
        """
        out: dict[str, Any] = {}
        for k in self.knobs:
            value = kw[k.param]
            if k.invert:
                value = not value
            elif k.enum is not None and value is not None:
                value = k.enum(value)
            node = out
            for name in k.path[:-1]:
                node = node.setdefault(name, {})
            node[k.path[-1]] = value
        return out

    def build(self, kw: Mapping[str, Any]) -> Any:
        """The configuration the parsed options describe (fields without an option: defaults)."""
        return _construct(self.cls, self.values(kw))


def _construct(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls(**values)``, nested configurations built from their own dicts."""
    hints = get_type_hints(cls)
    kw = {}
    for f in fields(cls):
        if f.name not in values:
            continue
        kind, _ = field_kind(hints[f.name])
        kw[f.name] = _construct(kind, values[f.name]) if is_dataclass(kind) else values[f.name]
    return cls(**kw)


def _knobs(cls: type, prefix: tuple[str, ...], preset_default: str | None) -> Iterator[Knob]:
    """The knobs of every field of ``cls`` with a command-line form, nested ones included."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        if not f.metadata.get("help"):  # every knob is declared with its help (config.knob)
            raise TypeError(
                f"{cls.__name__}.{f.name} has no help: declare it with field(..., metadata=knob(help, ...))"
            )
        cli = f.metadata.get("cli", True)
        if cli is False:
            continue
        kind, _ = field_kind(hints[f.name])
        if is_dataclass(kind):
            yield from _knobs(kind, (*prefix, f.name), preset_default)
        else:
            yield _knob(f, kind, {} if cli is True else dict(cli), (*prefix, f.name), preset_default)


def _knob(
    f: Field[Any], kind: Any, cli: dict[str, Any], path: tuple[str, ...], preset_default: str | None
) -> Knob:
    """The option of one field (see the module docstring for the mapping)."""
    meta = f.metadata
    flag = cli.get("flag", "--" + f.name.replace("_", "-"))
    default = f.default.value if isinstance(f.default, Enum) else f.default
    help_text = cli.get("help", meta["help"])
    attrs: dict[str, Any] = {}
    if "presets" in meta:
        shown = {**meta["presets"], **({preset_default: default} if preset_default else {})}
        values = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in shown.items())
        help_text += f" [default: by --preset: {values}]"
        default = None
    enum = kind if isinstance(kind, type) and issubclass(kind, Enum) else None
    invert = bool(cli.get("invert"))
    if invert:  # off unless given: no default to pass or show
        decls, attrs["is_flag"] = [flag if "flag" in cli else f"--no-{flag[2:]}"], True
    elif kind is bool:
        decls = [f"{flag}/--no-{flag[2:]}"]
    else:
        decls = [flag]
        attrs["type"] = _type(kind, enum, meta, cli)
    if cli.get("required"):
        attrs["required"] = True
    elif not invert:
        attrs["default"] = default  # None included: a bool flag pair left unset is None, not False
        if default is not None:
            attrs["show_default"] = True
    if cli.get("device"):
        attrs["callback"] = device_option_check
    attrs["help"] = help_text
    param = click.Option(decls, **attrs).name
    return Knob(
        path=path, field=f, decls=tuple(decls), attrs=attrs, param=str(param), invert=invert, enum=enum
    )


def _type(kind: Any, enum: type[Enum] | None, meta: Mapping[str, Any], cli: Mapping[str, Any]) -> Any:
    """The click type of a field: its choices, its range, or a path."""
    choices = cli.get("choices", meta.get("choices"))
    if enum is not None:
        choices = [m.value for m in enum]
    if choices is not None:
        return click.Choice(list(choices))
    bounds = dict(meta.get("range", {}))
    if "low" in cli:
        bounds["low"] = cli["low"]
    low, high, low_open = bounds.get("low"), bounds.get("high"), bool(bounds.get("low_open"))
    if kind is int:
        return click.IntRange(min=low, max=high, min_open=low_open)
    if kind is float:
        return FiniteFloat(min=low, max=high, min_open=low_open)
    if cli.get("path") == "dir":
        return click.Path(file_okay=False)
    if cli.get("path") == "file":
        return click.Path(dir_okay=False)
    return click.STRING
