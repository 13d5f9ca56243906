"""Paper Figure 3 (§5.3; REFERENCE §3.8): is a WGAN-GP discriminator itself a generator?

Images are synthesised from a WGAN-GP critic (:mod:`robust_winn.training.wgan_gp`) alone by the
gradient ascent WINN samples with, next to the ascent on a WINN-single critic of the same
architecture: same p0 draw (App. D network, same seed), same :class:`AscentSampler` settings, so
the two rows differ only in the critic.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..data.positives import PositiveSource
from ..errors import BadValueError
from ..models.appd import InitKind, quantize_uint8, sample_p0
from ..runtime.checkpoint import model_meta
from ..synthesis.ascent import AscentSampler, critic_fn
from ..synthesis.cascade import build_critic, generate, load_chain, save_grid
from ..training.unsup_config import UnsupConfig
from ..training.wgan_gp import WganGpConfig, load_wgan_gp

log = logging.getLogger(__name__)

__all__ = ["FIGURE3_ROWS", "figure3_comparison"]

FIGURE3_ROWS = ("positives", "wgan_gp_generator", "wgan_gp_critic_ascent", "winn_single_ascent")


@torch.no_grad()
def _mean_f(model: nn.Module, x: Tensor) -> float:
    model.eval()
    return float(critic_fn(model)(x).mean())


def figure3_comparison(
    wgan_checkpoint: str | Path | dict[str, Any],
    winn_checkpoint: str | Path | dict[str, Any],
    out_dir: str | Path,
    *,
    n: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    source: PositiveSource | None = None,
) -> dict[str, Any]:
    """Paper Figure 3 (§5.3): ascent on a WGAN-GP critic vs on WINN-single, same architecture.

    Writes ``out_dir/figure3.png`` (4 rows of ``n``: :data:`FIGURE3_ROWS`) and
    ``out_dir/figure3.json`` (rows, mean f of every row under both critics, tau ranges, ascent
    statistics). Both ascents start from the same p0 draw (seeded by ``seed``) and use the WINN
    run's sampler settings; WINN-single goes through :func:`~robust_winn.synthesis.cascade.generate`
    with its first cascade, as ``robust-winn generate --cascades 1`` does.

    Args:
        wgan_checkpoint: path or dict of :func:`train_wgan_gp`'s checkpoint.
        winn_checkpoint: path or dict of a :func:`train_unsupervised` checkpoint (WINN-single).
        out_dir: folder for the PNG and JSON.
        n: images per row.
        seed: seeds positives, generator latents, p0 and the thresholds.
        device: where the critics run.
        max_steps: ascent step cap (default: the WINN run's ``synth_max_steps``).
        source: positives (default: rebuilt from the WGAN-GP run's config).

    Returns:
        The JSON record.

    Raises:
        ValueError: the two critics differ in architecture or image shape.
    """
    device = torch.device(device)
    critic, gen, wckpt = load_wgan_gp(wgan_checkpoint, device)
    ickpt, snaps = load_chain(winn_checkpoint, 1)
    shape = tuple(int(s) for s in wckpt["model"]["image_shape"])
    if ickpt["model"]["arch"] != wckpt["model"]["arch"] or tuple(ickpt["model"]["image_shape"]) != shape:
        raise BadValueError(
            f"Figure 3 needs the same architecture: WGAN-GP critic {wckpt['model']['arch']} "
            f"{list(shape)} vs WINN {ickpt['model']['arch']} {list(ickpt['model']['image_shape'])}"
        )
    if source is None:
        c = WganGpConfig.from_dict(wckpt["config"])
        source = c.load_positives()
    ucfg = UnsupConfig.from_dict(ickpt["config"])
    steps = ucfg.synth_max_steps if max_steps is None else max_steps
    gen_rng = torch.Generator().manual_seed(seed)
    pos = source.draw(n, generator=gen_rng).to(device)
    fake = gen.sample(n, generator=gen_rng)
    # WGAN-GP critic ascent: the same p0 draw and sampler as generate() below.
    p0_rng = torch.Generator().manual_seed(seed)
    x0 = sample_p0(InitKind(ucfg.init), n, shape, generator=p0_rng, quantize=ucfg.quantize, device=device)
    sampler = AscentSampler(
        lr=ucfg.synth_lr,
        beta1=ucfg.synth_beta1,
        beta2=ucfg.synth_beta2,
        max_steps=steps,
        batch_size=ucfg.synth_batch,
    )
    tau_w = (float(wckpt["tau_min"]), float(wckpt["tau_max"]))
    x_w, st_w = sampler.synthesize(critic, x0, tau_min=tau_w[0], tau_max=tau_w[1], generator=p0_rng)
    x_w = quantize_uint8(x_w) if ucfg.quantize else x_w
    x_i = cast(Tensor, generate(ickpt, n, cascades=1, seed=seed, device=device, max_steps=steps)).to(device)
    imeta = model_meta(ickpt, "the WINN-single checkpoint", keys=("image_shape",))
    winn = build_critic(imeta["arch"], shape, **imeta.get("kwargs", {})).to(device)
    winn.load_state_dict(snaps[0]["model_state"])
    rows = dict(zip(FIGURE3_ROWS, (pos, fake, x_w, x_i), strict=True))
    mean_f = {
        name: {row: _mean_f(model, x) for row, x in rows.items()}
        for name, model in (("wgan_gp_critic", critic), ("winn_single_critic", winn))
    }
    out = Path(out_dir)
    png = save_grid(torch.cat(list(rows.values())).cpu(), out / "figure3.png", nrow=n)
    record = {
        "png": str(png),
        "rows": list(FIGURE3_ROWS),
        "n_per_row": n,
        "image_shape": list(shape),
        "arch": wckpt["model"]["arch"],
        "seed": seed,
        "max_steps": steps,
        "init": InitKind(ucfg.init).value,
        "mean_f": mean_f,
        "tau": {
            "wgan_gp_critic": list(tau_w),
            "winn_single_critic": [float(snaps[0]["tau_min"]), float(snaps[0]["tau_max"])],
        },
        "wgan_gp_critic_ascent": {"mean_steps": st_w.mean_steps, "max_steps_hit": st_w.max_steps_hit},
        "wgan_gp_critic_steps": len(wckpt.get("history", [])) * int(wckpt["config"]["n_critic"]),
        "winn_single_iterations": len(ickpt.get("history", [])),
    }
    (out / "figure3.json").write_text(json.dumps(record, indent=2))
    log.info("Figure 3 written to %s; mean f %s", png, mean_f)
    return record
