"""A user classifier with BatchNorm, plugged in by import string (tests/test_batchnorm.py)."""

from torch import nn


def bn_cnn(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Conv -> BatchNorm -> ReLU -> pool -> linear: 28x28 images in [-1, 1] to logits."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(8 * 16, num_classes),
    )
