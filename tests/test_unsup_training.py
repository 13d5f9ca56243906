"""Unsupervised WINN trainer (Alg. 1, REFERENCE §3.4-3.6): records, exact resume, cascades."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from textures import texture_image

from robust_winn.data.positives import ImageTensorSource, TextureCrops, load_positives, read_image
from robust_winn.runtime.checkpoint import load_checkpoint
from robust_winn.synthesis.ascent import AscentSampler, critic_fn
from robust_winn.synthesis.cascade import build_critic, generate, load_chain
from robust_winn.training.unsup_config import TauFrom
from robust_winn.training.unsupervised import Preset, UnsupConfig, train_unsupervised

BRICK = texture_image()


def tiny(out: Path, **kw) -> UnsupConfig:
    """2 cascades x 2 iterations of 16x16 brick crops; a fraction of a second on a CPU.

    The critic is the small vanilla CNN: what is tested here (records, exact resume, cascades)
    does not depend on it, and critic64 costs 7x as much. critic64 is trained by
    test_unsup_cli.py (the CLI default) and test_wgan_gp.py (Figure 3).
    """
    base = dict(
        arch="vanilla",
        image=str(BRICK),
        image_size=16,
        cascades=2,
        iterations=2,
        pos_per_step=10,
        ramp_max=2,
        k_passes=2,
        batch_size=10,
        init_images=20,
        new_per_iter=10,
        new_last_iter=20,
        synth_batch=10,
        synth_max_steps=3,
        pool_capacity=60,
        device="cpu",
        out=str(out),
        progress=False,
    )
    base.update(kw)
    return UnsupConfig.preset("quick", **base)


def _strip(hist):
    return [{k: v for k, v in h.items() if not k.endswith("time_s")} for h in hist]


def _same_checkpoints(a: dict, b: dict) -> None:
    for key in ("model_state", "init_source"):
        va, vb = a[key], b[key]
        if isinstance(va, dict):
            assert va.keys() == vb.keys() and all(torch.equal(va[k], vb[k]) for k in vb), key
        else:
            assert torch.equal(va, vb), key
    assert all(
        torch.equal(x, y) for x, y in zip(a["pool_state"]["bufs"], b["pool_state"]["bufs"], strict=True)
    )
    for sa, sb in zip(a["cascades"], b["cascades"], strict=True):
        assert all(torch.equal(sa["model_state"][k], sb["model_state"][k]) for k in sb["model_state"])


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted tiny run (2 cascades x 2 iterations), trained once for the module, with
    every synthesis call recorded: (start images, result, tau_min, tau_max)."""
    out = tmp_path_factory.mktemp("unsup") / "full"
    calls = []
    orig = AscentSampler.synthesize

    def spy(self, model, x0, **kw):
        x, st = orig(self, model, x0, **kw)
        calls.append((x0.clone(), x.clone(), kw["tau_min"], kw["tau_max"]))
        return x, st

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AscentSampler, "synthesize", spy)
        rec = train_unsupervised(tiny(out))
    return {"out": out, "record": rec, "calls": calls, "ckpt": load_checkpoint(out / "checkpoint-last.pt")}


def test_presets():
    p = UnsupConfig.preset(Preset.PAPER)
    assert (p.cascades, p.iterations, p.new_per_iter, p.new_last_iter, p.synth_max_steps, p.k_passes) == (
        4,
        100,
        1000,
        10_000,
        2000,
        3,
    )
    assert (p.pos_per_step, p.ramp_max, p.batch_size, p.lr, p.beta1, p.beta2, p.gp_lambda) == (
        1000,
        5,
        50,
        1e-4,
        0.0,
        0.9,
        10.0,
    )
    assert (p.synth_lr, p.synth_beta1, p.synth_beta2, p.synth_batch) == (0.01, 0.9, 0.999, 100)
    q = UnsupConfig.preset("quick", cascades=1)
    assert q.cascades == 1 and q.iterations < p.iterations
    assert UnsupConfig.from_dict(q.to_dict()) == q
    with pytest.raises(ValueError, match="k_passes"):
        UnsupConfig.preset("quick", k_passes=0).validate()


