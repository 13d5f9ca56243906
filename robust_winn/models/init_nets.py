"""Random, never-trained initial generators for pseudo-negatives (REFERENCE §1.5).

The supervised code starts every pseudo-negative from a fixed DCGAN-style network with random
weights: z ~ U[-1, 1]^128 -> Linear -> 512x4x4 -> 4 x [LN -> conv5x5 -> nearest resize] -> tanh,
with weights drawn uniformly with std 0.1 and zero biases, and no other nonlinearity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _uniform_std_(t: Tensor, std: float, generator: torch.Generator | None) -> None:
    a = std * math.sqrt(3.0)
    with torch.no_grad():
        t.copy_(torch.rand(t.shape, generator=generator) * 2 * a - a)


class DCGANInitGenerator(nn.Module):
    """Fixed random generator z (128) -> image (C, H, W) in [-1, 1] (REFERENCE §1.5)."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        z_dim: int = 128,
        std: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        self.z_dim = z_dim
        self.fc = nn.Linear(z_dim, 512 * 4 * 4)
        widths = [512, 256, 128, 64, c]
        self.norms = nn.ModuleList(nn.GroupNorm(1, widths[i], eps=1e-5) for i in range(4))
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 5, padding=2) for i in range(4))
        # 4 -> 8 -> 16 -> (H, W) -> (H, W): the code's 28x28 path is 8, 16, 28, 28.
        self.sizes = [(8, 8), (16, 16), (h, w), (h, w)]
        for m in [self.fc, *self.convs]:
            _uniform_std_(m.weight, std, generator)
            nn.init.zeros_(m.bias)
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(-1, 512, 4, 4)  # (N, 512, 4, 4)
        for norm, conv, size in zip(self.norms, self.convs, self.sizes, strict=True):
            h = F.interpolate(conv(norm(h)), size=size, mode="nearest")
        return torch.tanh(h)  # (N, C, H, W)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n fresh images from z ~ U[-1, 1]^z_dim."""
        dev = self.fc.weight.device
        z = (torch.rand(n, self.z_dim, generator=generator) * 2 - 1).to(dev)
        return self(z)
