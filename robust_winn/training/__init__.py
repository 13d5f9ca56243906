"""Training loops: supervised baseline and WINN."""

from .supervised import NonFiniteLossError, evaluate_error, train

__all__ = ["NonFiniteLossError", "evaluate_error", "train"]
