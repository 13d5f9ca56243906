"""ResNet-(6n+2) with LayerNorm and Swish, as in the released supervised WINN code
(REFERENCE §1.2; paper §5.6 "ResNet-32 with Layer Normalization").

Pre-activation blocks without conv biases; the first block of stage 1 skips its
pre-activation; down-sampling shortcuts are a 2x2 average pool of the raw input followed by
zero-padding of the channels. LayerNorm normalises each sample over (C, H, W) with a
per-channel gain and bias, i.e. ``GroupNorm(1, C)``. Weights: He fan-in truncated normal with
TF1's variance-scaling std sqrt(1.3 * 2 / fan_in); the final FC has zero bias.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model


def _ln(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(1, c, eps=1e-5)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, preact: bool) -> None:
        super().__init__()
        self.preact = preact
        self.norm1 = _ln(c_in) if preact else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm2 = _ln(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.down = stride != 1
        self.pad = (c_out - c_in) // 2

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.norm1(x)) if self.preact else x
        h = self.conv2(F.silu(self.norm2(self.conv1(h))))
        sc = x
        if self.down:
            sc = F.avg_pool2d(sc, 2, 2, ceil_mode=True)  # (N, C, H/2, W/2); ceil for odd sizes
        if self.pad:
            sc = F.pad(sc, (0, 0, 0, 0, self.pad, self.pad))  # zero channels on each side
        return h + sc


class ResNetLN(nn.Module):
    """ResNet with 3 stages of ``n`` blocks (16-32-64 channels), LN + Swish."""

    def __init__(self, n: int, *, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.stem_norm = _ln(width)
        blocks: list[nn.Module] = []
        c = width
        for stage in range(3):
            c_out = width * 2**stage
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(_Block(c, c_out, stride, preact=not (stage == 0 and i == 0)))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final_norm = _ln(c)
        self.fc = nn.Linear(c, num_classes)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                std = math.sqrt(1.3 * 2.0 / fan_in)
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.stem_norm(self.stem(x)))  # (N, 16, H, W)
        h = self.blocks(h)  # (N, 64, H/4, W/4)
        h = F.silu(self.final_norm(h)).mean(dim=(2, 3))  # (N, 64)
        return self.fc(h)  # (N, K)


def _factory(n: int, depth: int):  # noqa: ANN202
    def make(*, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
        return ResNetLN(n, in_channels=in_channels, num_classes=num_classes)

    make.__doc__ = f"ResNet-{depth} ({n} blocks/stage), LayerNorm + Swish (REFERENCE §1.2)"
    return make


for _n in (2, 3, 5, 7):
    register_model(f"resnet{6 * _n + 2}")(_factory(_n, 6 * _n + 2))
