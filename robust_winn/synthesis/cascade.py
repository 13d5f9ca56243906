"""Sampling from a trained unsupervised WINN through its cascade chain (REFERENCE §3.7).

Sampling starts from p0 (App. D noise, quantised as the code's PNGs). For each cascade c in
turn the critic snapshot stored at the end of cascade c is loaded, and the images are pushed
up its f by the same batched early-stopping ascent as in training, with tau drawn from *that
cascade's* stored [tau_min, tau_max]; cascade c + 1 starts from cascade c's (quantised) output
(paper §5.1: "later cascades initialised with images sampled from the last cascade").

With ``size`` larger than the training patches, each image is instead synthesised by the
any-size procedure (:mod:`robust_winn.synthesis.anysize`), its working image carried from one
cascade to the next.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import BadValueError
from ..models import check_classifier, create_model, critic64, densenet, wgan_resnet  # noqa: F401  (register the critics)
from ..models.appd import InitKind, quantize_uint8, sample_p0
from ..runtime.checkpoint import CheckpointError, load_checkpoint, load_state, model_meta, require_keys
from .anysize import PatchLayout, synthesize_anysize, working_size
from .ascent import AscentSampler

log = logging.getLogger(__name__)

__all__ = ["METHOD", "build_critic", "load_chain", "generate", "save_grid"]

METHOD = "winn-unsupervised"


def build_critic(arch: str, image_shape: tuple[int, int, int], **kwargs: Any) -> nn.Module:
    """A registered (or ``pkg.module:factory``) network with one output per image, checked.

    Registered factories receive ``in_channels``, ``num_classes=1`` and ``image_size``.
    """
    c, h, _ = image_shape
    model = create_model(arch, in_channels=c, num_classes=1, image_size=h, **kwargs)
    check_classifier(model, image_shape, 1)
    return model


def load_chain(
    checkpoint: str | Path | dict[str, Any], cascades: int | str = "all"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read an unsupervised checkpoint and pick the first ``cascades`` snapshots.

    Returns:
        (checkpoint dict, snapshots [{cascade, tau_min, tau_max, model_state}, ...]).

    Raises:
        CheckpointError: not an unsupervised checkpoint, or no finished cascade.
        ValueError: ``cascades`` is neither "all" nor in 1..(finished cascades).
    """
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    if ckpt.get("method") != METHOD:
        raise CheckpointError(f"not an unsupervised WINN checkpoint (method {ckpt.get('method')!r})")
    where = checkpoint if not isinstance(checkpoint, dict) else "the checkpoint"
    require_keys(ckpt, where, ("config", "model", "cascades"))
    cfg = ckpt["config"]
    need = ("synth_max_steps", "synth_lr", "synth_beta1", "synth_beta2", "synth_batch")
    if not isinstance(cfg, dict) or any(k not in cfg for k in need):
        raise CheckpointError(f"{where}: config lacks the synthesis settings ({', '.join(need)})")
    if not all(
        isinstance(s, dict) and {"model_state", "tau_min", "tau_max", "cascade"} <= set(s)
        for s in ckpt["cascades"]
    ):
        raise CheckpointError(f"{where}: a cascade snapshot lacks model_state, tau_min, tau_max or cascade")
    snaps = list(ckpt.get("cascades", []))
    if not snaps:
        raise CheckpointError("the checkpoint holds no finished cascade yet; train at least one full cascade")
    if cascades == "all":
        return ckpt, snaps
    try:
        k = int(cascades)
    except (TypeError, ValueError) as exc:
        raise BadValueError(f"cascades must be 'all' or an integer, got {cascades!r}") from exc
    if not 1 <= k <= len(snaps):
        raise BadValueError(f"cascades must be in 1..{len(snaps)} (finished cascades), got {k}")
    return ckpt, snaps[:k]


