"""Classifiers defined outside the package, plugged in by import string in the tests."""

from torch import nn


def tiny(num_classes: int = 10) -> nn.Module:
    """A valid user classifier: 28x28x1 images in [-1, 1] -> (N, num_classes) logits."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, num_classes))


def wrong_shape() -> nn.Module:
    """An invalid one: 7 outputs for a 10-class dataset."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 7))


def not_a_module() -> str:
    """Not a module at all."""
    return "oops"