def test_cpu_preset_validates_builds_its_critic_and_leaves_paper_alone():
    c, p = UnsupConfig.preset(Preset.CPU), UnsupConfig.preset(Preset.PAPER)
    c.validate()
    assert p == UnsupConfig() and p.arch == "critic64" and p.synth_lr == 0.01 and p.cascades == 4
    assert c.arch == "critic64-half" and build_critic(c.arch, (3, c.image_size, c.image_size))
    assert c.cascades * c.iterations < p.cascades * p.iterations and c.synth_max_steps < p.synth_max_steps
    same = ("image_size", "batch_size", "lr", "beta1", "beta2", "gp_lambda", "init", "synth_batch")
    assert all(getattr(c, k) == getattr(p, k) for k in same)  # the paper's except the budgets and width
    assert UnsupConfig.from_dict(c.to_dict()) == c


def _tau_runs(tmp_path: Path, tau_from: str) -> list[tuple[float, float, float, float]]:
    """A tiny run; per synthesis call: (tau_min, tau_max) given, and min / max of the f+ batch
    means of that iteration's positives under the critic synthesis runs on."""
    draws, seen = [], []
    orig_draw, orig_synth = TextureCrops.draw, AscentSampler.synthesize

    def draw(self, n, *, generator):
        draws.append(orig_draw(self, n, generator=generator))
        return draws[-1]

    def synth(self, model, x0, **kw):
        with torch.no_grad():
            means = [float(critic_fn(model)(b).mean()) for b in draws[-1].split(10)]  # batch_size 10
        seen.append((kw["tau_min"], kw["tau_max"], min(means), max(means)))
        return orig_synth(self, model, x0, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TextureCrops, "draw", draw)
        mp.setattr(AscentSampler, "synthesize", synth)
        train_unsupervised(tiny(tmp_path / tau_from, tau_from=tau_from))
    return seen


def test_tau_from_final_takes_the_range_under_the_final_critic(tmp_path: Path) -> None:
    """--tau-from final: [tau_min, tau_max] are the f+ batch means under the critic that
    synthesises; the code's default records them between updates, so its range differs."""
    assert UnsupConfig().tau_from is TauFrom.TRAINING  # the paper preset keeps the code's rule
    final = _tau_runs(tmp_path, "final")
    assert len(final) == 4
    for lo, hi, f_lo, f_hi in final:
        assert (lo, hi) == pytest.approx((f_lo, f_hi), rel=1e-6, abs=1e-6)
    training = _tau_runs(tmp_path, "training")
    assert any((lo, hi) != pytest.approx((f_lo, f_hi), rel=1e-3) for lo, hi, f_lo, f_hi in training)
    cfg = tiny(tmp_path, tau_from="final")
    assert UnsupConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["tau_from"] == "final"
    old = {k: v for k, v in cfg.to_dict().items() if k != "tau_from"}  # a run from before the knob
    assert UnsupConfig.from_dict(old).tau_from is TauFrom.TRAINING


