"""The DCGAN generator of WGAN-GP's ``gan_64x64.py`` (Figure 3's GAN baseline, REFERENCE §3.8)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DCGANGenerator"]


def _n_up(size: int) -> int:
    """Stride-2 up-samplings from a side >= 4 to ``size`` (at most 4, as DCGAN's 4 -> 64)."""
    n = 0
    while n < 4 and size % 2 ** (n + 1) == 0 and size // 2 ** (n + 1) >= 4:
        n += 1
    return n


class DCGANGenerator(nn.Module):
    """DCGAN generator of WGAN-GP: z (N, z_dim) -> images (N, C, S, S) in [-1, 1] (tanh).

    For S = 64 and width 64: Linear -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64xC.
    Other sizes start at S / 2^k (k <= 4 up-samplings, start side >= 4; 28 -> 7x7 -> 14 -> 28).

    Args:
        z_dim: latent size.
        out_channels: image channels C.
        image_size: output side S.
        width: channels of the last hidden layer (doubling towards the input).
    """

    def __init__(
        self, *, z_dim: int = 128, out_channels: int = 3, image_size: int = 64, width: int = 64
    ) -> None:
        super().__init__()
        self.z_dim, self.image_size, self.out_channels = z_dim, image_size, out_channels
        n = _n_up(image_size)
        self.start = image_size >> n
        widths = [width * 2 ** (n - 1 - i) for i in range(n)] if n else [width]  # hidden channels
        self.fc = nn.Linear(z_dim, widths[0] * self.start**2)
        self.bn0 = nn.BatchNorm2d(widths[0], track_running_stats=False)
        ups: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            ups += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                nn.BatchNorm2d(c_out, track_running_stats=False),
                nn.ReLU(),
            ]
        last = (
            nn.ConvTranspose2d(widths[-1], out_channels, 4, stride=2, padding=1)
            if n
            else nn.Conv2d(widths[-1], out_channels, 3, padding=1)
        )
        self.body = nn.Sequential(*ups, last)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], -1, self.start, self.start)  # (N, c0, s0, s0)
        h = torch.relu(self.bn0(h))
        return torch.tanh(self.body(h))  # (N, C, S, S)

    def sample(self, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` images from z ~ N(0, I) drawn with the CPU ``generator`` (no gradient)."""
        dev = self.fc.weight.device
        z = torch.randn(n, self.z_dim, generator=generator).to(dev)
        with torch.no_grad():
            return self(z)
