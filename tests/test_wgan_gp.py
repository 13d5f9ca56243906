"""WGAN-GP trainer and the Figure 3 comparison (paper §5.3; robust_winn.training.wgan_gp)."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from robust_winn.data.positives import ImageTensorSource
from robust_winn.experiments.figure3 import FIGURE3_ROWS, figure3_comparison
from robust_winn.models.dcgan import DCGANGenerator
from robust_winn.runtime.checkpoint import CheckpointError, load_checkpoint
from robust_winn.synthesis.ascent import critic_fn
from robust_winn.synthesis.cascade import build_critic
from robust_winn.training.unsupervised import UnsupConfig, train_unsupervised
from robust_winn.training.wgan_gp import (
    WganGpConfig,
    critic_step,
    load_wgan_gp,
    save_wgan_gp,
    train_wgan_gp,
)

SIDE = 16


def _source() -> ImageTensorSource:
    """40 deterministic 16x16 'stripe' images (no file needed)."""
    g = torch.Generator().manual_seed(0)
    base = (torch.arange(SIDE) % 4 < 2).to(torch.uint8) * 200 + 20  # (16,)
    imgs = base.view(1, 1, 1, SIDE).expand(40, 3, SIDE, SIDE).clone()
    imgs += torch.randint(0, 20, imgs.shape, generator=g, dtype=torch.uint8)
    return ImageTensorSource("stripes", imgs)


def _wgan_cfg(out: Path, **kw) -> WganGpConfig:
    base = dict(
        image_size=SIDE,
        iterations=2,
        n_critic=2,
        batch_size=4,
        gen_width=8,
        device="cpu",
        out=str(out),
        progress=False,
    )
    base.update(kw)
    return WganGpConfig(**base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny WGAN-GP and a tiny WINN-single (1 cascade) on the same 16x16 data, critic64."""
    root = tmp_path_factory.mktemp("fig3")
    rec = train_wgan_gp(_wgan_cfg(root / "wgan"), source=_source())
    winn = UnsupConfig.preset(
        "quick",
        cascades=1,
        image_size=SIDE,
        iterations=2,
        pos_per_step=10,
        ramp_max=2,
        k_passes=1,
        batch_size=10,
        init_images=20,
        new_per_iter=10,
        new_last_iter=20,
        synth_batch=10,
        synth_max_steps=3,
        pool_capacity=60,
        device="cpu",
        out=str(root / "winn"),
        progress=False,
    )
    train_unsupervised(winn, source=_source())
    return {
        "root": root,
        "wgan": root / "wgan" / "checkpoint-last.pt",
        "winn": root / "winn" / "checkpoint-last.pt",
        "record": rec,
    }


@pytest.mark.parametrize(
    ("size", "channels", "start"), [(16, 3, 4), (28, 1, 7), (64, 3, 4), (20, 1, 5), (15, 1, 15)]
)
def test_generator_shape_and_range(size: int, channels: int, start: int):
    torch.manual_seed(0)
    g = DCGANGenerator(z_dim=16, out_channels=channels, image_size=size, width=8)
    assert g.start == start
    x = g.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, channels, size, size)
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    assert x.std(dim=0).mean() > 1e-3  # different latents give different images
    z = torch.randn(3, 16, requires_grad=True)
    g(z).sum().backward()  # differentiable end to end (the generator step needs it)
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_critic_step_separates_constant_from_noise():
    torch.manual_seed(0)
    model = build_critic("critic64", (3, SIDE, SIDE))
    f = critic_fn(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.9))
    xp = torch.full((8, 3, SIDE, SIDE), 0.5)  # "real": constant images
    xn = torch.rand(8, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) * 2 - 1  # fakes: noise
    first = critic_step(f, opt, xp, xn, generator=torch.Generator().manual_seed(1))
    second = critic_step(f, opt, xp, xn, generator=torch.Generator().manual_seed(1))  # same batch, same eps
    assert second["loss"] < first["loss"]
    for _ in range(3):
        critic_step(f, opt, xp, xn, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float(f(xp).mean() - f(xn).mean()) > 0.5


def test_critic_step_rejects_non_finite():
    from robust_winn.training.supervised import NonFiniteLossError

    model = build_critic("critic64", (3, SIDE, SIDE))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.9))
    x = torch.zeros(2, 3, SIDE, SIDE)
    with pytest.raises(NonFiniteLossError):
        critic_step(lambda t: critic_fn(model)(t) * float("nan"), opt, x, x)


