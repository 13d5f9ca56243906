"""A small DenseNet critic/classifier (Huang et al. 2017; paper Fig. 8 "DenseNet-20").

The paper shows WINN samples with a DenseNet-20 critic but releases no code and gives no
hyper-parameters. This is the basic (non-bottleneck) DenseNet for small images:

- stem conv3x3 (C -> 2g), three dense blocks of ``layers_per_block`` layers
  (LN -> Swish -> conv3x3 adding g channels, concatenated), a transition (LN -> Swish ->
  conv1x1 -> 2x2 avg-pool) between blocks, then LN -> Swish -> global mean -> Linear.
- Depth = 3 * layers_per_block + 4 weight layers counted as in the DenseNet paper (stem,
  2 transitions, final linear); the default 5 layers per block gives 19, the nearest basic
  DenseNet to the paper's "20" (20 is not of the form 3n + 4).
- LayerNorm (``GroupNorm(1, C)``) and Swish replace BatchNorm and ReLU, as in every other
  WINN critic: a gradient penalty needs per-sample normalisation.

Growth rate g = 12 by default. Works for any input size of at least 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

__all__ = ["DenseNet"]


def _ln(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(1, c, eps=1e-5)


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.norm = _ln(c_in)
        self.conv = nn.Conv2d(c_in, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(F.silu(self.norm(x)))], dim=1)  # (N, c_in + g, H, W)


class _Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm = _ln(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(F.silu(self.norm(x))), 2)  # (N, c_out, H/2, W/2)


class DenseNet(nn.Module):
    """Basic DenseNet with LN + Swish: (N, C, H, W) in [-1, 1] -> (N, num_classes).

    Args:
        in_channels: image channels.
        num_classes: outputs (1 = scalar critic f(x)).
        layers_per_block: dense layers in each of the 3 blocks.
        growth: channels each dense layer adds.
    """

    def __init__(
        self, *, in_channels: int = 3, num_classes: int = 1, layers_per_block: int = 5, growth: int = 12
    ) -> None:
        super().__init__()
        if layers_per_block < 1 or growth < 1:
            raise ValueError("layers_per_block and growth must be >= 1")
        c = 2 * growth
        mods: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                mods.append(_DenseLayer(c, growth))
                c += growth
            if block < 2:
                mods.append(_Transition(c, c))
        self.features = nn.Sequential(*mods)
        self.norm = _ln(c)
        self.fc = nn.Linear(c, num_classes)
        self.out_channels = c

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (N, c, H/4, W/4)
        h = F.silu(self.norm(h)).mean(dim=(2, 3))  # (N, c)
        return self.fc(h)  # (N, K)


@register_model("densenet")
def densenet(*, in_channels: int = 3, num_classes: int = 1) -> nn.Module:
    """Small DenseNet (3x5 layers, growth 12, LN + Swish), paper Fig. 8 "DenseNet-20"."""
    return DenseNet(in_channels=in_channels, num_classes=num_classes)
