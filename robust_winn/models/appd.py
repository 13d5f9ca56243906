"""Initial distributions p0 for the unsupervised WINN (paper App. D; REFERENCE §3.3).

:class:`AppDInitNet` is the "alternative initialisation" network of App. D: a never-trained,
randomly weighted stack of four 5x5 convolutions with nearest-neighbour up-sampling,

    z ~ U[-1, 1]^(512 x s/16 x s/16)
      -> conv5x5 512->256 -> NN x2 -> LN -> conv5x5 256->128 -> NN x2 -> LN
      -> conv5x5 128->64 -> NN x2 -> LN -> conv5x5 64->C -> NN x2

with no nonlinearity and no tanh; weights uniform with std 0.1 (the paper says Gaussian
G(0, 0.1^2); the code uses uniform), zero biases. The released code then rescales **each image**
min-max to [0, 255] and stores it as an 8-bit PNG, so every initial image spans [-1, 1]
exactly; :meth:`AppDInitNet.sample` does the same (``quantize=True`` keeps the 8-bit rounding).
For s = 64 the noise is 512x4x4, as in the paper. Any side divisible by 16 works.

:func:`gaussian_p0` is the simpler alternative: i.i.d. N(0, std^2) pixels clipped to [-1, 1].
"""

from __future__ import annotations

import math
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InitKind", "AppDInitNet", "minmax_per_image", "quantize_uint8", "gaussian_p0", "sample_p0"]


class InitKind(str, Enum):
    """Which p0 starts synthesis."""

    APPD = "appd"  # App. D random conv network, per-image min-max rescaled (released code)
    GAUSSIAN = "gaussian"  # N(0, std^2) pixels clipped to [-1, 1]


def minmax_per_image(x: Tensor) -> Tensor:
    """Rescale every image of (N, C, H, W) linearly so its min is -1 and max is 1 (constant -> 0)."""
    flat = x.flatten(1)  # (N, CHW)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-12) * 2 - 1, torch.zeros_like(flat))
    return out.view_as(x)


def quantize_uint8(x: Tensor) -> Tensor:
    """Round [-1, 1] images to the 256 levels of an 8-bit PNG and back (REFERENCE §3.6 step 4.5)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().div(127.5).sub(1.0)


class AppDInitNet(nn.Module):
    """The App. D random init network (never trained).

    Args:
        channels: output image channels.
        std: std of the uniform weight init (code 0.1).
        generator: RNG for the weights (a fresh draw per run, as in the code).
    """

    def __init__(
        self, channels: int = 3, *, std: float = 0.1, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        widths = [512, 256, 128, 64, channels]
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 5, padding=2) for i in range(4))
        self.norms = nn.ModuleList(nn.GroupNorm(1, widths[i + 1], eps=1e-5) for i in range(3))
        a = std * math.sqrt(3.0)
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=generator) * 2 * a - a)
                conv.bias.zero_()
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, z: Tensor) -> Tensor:
        """Raw (not yet rescaled) output (N, C, 16 h, 16 w) for noise z (N, 512, h, w)."""
        h = z
        for i, conv in enumerate(self.convs):
            h = F.interpolate(conv(h), scale_factor=2, mode="nearest")
            if i < 3:
                h = self.norms[i](h)
        return h

    def sample(
        self,
        n: int,
        size: int | tuple[int, int] = 64,
        *,
        quantize: bool = True,
        generator: torch.Generator | None = None,
        batch_size: int = 500,
    ) -> Tensor:
        """``n`` images (N, C, H, W), each min-max rescaled to span [-1, 1] exactly.

        Sizes not divisible by 16 are generated at the next multiple of 16 and centre-cropped.
        """
        hh, ww = (size, size) if isinstance(size, int) else size
        gh, gw = -(-hh // 16), -(-ww // 16)
        dev = self.convs[0].weight.device
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = (torch.rand(m, 512, gh, gw, generator=generator) * 2 - 1).to(dev)
            img = self(z)  # (m, C, 16 gh, 16 gw)
            top, left = (img.shape[2] - hh) // 2, (img.shape[3] - ww) // 2
            img = img[:, :, top : top + hh, left : left + ww]
            img = minmax_per_image(img)
            out.append(quantize_uint8(img) if quantize else img)
        if not out:
            return torch.empty(0, self.convs[-1].out_channels, hh, ww, device=dev)
        return torch.cat(out)


def gaussian_p0(
    n: int, shape: tuple[int, int, int], *, std: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` images of i.i.d. N(0, std^2) pixels clipped to [-1, 1] (a plain Gaussian p0)."""
    return (torch.randn(n, *shape, generator=generator) * std).clamp_(-1, 1)


def sample_p0(
    kind: InitKind | str,
    n: int,
    shape: tuple[int, int, int],
    *,
    generator: torch.Generator,
    quantize: bool = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` initial images from the chosen p0 on ``device``.

    Weights and noise come from the CPU ``generator``, so the draw does not depend on the device.
    """
    kind = InitKind(kind)
    c, h, w = shape
    if kind is InitKind.APPD:
        net = AppDInitNet(c, generator=generator).to(device)
        return net.sample(n, (h, w), quantize=quantize, generator=generator)
    x = gaussian_p0(n, shape, generator=generator).to(device)
    return quantize_uint8(x) if quantize else x