def test_run_writes_checkpoint_record_and_resume_is_exact(tmp_path: Path, full: dict):
    ckpt, full = full["ckpt"], full["record"]
    assert full["status"] == "completed" and full["cascades_done"] == 2 and full["iterations_run"] == 4
    hist = full["history"]
    # ramp min(it+1, ramp_max) * pos_per_step, restarting every cascade; 2 passes of 10-image batches
    assert [h["n_pos"] for h in hist] == [10, 20, 10, 20]
    assert [h["critic_steps"] for h in hist] == [2, 4, 2, 4]
    assert [h["n_new"] for h in hist] == [10, 20, 10, 20]
    assert [h["pool_size"] for h in hist] == [30, 50, 60, 60]  # 20 init + new, capped at 60
    assert all(h["tau_min"] <= h["tau_max"] for h in hist)
    # cost accounting (issue 5): sums of the history; each image takes 0..max_steps steps
    cost = full["cost"]
    assert cost["critic_steps"] == 12 and cost["images_synthesized"] == 60
    assert cost["positives_seen"] == 60 * 2  # 2 passes over the positives
    assert 0 < cost["synth_image_steps"] <= 60 * tiny(tmp_path / "x").synth_max_steps
    assert cost["synth_image_steps"] == sum(h["synth_image_steps"] for h in hist)
    assert cost["classify_time_s"] > 0 and cost["synth_time_s"] > 0 and cost["gpu_s"] is None
    assert all(h["classify_time_s"] + h["synth_time_s"] <= h["time_s"] for h in hist)
    out = Path(full["config"]["out"])
    rows = list(csv.DictReader((out / "iterations.csv").open()))
    assert len(rows) == 4 and json.loads((out / "record.json").read_text())["status"] == "completed"
    assert [s["cascade"] for s in ckpt["cascades"]] == [1, 2]
    assert ckpt["cascades"][1]["tau_max"] == hist[3]["tau_max"]
    assert ckpt["init_source"].dtype == torch.uint8 and ckpt["init_source"].shape == (20, 3, 16, 16)

    part = train_unsupervised(tiny(tmp_path / "part"), stop_after=3)  # interrupted mid-cascade 2
    assert part["status"] == "stopped" and part["iterations_run"] == 3
    resumed = train_unsupervised(tiny(tmp_path / "part"), resume=True)
    assert resumed["status"] == "completed" and _strip(resumed["history"]) == _strip(hist)
    _same_checkpoints(load_checkpoint(tmp_path / "part" / "checkpoint-last.pt"), ckpt)


