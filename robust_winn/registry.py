"""One registry type for every name -> thing table (DESIGN §5.1: timm's ``create_model``).

Models, attacks, supervised datasets and unsupervised positives are each a :class:`Registry`:
registering a name twice is a programming error (``ValueError``); looking up a name that is
not registered is a user error (:class:`~robust_winn.errors.UnknownNameError`, a ``KeyError``)
whose message lists the valid names; ``names()`` and ``describe()`` feed ``robust-winn list``.
:func:`check_kwargs` is the matching keyword check: a keyword the factory does not take is
refused with a message naming the ones it takes, so a typo is never silently ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from .errors import BadValueError, UnknownNameError, UserError

__all__ = ["Registry", "check_kwargs"]

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Registered names -> entries of one kind, each with a one-line description.

    A read-only :class:`~collections.abc.Mapping` (``name in reg``, ``reg[name]``, iteration in
    name order) whose lookup of an unknown name raises ``error`` listing the choices.

    Args:
        kind: what an entry is, in words, for messages (``"model"``, ``"attack"``).
        error: the :class:`UnknownNameError` subclass raised for an unknown name (a subclass
            that also derives from another user error keeps older ``except`` clauses working).
        hint: appended to the unknown-name message (e.g. "or give an import string ...").
    """

    def __init__(
        self, kind: str, *, error: type[UnknownNameError] = UnknownNameError, hint: str = ""
    ) -> None:
        self.kind, self.error, self.hint = kind, error, hint
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def add(self, name: str, entry: T, description: str) -> T:
        """Register ``entry`` under ``name``; ``ValueError`` if the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        self._descriptions[name] = description
        return entry

    def register(self, name: str, *, description: str | None = None) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; the description defaults to the docstring's first line."""

        def deco(entry: T) -> T:
            doc = description if description is not None else (inspect.getdoc(entry) or "").split("\n")[0]
            return self.add(name, entry, doc)

        return deco

    def unknown(self, name: object) -> UnknownNameError:
        """The error for an unregistered ``name``: "unknown <kind> <name>; choose one of: ..."."""
        choices = ", ".join(self.names())
        return self.error(f"unknown {self.kind} {name!r}; choose one of: {choices}{self.hint}")

    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise self.unknown(name)
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __delitem__(self, name: str) -> None:
        """Unregister ``name`` (tests, plugins that unload); an unknown name raises as a lookup does."""
        if name not in self:
            raise self.unknown(name)
        del self._entries[name], self._descriptions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Registered names (sorted) -> one-line description."""
        return {name: self._descriptions[name] for name in self.names()}


def check_kwargs(
    owner: str,
    given: Iterable[str],
    valid: Mapping[str, str],
    *,
    noun: str = "keyword",
    error: type[UserError] = BadValueError,
    show: Callable[[str], str] = repr,
) -> None:
    """Refuse keywords ``owner`` does not take, naming the ones it takes (timm ``create_model``).

    Args:
        owner: who takes the keywords, as the message starts (``"'vanilla'"``, ``"attack 'pgd'"``).
        given: the keywords the caller passed.
        valid: the keywords ``owner`` takes -> a short description of each ("" for none), in the
            order the message lists them.
        noun: what a keyword is called in the message (``"keyword"``, ``"parameter"``).
        error: the :class:`~robust_winn.errors.UserError` raised.
        show: how an unknown keyword is written in the message.

    Raises:
        error: "<owner> takes no <noun> <unknown, sorted>; it takes: <valid>" (or "none").
    """
    unknown = sorted({k for k in given if k not in valid}, key=str)
    if unknown:
        takes = ", ".join(f"{k} ({d})" if d else k for k, d in valid.items()) or "none"
        raise error(f"{owner} takes no {noun} {', '.join(map(show, unknown))}; it takes: {takes}")
