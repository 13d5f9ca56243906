"""The ``robust-winn`` command line (DESIGN §1): thin commands over the library.

``main`` (the group and the supervised commands), ``attack``, ``unsup`` (train-unsupervised,
generate, score), ``common`` (the error contract and shared option types) and ``knobs`` (the
options generated from the configuration dataclasses' fields).
"""

from .main import main

__all__ = ["main"]
