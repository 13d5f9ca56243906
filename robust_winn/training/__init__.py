"""Training loops: supervised baseline and WINN."""

from .supervised import NonFiniteLossError, ResumeError, evaluate_error, resolve_device, train

__all__ = ["NonFiniteLossError", "ResumeError", "evaluate_error", "resolve_device", "train"]
