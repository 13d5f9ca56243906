"""Unsupervised critics (App. C, WGAN-GP ResNet, DenseNet) and the App. D init network."""

import math

import pytest
import torch

from robust_winn.models import check_classifier, create_model
from robust_winn.models.appd import AppDInitNet, gaussian_p0, minmax_per_image, quantize_uint8, sample_p0
from robust_winn.models.critic64 import Critic64
from robust_winn.synthesis.cascade import build_critic


@pytest.mark.parametrize("size", [64, 16])
def test_critic64_shapes_and_grad_on_every_param(size):
    torch.manual_seed(0)
    m = build_critic("critic64", (3, size, size))
    x = torch.rand(2, 3, size, size) * 2 - 1
    out = m(x)
    assert out.shape == (2, 1) and torch.isfinite(out).all()
    out.sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_critic64_layout_matches_app_c():
    m = Critic64(image_size=64)
    assert [c.out_channels for c in m.convs] == [32, 64, 64, 128, 128, 256, 256, 512]
    assert all(c.kernel_size == (3, 3) and c.bias is not None for c in m.convs)
    assert isinstance(m.norms[0], torch.nn.Identity)  # no LN on the first conv
    assert all(isinstance(n, torch.nn.GroupNorm) and n.num_groups == 1 for n in m.norms[1:])
    assert m.fc.in_features == 512 * 4 * 4 and m.fc.out_features == 1
    a = 0.02 * math.sqrt(3)
    for mod in [*m.convs, m.fc]:
        mod.requires_grad_(False)
        assert mod.weight.abs().max() <= a and float(mod.weight.std()) == pytest.approx(0.02, rel=0.2)
        assert mod.bias.abs().max() == 0


def test_critic64_half_is_app_c_at_half_width():
    full, half = Critic64(image_size=64), build_critic("critic64-half", (3, 64, 64))
    assert [c.out_channels for c in half.convs] == [c.out_channels // 2 for c in full.convs]
    assert [c.in_channels for c in half.convs][1:] == [c.in_channels // 2 for c in full.convs][1:]
    assert half.convs[0].in_channels == 3 and half.fc.in_features == 256 * 4 * 4
    assert [type(n) for n in half.norms] == [type(n) for n in full.norms] and half.pools == full.pools
    # 9 * c_in * c_out + c_out per conv, 2 * c_out per LayerNorm (convs 2-8), 4096 + 1 for the linear map
    widths = [3, 16, 32, 32, 64, 64, 128, 128, 256]
    convs = sum(9 * a * b + b for a, b in zip(widths, widths[1:], strict=False))
    assert sum(p.numel() for p in half.parameters()) == convs + 2 * sum(widths[2:]) + 4096 + 1 == 591_873
    out = half(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.shape == (2, 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("width", [0.0, -1.0, 0.01])
def test_critic64_refuses_a_width_that_empties_a_conv(width):
    with pytest.raises(ValueError, match="width"):
        Critic64(width=width)


@pytest.mark.parametrize("arch,size", [("wgan_resnet32", 16), ("densenet", 16), ("critic64", 32)])
def test_critics_are_also_classifiers(arch, size):
    torch.manual_seed(0)
    m = create_model(arch, in_channels=3, num_classes=10, image_size=size)
    check_classifier(m, (3, size, size), 10)
    f = build_critic(arch, (1, size, size))
    out = f(torch.zeros(3, 1, size, size))
    assert out.shape == (3, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in f.parameters())


def test_appd_images_span_minus_one_to_one_per_image():
    g = torch.Generator().manual_seed(0)
    net = AppDInitNet(3, generator=g)
    assert all(c.kernel_size == (5, 5) for c in net.convs) and net.convs[0].in_channels == 512
    x = net.sample(5, 64, generator=g)
    assert x.shape == (5, 3, 64, 64)
    flat = x.flatten(1)
    assert torch.equal(flat.min(1).values, -torch.ones(5)) and torch.equal(flat.max(1).values, torch.ones(5))
    assert torch.equal(x, quantize_uint8(x))  # on the 8-bit grid (the code's PNG round trip)
    raw = net.sample(2, 48, quantize=False, generator=g)  # not a multiple of 16: crop
    assert raw.shape == (2, 3, 48, 48) and not torch.equal(raw, quantize_uint8(raw))
    assert raw.flatten(1).min(1).values.eq(-1).all() and raw.flatten(1).max(1).values.eq(1).all()


def test_minmax_and_gaussian_p0():
    x = torch.stack([torch.full((1, 2, 2), 3.0), torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])])
    y = minmax_per_image(x)
    assert torch.equal(y[0], torch.zeros(1, 2, 2))  # constant image -> 0, no NaN
    assert torch.allclose(y[1], torch.tensor([[[-1.0, -0.5], [0.0, 1.0]]]))
    g = gaussian_p0(10, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert g.abs().max() <= 1 and g.std() > 0.2
    a = sample_p0("gaussian", 3, (1, 8, 8), generator=torch.Generator().manual_seed(1))
    b = sample_p0("gaussian", 3, (1, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
