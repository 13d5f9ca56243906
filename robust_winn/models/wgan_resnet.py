"""WGAN-GP ResNet critic for 32x32 images (Gulrajani et al. 2017; paper §5.4-5.5, REFERENCE §3.8).

The paper trains SVHN and CIFAR-10 with "the WGAN-GP ResNet discriminator" but releases no code
for it. This module follows the WGAN-GP CIFAR-10 critic (``gan_cifar_resnet.py``):

- an "optimized" first block: conv3x3(C->w) -> act -> conv3x3(w->w) -> 2x2 mean-pool, with a
  shortcut mean-pool -> conv1x1;
- one down-sampling residual block (16x16 -> 8x8 for a 32x32 input);
- two residual blocks without resampling;
- act -> global mean over H, W -> Linear(w -> num_classes).

Choices where WGAN-GP and WINN differ (documented, REFERENCE §6.5 leaves them open):

- Normalisation: WGAN-GP's critic has none; a gradient-penalised critic must not use batch
  statistics, so, as the brief asks and like the rest of WINN, each residual branch uses
  LayerNorm over (C, H, W) (``GroupNorm(1, C)``) before each activation (pre-activation blocks).
- Activation: ReLU, as WGAN-GP (the 64x64 WINN critic uses Swish; ``activation="swish"`` switches).
- Width 128 and PyTorch's default init (WGAN-GP uses He-uniform; close enough, not exact).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

__all__ = ["Activation", "WganResNetCritic"]


class Activation(str, Enum):
    """Nonlinearity of the critic's blocks."""

    RELU = "relu"  # WGAN-GP
    SWISH = "swish"  # as the 64x64 WINN critic


_ACTS: dict[Activation, Callable[[Tensor], Tensor]] = {Activation.RELU: F.relu, Activation.SWISH: F.silu}


def _ln(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(1, c, eps=1e-5)


class _ResBlock(nn.Module):
    """Pre-activation residual block: [LN -> act -> conv3x3] x 2, optional 2x2 mean-pool."""

    def __init__(self, c: int, *, down: bool, act: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.act, self.down = act, down
        self.norm1, self.conv1 = _ln(c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = _ln(c), nn.Conv2d(c, c, 3, padding=1)
        self.shortcut = nn.Conv2d(c, c, 1) if down else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        sc = self.shortcut(x)
        if self.down:
            h, sc = F.avg_pool2d(h, 2), F.avg_pool2d(sc, 2)
        return h + sc


class WganResNetCritic(nn.Module):
    """WGAN-GP CIFAR ResNet critic with LayerNorm: (N, C, H, W) -> (N, num_classes).

    Args:
        in_channels: image channels.
        num_classes: outputs (1 = scalar critic).
        width: channels of every block (WGAN-GP: 128).
        activation: "relu" (WGAN-GP) or "swish".
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 1,
        width: int = 128,
        activation: Activation | str = Activation.RELU,
    ) -> None:
        super().__init__()
        try:
            act = _ACTS[Activation(activation)]
        except ValueError as exc:
            choices = ", ".join(a.value for a in Activation)
            raise ValueError(f"activation must be one of {choices}, got {activation!r}") from exc
        self.act = act
        self.conv_a = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm_a = _ln(width)
        self.conv_b = nn.Conv2d(width, width, 3, padding=1)
        self.short_a = nn.Conv2d(in_channels, width, 1)
        self.blocks = nn.Sequential(
            _ResBlock(width, down=True, act=act),
            _ResBlock(width, down=False, act=act),
            _ResBlock(width, down=False, act=act),
        )
        self.norm_out = _ln(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_b(self.act(self.norm_a(self.conv_a(x))))  # (N, w, H, W)
        h = F.avg_pool2d(h, 2) + self.short_a(F.avg_pool2d(x, 2))  # (N, w, H/2, W/2)
        h = self.blocks(h)  # (N, w, H/4, W/4)
        h = self.act(self.norm_out(h)).mean(dim=(2, 3))  # (N, w)
        return self.fc(h)  # (N, K)


@register_model("wgan_resnet32")
def wgan_resnet32(*, in_channels: int = 3, num_classes: int = 1) -> nn.Module:
    """WGAN-GP ResNet critic for 32x32 (CIFAR/SVHN), LayerNorm instead of none/BN (§5.4-5.5)."""
    return WganResNetCritic(in_channels=in_channels, num_classes=num_classes)
