"""The 64x64 critic of the unsupervised WINN (paper Table 5 / App. C; REFERENCE §3.2).

Eight 3x3 convolutions (stride 1, same padding, with bias), Swish after each, LayerNorm on all
but the first, a 2x2 average pool after convs 2, 4, 6 and 8, then a linear map of the flattened
(512, H/16, W/16) features to ``num_classes`` outputs (1 for the unsupervised critic f(x)).
LayerNorm is the tflib one: each sample normalised over (C, H, W), eps 1e-5, a per-channel
scale and offset, i.e. ``GroupNorm(1, C)``. Every weight, the linear layer's included, is drawn
uniformly with std 0.02 (U[-0.02*sqrt(3), 0.02*sqrt(3)]); biases are zero. Table 5 lists the
output of the conv3-512 block as 8x8x256; the code (and this module) gives 4x4x512 after the
last pool.

Any input size of at least 16 works: each pool floors, so the features are (512, H//16, W//16).

``critic64-half`` is ours, not the paper's: the same network with every conv half as wide
(16..256 channels, about a quarter of the multiply-adds), registered for the CPU texture preset
(issue 15), where the full critic's gradient-penalty step costs seconds per 50 + 50 batch.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

__all__ = ["Critic64", "uniform_std_init_"]

# (in, out, layernorm, pool after) for the eight convolutions of App. C.
_LAYERS = [
    (None, 32, False, False),
    (32, 64, True, True),
    (64, 64, True, False),
    (64, 128, True, True),
    (128, 128, True, False),
    (128, 256, True, True),
    (256, 256, True, False),
    (256, 512, True, True),
]


def uniform_std_init_(module: nn.Module, std: float) -> None:
    """Draw every conv/linear weight in ``module`` from U[-a, a] with a = std*sqrt(3); zero biases."""
    a = std * math.sqrt(3.0)
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.uniform_(m.weight, -a, a)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Critic64(nn.Module):
    """App. C critic: images (N, C, H, W) in [-1, 1] -> (N, num_classes) scores.

    Args:
        in_channels: image channels (3 for textures / CelebA).
        num_classes: outputs; 1 gives the scalar critic f(x) of Algorithm 1.
        image_size: side of the (square) input, used to size the linear layer.
        init_std: std of the uniform weight init (code: 0.02).
        width: multiplier of every conv's channels (paper: 1; ``critic64-half``: 0.5).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 1,
        image_size: int = 64,
        init_std: float = 0.02,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if image_size < 16:
            raise ValueError(f"critic64 needs images of at least 16x16 (4 pools), got {image_size}")
        if width <= 0 or any(round(c * width) < 1 for _, c, _, _ in _LAYERS):
            raise ValueError(f"width must leave every conv at least one channel, got {width}")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.pools: list[bool] = []
        for c_in, c_out, ln, pool in _LAYERS:
            c_in, c_out = in_channels if c_in is None else round(c_in * width), round(c_out * width)
            self.convs.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=True))
            self.norms.append(nn.GroupNorm(1, c_out, eps=1e-5) if ln else nn.Identity())
            self.pools.append(pool)
        side = image_size // 16
        self.fc = nn.Linear(c_out * side * side, num_classes)
        uniform_std_init_(self, init_std)

    def forward(self, x: Tensor) -> Tensor:
        h = x  # (N, C, H, W)
        for conv, norm, pool in zip(self.convs, self.norms, self.pools, strict=True):
            h = F.silu(norm(conv(h)))
            if pool:
                h = F.avg_pool2d(h, 2, 2)
        return self.fc(h.flatten(1))  # (N, 512 width * (H//16) * (W//16)) -> (N, K)


@register_model("critic64")
def critic64(*, in_channels: int = 3, num_classes: int = 1, image_size: int = 64) -> nn.Module:
    """64x64 critic of App. C: 8 convs, LN + Swish, avg-pool, linear (REFERENCE §3.2)."""
    return Critic64(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


@register_model("critic64-half")
def critic64_half(*, in_channels: int = 3, num_classes: int = 1, image_size: int = 64) -> nn.Module:
    """critic64 at half width (16..256 channels; ours, not the paper's): the CPU texture preset."""
    return Critic64(in_channels=in_channels, num_classes=num_classes, image_size=image_size, width=0.5)