def test_ctrl_c_mid_iteration_keeps_last_checkpoint_and_resumes_exactly(tmp_path, monkeypatch, full):
    """Ctrl-C in the third synthesis (cascade 2, iteration 1): iterations 1-2 are kept, and the
    resumed run equals the uninterrupted one."""
    from robust_winn.training import unsupervised as mod

    orig, calls = mod.UnsupervisedTrainer.synthesis_step, []

    def interrupt_third(self, *a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return orig(self, *a, **kw)

    monkeypatch.setattr(mod.UnsupervisedTrainer, "synthesis_step", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        train_unsupervised(tiny(tmp_path / "int"))
    rec = json.loads((tmp_path / "int" / "record.json").read_text())
    assert rec["status"] == "interrupted" and rec["iterations_run"] == 2
    assert len(load_checkpoint(tmp_path / "int" / "checkpoint-last.pt")["history"]) == 2
    monkeypatch.setattr(mod.UnsupervisedTrainer, "synthesis_step", orig)
    resumed = train_unsupervised(tiny(tmp_path / "int"), resume=True)
    assert _strip(resumed["history"]) == _strip(full["record"]["history"])
    _same_checkpoints(load_checkpoint(tmp_path / "int" / "checkpoint-last.pt"), full["ckpt"])


def test_resume_errors(tmp_path: Path, full: dict):
    from robust_winn.errors import ResumeError

    with pytest.raises(ResumeError, match="no run to continue"):
        train_unsupervised(tiny(tmp_path / "none"), resume=True)
    shutil.copytree(full["out"], tmp_path / "r")
    with pytest.raises(ResumeError, match="arch"):
        train_unsupervised(tiny(tmp_path / "r", arch="densenet", cascades=3), resume=True)
    train_unsupervised(tiny(tmp_path / "s", cascades=1, iterations=3), stop_after=2)
    with pytest.raises(ResumeError, match=r"iterations \(run: 3, asked: 2\)"):
        train_unsupervised(tiny(tmp_path / "s", cascades=1, iterations=2), resume=True)


def test_cascades_chain_in_training_and_sampling(monkeypatch: pytest.MonkeyPatch, full: dict):
    # training: call 2 is cascade 1's last iteration; every start of cascade 2 is one of its outputs
    assert len(full["calls"]) == 4
    last_c1 = full["calls"][1][1]
    rows = {tuple(r.flatten().tolist()) for r in ((last_c1.clamp(-1, 1) + 1) * 127.5).round()}
    for start in full["calls"][2][0]:
        assert tuple(((start + 1) * 127.5).round().flatten().tolist()) in rows
    calls = []
    orig = AscentSampler.synthesize

    def spy(self, model, x0, **kw):
        x, st = orig(self, model, x0, **kw)
        calls.append((x0.clone(), x.clone(), kw["tau_min"], kw["tau_max"]))
        return x, st

    monkeypatch.setattr(AscentSampler, "synthesize", spy)
    ckpt = full["ckpt"]
    out, trace = generate(ckpt, 5, return_trace=True)
    assert len(calls) == 2 and len(trace) == 2 and torch.equal(out, trace[1])
    assert torch.equal(calls[1][0], trace[0])  # cascade 2 starts from cascade 1's (quantised) samples
    for (_, _, lo, hi), snap in zip(calls, ckpt["cascades"], strict=True):
        assert (lo, hi) == (snap["tau_min"], snap["tau_max"])  # each cascade's own tau range
    one = generate(ckpt, 5, cascades=1)
    assert torch.equal(one, trace[0]) and out.shape == (5, 3, 16, 16) and out.abs().max() <= 1
    big = generate(ckpt, 2, size=24, patches_per_step=4, max_steps=2)
    assert big.shape == (2, 3, 24, 24)
    with pytest.raises(ValueError, match="1..2"):
        load_chain(ckpt, 3)


def test_texture_size_scales_the_photo_before_cropping(tmp_path: Path) -> None:
    """--texture-size N: the shorter side becomes N (aspect kept), crops come from the scaled photo."""
    from PIL import Image

    wide = tmp_path / "wide.png"
    Image.fromarray(read_image(BRICK).permute(1, 2, 0).numpy()).resize((96, 48)).save(wide)
    tex = load_positives("texture", image=wide, size=16, texture_size=24)
    assert isinstance(tex, TextureCrops) and tuple(tex.image.shape) == (3, 24, 48)
    assert torch.equal(tex.image, read_image(wide, shorter_side=24))
    assert tuple(load_positives("texture", image=wide, size=16).image.shape) == (3, 48, 96)  # default
    with pytest.raises(ValueError, match="after --texture-size, smaller than the 32x32 crop"):
        load_positives("texture", image=wide, size=32, texture_size=16)
    with pytest.raises(ValueError, match="texture size"):
        load_positives("texture", image=wide, size=16, texture_size=0)
    cfg = tiny(tmp_path / "run", texture_size=24)
    assert cfg.load_positives().image.shape[1] == 24 and UnsupConfig.from_dict(cfg.to_dict()) == cfg


def test_positive_sources(tmp_path: Path):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    tex = load_positives("texture", image=BRICK, size=16)
    assert isinstance(tex, TextureCrops) and tex.image_shape == (3, 16, 16)
    x = tex.draw(7, generator=gen)
    assert x.shape == (7, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    full = read_image(BRICK)  # a crop must be one of the image's 16x16 windows
    c = ((tex.draw(1, generator=torch.Generator().manual_seed(5))[0] + 1) * 127.5).round().to(torch.uint8)
    windows = full.unfold(1, 16, 1).unfold(2, 16, 1)  # (C, H', W', 16, 16)
    assert (windows == c[:, None, None]).flatten(3).all(3).all(0).any()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (80 * i, 0, 0)).save(folder / f"{i}.png")
    src = load_positives("image-folder", folder=folder, size=16)
    assert isinstance(src, ImageTensorSource) and len(src) == 3
    drawn = src.draw(3, generator=gen)  # without replacement: each image once
    assert sorted(drawn[:, 0, 0, 0].tolist()) == sorted(
        src.images[:, 0, 0, 0].float().div(127.5).sub(1).tolist()
    )
    assert src.draw(5, generator=gen).shape == (5, 3, 16, 16)  # with replacement past the set size
    with pytest.raises(ValueError, match="choose one of"):
        load_positives("lsun")
    with pytest.raises(ValueError, match="--image"):
        load_positives("texture")
