"""Unsupervised ascent (batch-mean tau stop) and any-size texture synthesis."""

import pytest
import torch
from torch import nn

from robust_winn.synthesis.anysize import (
    PatchLayout,
    average_patch_gradients,
    extract_patches,
    synthesize_anysize,
    working_size,
)
from robust_winn.synthesis.ascent import AscentSampler


class MeanCritic(nn.Module):
    """f(x) = w * mean(x): ascent pushes every pixel up; max f = w (all pixels 1)."""

    def __init__(self, w: float = 1.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return (self.w * x.flatten(1).mean(1)).unsqueeze(1)  # (N, 1)


def test_ascent_raises_f_stays_in_range_and_stops_at_tau():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 4, 4, generator=gen) * 2 - 1
    x0[:3] -= 0.5  # first batch starts lower
    x0.clamp_(-1, 1)
    model = MeanCritic().train()
    s = AscentSampler(max_steps=500, batch_size=3)
    x, st = s.synthesize(model, x0, tau_min=0.3, tau_max=0.3, generator=gen)
    f0, f1 = model(x0).squeeze(1), model(x).squeeze(1)
    assert f1.mean() > f0.mean() and x.min() >= -1 and x.max() <= 1
    for b in range(2):
        assert f1[3 * b : 3 * b + 3].mean() >= 0.3  # reached its tau ...
    assert st.max_steps_hit == 0 and 0 < st.mean_steps < 500
    # ... and stopped right there: one step fewer leaves the batch below tau
    _, one = AscentSampler(max_steps=500, batch_size=3).synthesize(
        model, x0[:3], tau_min=0.3, tau_max=0.3, generator=gen
    )
    y, _ = AscentSampler(max_steps=int(one.mean_steps) - 1).synthesize(
        model, x0[:3], tau_min=0.3, tau_max=0.3, generator=gen
    )
    assert one.mean_steps > 1 and model(y).mean() < 0.3
    assert model.training and model.w.requires_grad  # restored


def test_ascent_no_step_above_tau_and_cap_when_unreachable():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((4, 1, 2, 2), 0.5)
    x, st = AscentSampler(max_steps=7).synthesize(MeanCritic(), x0, tau_min=0.1, tau_max=0.2, generator=gen)
    assert torch.equal(x, x0) and st.mean_steps == 0
    x, st = AscentSampler(max_steps=7).synthesize(MeanCritic(), x0, tau_min=2.0, tau_max=3.0, generator=gen)
    assert st.mean_steps == 7 and st.max_steps_hit == 1
    # Adam step 1 moves each pixel by lr = 0.01 exactly (fresh moments)
    assert torch.allclose(
        AscentSampler(max_steps=1).synthesize(MeanCritic(), x0, tau_min=5, tau_max=5, generator=gen)[0],
        x0 + 0.01,
    )


def test_adam_reset_per_batch():
    gen = torch.Generator().manual_seed(0)
    x0 = (torch.rand(1, 1, 3, 3, generator=gen) - 0.5).repeat(4, 1, 1, 1)
    x, _ = AscentSampler(max_steps=5, batch_size=2).synthesize(
        MeanCritic(), x0, tau_min=9, tau_max=9, generator=gen
    )
    assert torch.equal(x[:2], x[2:])  # second batch did not inherit the first batch's moments


def test_patch_gradient_averaging_hand_case():
    # two 2x2 patches on a 2x3 image, overlapping in the middle column: gradients 1 and 3
    g = torch.stack([torch.ones(1, 2, 2), 3 * torch.ones(1, 2, 2)])
    avg, count = average_patch_gradients(g, torch.tensor([0, 0]), torch.tensor([0, 1]), (1, 2, 3), wrap=False)
    assert torch.equal(count, torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]]))
    assert torch.equal(avg[0], torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]))
    # wrapped: a 2x2 patch at (1, 2) of a 3x3 image covers rows {1, 2}, cols {2, 0};
    # pixel (1, 1) is uncovered -> 0
    avg, count = average_patch_gradients(
        torch.full((1, 1, 2, 2), 5.0), torch.tensor([1]), torch.tensor([2]), (1, 3, 3), wrap=True
    )
    assert count.sum() == 4 and count[1, 2] == 1 and count[2, 0] == 1 and count[1, 1] == 0
    assert avg[0, 1, 0] == 5 and avg[0, 1, 1] == 0


def test_extract_patches_wraps():
    img = torch.arange(16.0).view(1, 4, 4)
    p = extract_patches(img, torch.tensor([3]), torch.tensor([3]), 2, wrap=True)
    assert torch.equal(p[0, 0], torch.tensor([[15.0, 12.0], [3.0, 0.0]]))


@pytest.mark.parametrize("layout", ["torus", "margin"])
def test_every_position_covers_the_target_crop_uniformly(layout):
    size, patch = (6, 5), 3
    hw = working_size(size, patch, layout)
    wrap = layout == "torus"
    span = hw if wrap else (hw[0] - patch + 1, hw[1] - patch + 1)
    ys, xs = torch.meshgrid(torch.arange(span[0]), torch.arange(span[1]), indexing="ij")
    _, count = average_patch_gradients(
        torch.ones(ys.numel(), 1, patch, patch), ys.flatten(), xs.flatten(), (1, *hw), wrap=wrap
    )
    top, left = (hw[0] - size[0]) // 2, (hw[1] - size[1]) // 2
    crop = count[top : top + size[0], left : left + size[1]]
    assert torch.all(crop == patch * patch)


def test_anysize_returns_requested_size_and_raises_f():
    gen = torch.Generator().manual_seed(0)
    size = (20, 12)
    hw = working_size(size, 8, PatchLayout.TORUS)
    init = torch.rand(1, *hw, generator=gen) - 0.5
    res = synthesize_anysize(
        MeanCritic(), init, size, patch=8, patches_per_step=6, max_steps=20, generator=gen
    )
    assert res.image.shape == (1, 20, 12) and res.working.shape == (1, *hw)
    assert res.steps == 20 and not res.reached
    assert res.working.mean() > init.mean() and res.working.abs().max() <= 1
    res2 = synthesize_anysize(MeanCritic(), init, size, patch=8, tau=-5.0, generator=gen)
    assert res2.steps == 0 and res2.reached
    with pytest.raises(ValueError, match="init must be"):
        synthesize_anysize(MeanCritic(), init[:, 1:], size, patch=8, generator=gen)
