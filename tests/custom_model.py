"""A user-defined classifier, importable as ``custom_model:tiny_cnn`` (tests only).

It stands for what a user brings: a plain ``nn.Module`` mapping [-1, 1] images to logits,
known to robust_winn only through an import string. ``trained_tiny_cnn`` trains one briefly on
the bundled MNIST sample so attacks have something meaningful to break.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


class TinyCNN(nn.Module):
    """Two strided convolutions with tanh and a linear layer (about 7k parameters)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(8, 16, 5, stride=2, padding=2)
        side = (image_size + 3) // 4
        self.fc = nn.Linear(16 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv1(x))
        h = torch.tanh(self.conv2(h))
        return self.fc(h.flatten(1))


def tiny_cnn(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Factory in the form robust_winn's model registry calls."""
    return TinyCNN(in_channels, num_classes, image_size)


@lru_cache(maxsize=4)
def trained_tiny_cnn(seed: int = 0, steps: int = 150) -> dict[str, torch.Tensor]:
    """State dict of a TinyCNN trained for ``steps`` Adam steps on the sample (cached)."""
    from robust_winn.data.datasets import load_dataset

    torch.manual_seed(seed)
    data = load_dataset("sample", data_dir="unused")
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        for x, y in data.train.batches(100, shuffle=True, generator=gen):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return {k: v.clone() for k, v in model.state_dict().items()}


def load_trained(seed: int = 0) -> nn.Module:
    """A fresh TinyCNN with the cached trained weights, in eval mode."""
    model = tiny_cnn()
    model.load_state_dict(trained_tiny_cnn(seed))
    return model.eval()