def test_checkpoint_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    critic = build_critic("critic64", (3, SIDE, SIDE))
    gen = DCGANGenerator(z_dim=128, out_channels=3, image_size=SIDE, width=8)
    cfg = _wgan_cfg(tmp_path)
    save_wgan_gp(tmp_path / "c.pt", critic, gen, cfg, image_shape=(3, SIDE, SIDE), tau=(0.25, 0.75))
    critic2, gen2, ckpt = load_wgan_gp(tmp_path / "c.pt")
    x = torch.rand(3, 3, SIDE, SIDE) * 2 - 1
    z = torch.randn(4, 128)
    critic.eval()
    with torch.no_grad():
        assert torch.equal(critic(x), critic2(x))
        assert torch.equal(gen(z), gen2(z))
    assert WganGpConfig.from_dict(ckpt["config"]) == cfg
    assert (ckpt["tau_min"], ckpt["tau_max"]) == (0.25, 0.75)
    with pytest.raises(CheckpointError, match="not a WGAN-GP"):
        load_wgan_gp({**ckpt, "method": "winn-unsupervised"})


def test_training_record_and_determinism(runs, tmp_path: Path):
    rec = runs["record"]
    assert rec["status"] == "completed" and rec["critic_steps"] == 4 and len(rec["history"]) == 2
    assert -1e6 < rec["tau_min"] <= rec["tau_max"] < 1e6  # finite: the window saw critic steps
    cost = rec["cost"]  # 2 iterations x 2 critic steps of 4 positives and 4 samples, 2 G steps
    assert (cost["critic_steps"], cost["generator_steps"]) == (4, 2)
    assert (cost["positives_seen"], cost["generated_images"]) == (16, 24) and cost["gpu_s"] is None
    assert 0 < cost["critic_time_s"] + cost["generator_time_s"] <= rec["wall_time_s"]
    ckpt = load_checkpoint(runs["wgan"])
    assert ckpt["method"] == "wgan-gp" and ckpt["model"]["arch"] == "critic64"
    again = train_wgan_gp(_wgan_cfg(tmp_path), source=_source())  # same seed -> same run
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in rec["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "time_s"} for h in again["history"]]
    assert (again["tau_min"], again["tau_max"]) == (rec["tau_min"], rec["tau_max"])


def test_figure3_png_has_four_rows(runs):
    out = runs["root"] / "fig"
    n = 3
    rec = figure3_comparison(runs["wgan"], runs["winn"], out, n=n, seed=0, source=_source())
    w, h = Image.open(out / "figure3.png").size
    assert (w, h) == (n * (SIDE + 2) + 2, len(FIGURE3_ROWS) * (SIDE + 2) + 2)  # save_image padding 2
    saved = json.loads((out / "figure3.json").read_text())
    assert saved["rows"] == list(FIGURE3_ROWS) == rec["rows"]
    for critic in ("wgan_gp_critic", "winn_single_critic"):
        assert set(saved["mean_f"][critic]) == set(FIGURE3_ROWS)
        assert all(torch.isfinite(torch.tensor(v)) for v in saved["mean_f"][critic].values())
    assert saved["max_steps"] == 3  # the WINN run's synth_max_steps


def test_figure3_both_ascents_start_from_the_same_p0(runs, tmp_path: Path):
    """With no ascent step the two synthesised rows are the same quantised p0 draw."""
    import numpy as np

    figure3_comparison(runs["wgan"], runs["winn"], tmp_path, n=2, seed=5, max_steps=0, source=_source())
    img = torch.from_numpy(np.asarray(Image.open(tmp_path / "figure3.png").convert("RGB")).copy())
    img = img.permute(2, 0, 1)  # (3, H, W) uint8
    row = SIDE + 2
    r3, r4 = img[:, 2 * row : 3 * row], img[:, 3 * row : 4 * row]
    assert torch.equal(r3, r4)
    assert not torch.equal(img[:, 0:row], r3)  # positives differ from p0


def test_figure3_refuses_different_architectures(runs, tmp_path: Path):
    winn = load_checkpoint(runs["winn"])
    winn["model"] = {**winn["model"], "arch": "densenet"}
    with pytest.raises(ValueError, match="same architecture"):
        figure3_comparison(runs["wgan"], winn, tmp_path, n=2, source=_source())
