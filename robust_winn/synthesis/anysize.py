"""Any-size texture synthesis from a patch critic (paper §5.2 following INNg; REFERENCE §3.9).

A critic trained on 64x64 patches scores patches, not whole images. To synthesise a larger
texture, one *working image* larger than the target is optimised: every step samples
``patches_per_step`` random patch positions, computes the gradient of f for every patch, adds
each patch's gradient into the working image and divides each pixel by the number of patches
that cover it (so overlapping patches are *averaged*, not summed), then takes one Adam ascent
step on the working image and clips it to [-1, 1]. Finally the target is cropped from the
centre of the working image.

The paper leaves the details open (REFERENCE §3.9, §6.4); the choices made here:

- Patch positions (:class:`PatchLayout`). ``TORUS`` (default): the working image is treated as
  a torus (patches wrap around its edges) and positions are uniform over all of its pixels, so
  every pixel is covered with exactly equal probability -- the paper's "covered with equal
  probability" taken literally -- with the paper's 320x320 working image for a 256x256 target
  (margin = one patch). ``MARGIN``: no wrap; the working image is the target plus
  ``patch - 1`` pixels on every side and positions are uniform over the valid range, which
  also gives the centre crop uniform coverage (the paper's 320 = 256 + 64 does not).
- Optimiser: Adam as in synthesis (lr 0.01, betas (0.9, 0.999)), one moment buffer for the
  whole working image; the shared image-space optimiser
  (:class:`~robust_winn.synthesis.sampler.ImageSynthesizer`) takes the step and the clip.
- Stop rule: stop when the mean f of a step's patches reaches tau (drawn as in sampling from
  the critic's stored [tau_min, tau_max]), or after ``max_steps``.
- Initialisation: the App. D network at the working size (any start can be passed instead).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from ..errors import BadValueError
from .ascent import critic_fn
from .sampler import Evaluation, ImageSynthesizer

log = logging.getLogger(__name__)

__all__ = [
    "PatchLayout",
    "AnysizeResult",
    "working_size",
    "extract_patches",
    "average_patch_gradients",
    "synthesize_anysize",
]


class PatchLayout(str, Enum):
    """How patch positions cover the working image (see module docstring)."""

    TORUS = "torus"
    MARGIN = "margin"


@dataclass
class AnysizeResult:
    """Output of :func:`synthesize_anysize`."""

    image: Tensor  # (C, H, W) target crop in [-1, 1]
    working: Tensor  # (C, Hw, Ww) the whole working image (to continue with another critic)
    steps: int  # ascent steps run
    reached: bool  # mean patch f reached tau before max_steps
    final_mean_f: float  # mean f over the last step's patches


def working_size(size: tuple[int, int], patch: int, layout: PatchLayout | str) -> tuple[int, int]:
    """Working-image size for a target ``size`` (TORUS: + patch; MARGIN: + 2 (patch - 1))."""
    pad = patch if PatchLayout(layout) is PatchLayout.TORUS else 2 * (patch - 1)
    return size[0] + pad, size[1] + pad


def _index_grids(
    ys: Tensor, xs: Tensor, patch: int, hw: tuple[int, int], wrap: bool
) -> tuple[Tensor, Tensor]:
    """Row and column indices (P, patch, 1), (P, 1, patch) of each patch's pixels."""
    ar = torch.arange(patch, device=ys.device)
    rows = ys[:, None] + ar  # (P, patch)
    cols = xs[:, None] + ar  # (P, patch)
    if wrap:
        rows, cols = rows % hw[0], cols % hw[1]
    return rows[:, :, None], cols[:, None, :]


def extract_patches(img: Tensor, ys: Tensor, xs: Tensor, patch: int, *, wrap: bool) -> Tensor:
    """Patches (P, C, patch, patch) of ``img`` (C, H, W) with top-left corners (ys, xs)."""
    r, c = _index_grids(ys, xs, patch, (img.shape[1], img.shape[2]), wrap)
    return img[:, r, c].permute(1, 0, 2, 3)  # (C, P, p, p) -> (P, C, p, p)