def generate(
    checkpoint: str | Path | dict[str, Any],
    n: int,
    *,
    cascades: int | str = "all",
    size: int | tuple[int, int] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    patches_per_step: int = 200,
    layout: PatchLayout | str = PatchLayout.TORUS,
    return_trace: bool = False,
    trusted_code: Collection[str] = (),
    trust_code: bool = False,
) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Sample ``n`` images through the cascade chain (REFERENCE §3.7; any-size §3.9).

    Args:
        checkpoint: path or loaded dict of an unsupervised run.
        n: images to generate.
        cascades: "all" or how many cascades of the chain to run (WINN-single: 1).
        size: output side (or (H, W)); None = the training size. A larger size uses any-size
            synthesis with the trained patch critic.
        seed: seeds p0 and every tau.
        device: where the critic runs.
        max_steps: ascent step cap (default: the run's ``synth_max_steps``).
        patches_per_step, layout: any-size settings (:func:`synthesize_anysize`).
        return_trace: also return each cascade's output (for inspection and tests).
        trusted_code, trust_code: import strings the user allows a checkpoint to name, or all
            of them (:func:`robust_winn.runtime.checkpoint.model_meta`: a checkpoint never chooses code).

    Returns:
        (n, C, H, W) images in [-1, 1] on the CPU (and the per-cascade outputs if asked).
    """
    if n < 1:
        raise BadValueError(f"n must be >= 1, got {n}")
    ckpt, snaps = load_chain(checkpoint, cascades)
    where = checkpoint if not isinstance(checkpoint, dict) else "the checkpoint"
    meta = model_meta(ckpt, where, keys=("image_shape",), trusted_code=trusted_code, trust_code=trust_code)
    cfg = ckpt["config"]
    shape = tuple(int(s) for s in meta["image_shape"])
    steps = int(cfg["synth_max_steps"] if max_steps is None else max_steps)
    quantize = bool(cfg.get("quantize", True))
    init = InitKind(cfg.get("init", InitKind.APPD.value))
    device = torch.device(device)
    model = build_critic(meta["arch"], shape, **meta.get("kwargs", {})).to(device)
    gen = torch.Generator().manual_seed(seed)
    hw = (size, size) if isinstance(size, int) else size
    trace: list[Tensor] = []
    if hw is None or tuple(hw) == shape[1:]:
        sampler = AscentSampler(
            lr=cfg["synth_lr"],
            beta1=cfg["synth_beta1"],
            beta2=cfg["synth_beta2"],
            max_steps=steps,
            batch_size=cfg["synth_batch"],
        )
        x = sample_p0(init, n, shape, generator=gen, quantize=quantize, device=device)
        for snap in snaps:
            load_state(model, snap["model_state"], where, "critic")
            x, stats = sampler.synthesize(
                model, x, tau_min=snap["tau_min"], tau_max=snap["tau_max"], generator=gen
            )
            x = quantize_uint8(x) if quantize else x
            trace.append(x.cpu())
            log.info(
                "cascade %d: mean f %.4f, %.1f steps/batch", snap["cascade"], stats.mean_f, stats.mean_steps
            )
        out = x.cpu()
    else:
        wh = working_size((int(hw[0]), int(hw[1])), shape[1], layout)
        work = [
            sample_p0(init, 1, (shape[0], *wh), generator=gen, quantize=quantize, device=device)[0]
            for _ in range(n)
        ]
        crops: list[Tensor] = []
        for snap in snaps:
            load_state(model, snap["model_state"], where, "critic")
            crops = []
            for i in range(n):
                tau = snap["tau_min"] + (snap["tau_max"] - snap["tau_min"]) * float(
                    torch.rand((), generator=gen)
                )
                res = synthesize_anysize(
                    model,
                    work[i],
                    (int(hw[0]), int(hw[1])),
                    patch=shape[1],
                    patches_per_step=patches_per_step,
                    layout=layout,
                    tau=tau,
                    max_steps=steps,
                    lr=cfg["synth_lr"],
                    beta1=cfg["synth_beta1"],
                    beta2=cfg["synth_beta2"],
                    generator=gen,
                )
                work[i] = quantize_uint8(res.working) if quantize else res.working
                crops.append(quantize_uint8(res.image) if quantize else res.image)
            trace.append(torch.stack(crops).cpu())
        out = torch.stack(crops).cpu()
    return (out, trace) if return_trace else out


def save_grid(images: Tensor, path: str | Path, *, nrow: int | None = None) -> Path:
    """Write [-1, 1] images (N, C, H, W) as one PNG grid (torchvision ``save_image``)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    save_image((images.float().clamp(-1, 1) + 1) / 2, str(path), nrow=nrow, padding=2)
    return path
