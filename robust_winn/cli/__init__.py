"""The ``robust-winn`` command line (DESIGN §1): thin commands over the library.

``main`` (the group and the supervised commands), ``attack``, ``unsup`` (train-unsupervised,
generate, score) and ``common`` (the error contract and shared option types).
"""

from .main import main

__all__ = ["main"]
