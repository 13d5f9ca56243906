"""The vanilla 4-layer CNN of paper §5.6 ("resembling ICN's DCGAN discriminator, with fewer
filters and parameters"; REFERENCE §1.9: widths unpublished).

Choice made here, and why:
- DCGAN's discriminator is a stack of stride-2 convolutions with LeakyReLU(0.2) that double the
  width at each step (64-128-256-512 in DCGAN). "Fewer filters": we halve and stop at three
  convolutions, 32-64-128, 5x5 kernels, stride 2 (28 -> 14 -> 7 -> 4), then one linear layer
  to K logits: four weighted layers, ~0.3M parameters (DCGAN's discriminator has ~2.8M).
- Batch normalisation is replaced by layer normalisation (per-sample over C, H, W): the
  gradient penalty is a per-sample quantity, which batch statistics would couple across the
  batch (Gulrajani et al. 2017 §4 recommend exactly this). The first conv has no norm, as in DCGAN.
"""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model


class VanillaCNN(nn.Module):
    """4-layer DCGAN-discriminator-style CNN (3 conv + 1 linear)."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        widths: tuple[int, int, int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, s = in_channels, image_size
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(c, w, 5, stride=2, padding=2))
            s = (s + 1) // 2
            if i > 0:
                layers.append(nn.GroupNorm(1, w))  # LayerNorm over (C, H, W), per-channel affine
            layers.append(nn.LeakyReLU(0.2))
            c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * s * s, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (N, 128, 4, 4) for 28x28
        return self.fc(h.flatten(1))  # (N, K)


@register_model("vanilla")
def vanilla(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Vanilla 4-layer CNN, widths 32-64-128 + linear (paper §5.6; choice documented)."""
    return VanillaCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