def average_patch_gradients(
    grads: Tensor, ys: Tensor, xs: Tensor, shape: tuple[int, int, int], *, wrap: bool
) -> tuple[Tensor, Tensor]:
    """Scatter patch gradients into an image and average where patches overlap.

    Args:
        grads: (P, C, p, p) gradient of each patch.
        ys, xs: (P,) top-left corners.
        shape: (C, H, W) of the image.
        wrap: indices wrap around the edges (torus).

    Returns:
        (averaged gradient (C, H, W): sum over covering patches / their count, 0 where uncovered;
        coverage count (H, W)).
    """
    c, h, w = shape
    p = grads.shape[-1]
    r, col = _index_grids(ys, xs, p, (h, w), wrap)
    r, col = r.expand(-1, p, p).reshape(-1), col.expand(-1, p, p).reshape(-1)  # (P p p,)
    flat = r * w + col
    total = torch.zeros(c, h * w, dtype=grads.dtype, device=grads.device)
    total.index_add_(1, flat, grads.permute(1, 0, 2, 3).reshape(c, -1))
    count = torch.zeros(h * w, dtype=grads.dtype, device=grads.device)
    count.index_add_(0, flat, torch.ones_like(flat, dtype=grads.dtype))
    avg = total / count.clamp_min(1)
    return avg.view(c, h, w), count.view(h, w)


def synthesize_anysize(
    model: nn.Module | Callable[[Tensor], Tensor],
    init: Tensor,
    size: tuple[int, int],
    *,
    patch: int = 64,
    patches_per_step: int = 200,
    layout: PatchLayout | str = PatchLayout.TORUS,
    tau: float = float("inf"),
    max_steps: int = 2000,
    lr: float = 0.01,
    beta1: float = 0.9,
    beta2: float = 0.999,
    adam_eps: float = 1e-8,
    generator: torch.Generator,
) -> AnysizeResult:
    """Optimise one working image with averaged patch gradients, then crop the target.

    Args:
        model: patch critic (network with one output) or a function images -> (N,) scores.
        init: (C, Hw, Ww) start in [-1, 1]; its size must be :func:`working_size` of ``size``.
        size: target (H, W).
        patch: patch side the critic was trained on (64).
        patches_per_step: random patches per step (paper: 200).
        layout: patch-position scheme (:class:`PatchLayout`).
        tau: stop once the mean f of a step's patches is >= tau (inf: run ``max_steps``).
        max_steps: step cap.
        lr, beta1, beta2, adam_eps: Adam on the working image.
        generator: CPU RNG for patch positions.
    """
    layout = PatchLayout(layout)
    wrap = layout is PatchLayout.TORUS
    want = working_size(size, patch, layout)
    if tuple(init.shape[1:]) != want:
        raise BadValueError(
            f"init must be (C, {want[0]}, {want[1]}) for target {size}, got {tuple(init.shape)}"
        )
    if patches_per_step < 1:
        raise BadValueError("patches_per_step must be >= 1")
    f = critic_fn(model) if isinstance(model, nn.Module) else model
    hw = init.shape[1:]
    span = (hw[0], hw[1]) if wrap else (hw[0] - patch + 1, hw[1] - patch + 1)

    def objective(x: Tensor, idx: Tensor | None) -> Evaluation:
        """Mean f of fresh random patches; their gradients averaged into the working image."""
        del idx  # one working image (a batch of one)
        img = x[0].detach()  # (C, Hw, Ww)
        ys = torch.randint(span[0], (patches_per_step,), generator=generator).to(x.device)
        xs = torch.randint(span[1], (patches_per_step,), generator=generator).to(x.device)
        pa = extract_patches(img, ys, xs, patch, wrap=wrap).detach().requires_grad_(True)
        fp = f(pa)  # (P,)
        mean_f = float(fp.detach().mean())
        loss = -fp.sum()  # each patch's own ascent direction

        def grad() -> Tensor:
            (g,) = torch.autograd.grad(loss, pa)
            return average_patch_gradients(g, ys, xs, tuple(img.shape), wrap=wrap)[0].unsqueeze(0)

        done = torch.tensor([mean_f >= tau], device=x.device)
        return Evaluation(loss, done, mean_f, grad)

    optimiser = ImageSynthesizer(lr=lr, beta1=beta1, beta2=beta2, adam_eps=adam_eps, max_steps=max_steps)
    out = optimiser.run(init.unsqueeze(0), objective, [model] if isinstance(model, nn.Module) else [])
    x, step, mean_f, reached = out.images[0], out.steps, out.value, bool(out.converged[0])
    top, left = (hw[0] - size[0]) // 2, (hw[1] - size[1]) // 2
    crop = x[:, top : top + size[0], left : left + size[1]].clone()
    log.debug("anysize: %d steps, mean patch f %.4f (tau %.4f)", step, mean_f, tau)
    return AnysizeResult(crop, x, step, reached, mean_f)
