"""GPU fast paths on CPU: defaults untouched, bf16 and compile fall back, channels_last agrees."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robust_winn.cli.main import main
from robust_winn.config import FastPathConfig, Precision, SynthesisConfig, TrainConfig
from robust_winn.data.datasets import load_dataset
from robust_winn.experiments import table2 as reproduce
from robust_winn.runtime.checkpoint import load_checkpoint, load_classifier
from robust_winn.runtime.distributed import DistContext
from robust_winn.training import supervised, train

FAST_LOG = "robust_winn.runtime.fastpaths"


def _tiny(out: Path) -> TrainConfig:
    """WINN on 100 real MNIST images (2 steps), 2 pseudo-negatives per class, 2 synthesis steps."""
    return TrainConfig(
        dataset="sample",
        val_size=50,
        limit_train=100,
        limit_test=50,
        method="winn",
        epochs=1,
        batch_size=50,
        device="cpu",
        out=str(out),
        progress=False,
        eval_batch_size=50,
        synthesis=SynthesisConfig(per_class=2, init_per_class=2, max_steps=2),
    )


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> TrainConfig:
    return _tiny(tmp_path / "run")


def _one_epoch(cfg: TrainConfig, name: str, tmp_path: Path, **fast: object) -> tuple[dict, Path]:
    run = replace(cfg, epochs=1, out=str(tmp_path / name), fast=FastPathConfig(**fast))
    return train(run), Path(run.out) / "checkpoint-last.pt"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The reference: one epoch on the default path (all fast paths off), trained once."""
    d = tmp_path_factory.mktemp("fastpaths")
    return _one_epoch(_tiny(d / "run"), "default", d)


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_checkpoint(a)["model_state"], load_checkpoint(b)["model_state"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == FAST_LOG and r.levelno == logging.WARNING]


def test_default_path_uses_the_model_itself(tiny_cfg: TrainConfig):
    data = load_dataset("sample", val_size=50, limit_train=100, limit_test=50)
    run = supervised.SupervisedTrainer(tiny_cfg, data, torch.device("cpu"), DistContext())
    assert run.fwd is run.model  # no wrapper, no autocast, no compile on the default path
    assert run.model.classifier.features[2].weight.is_contiguous()  # conv 32->64, not channels_last


def test_explicit_defaults_give_bit_identical_run(tiny_cfg: TrainConfig, tmp_path: Path, default_run):
    rec, ref = default_run
    _, explicit = _one_epoch(
        tiny_cfg,
        "explicit",
        tmp_path,
        precision=Precision.FLOAT32,
        channels_last=False,
        compile=False,
        pin_memory=False,
    )
    assert _same_weights(ref, explicit)
    assert rec["fast_paths"] == {
        "requested": {"precision": "float32", "channels_last": False, "compile": False, "pin_memory": None},
        "precision_used": "float32",
        "channels_last_used": False,
        "compile_used": False,
        "pin_memory_used": False,
        "notes": [],
    }


def test_bf16_on_cpu_falls_back_to_float32_with_one_warning(
    tiny_cfg: TrainConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture, default_run
):
    _, ref = default_run
    caplog.set_level(logging.WARNING)
    rec, ckpt = _one_epoch(tiny_cfg, "bf16", tmp_path, precision=Precision.BF16)
    warned = _warnings(caplog)
    assert len(warned) == 1 and "bf16" in warned[0] and "float32" in warned[0]
    fp = json.loads((Path(rec["config"]["out"]) / "record.json").read_text())["fast_paths"]
    assert fp["requested"]["precision"] == "bf16" and fp["precision_used"] == "float32"
    assert _same_weights(ref, ckpt)  # really float32: the very same run as the default


def test_compile_that_raises_falls_back_to_eager(
    tiny_cfg: TrainConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    def unavailable(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no C++ compiler toolchain")

    monkeypatch.setattr(torch, "compile", unavailable)
    caplog.set_level(logging.WARNING)
    rec, _ = _one_epoch(tiny_cfg, "nocompile", tmp_path, compile=True)
    assert rec["status"] == "completed"
    assert rec["fast_paths"]["requested"]["compile"] is True
    assert rec["fast_paths"]["compile_used"] is False
    warned = _warnings(caplog)
    assert len(warned) == 1 and "torch.compile failed" in warned[0] and "no C++ compiler" in warned[0]


def test_compile_failing_at_first_call_falls_back_once_and_matches_eager(
    tiny_cfg: TrainConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    default_run,
):
    _, ref = default_run
    calls = {"n": 0}

    def lazy_failure(fn: object, **kwargs: object) -> object:
        def compiled(x: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            raise RuntimeError("backend compiler failed")

        return compiled

    monkeypatch.setattr(torch, "compile", lazy_failure)
    caplog.set_level(logging.WARNING)
    rec, ckpt = _one_epoch(tiny_cfg, "lazy", tmp_path, compile=True)
    assert rec["status"] == "completed" and rec["fast_paths"]["compile_used"] is False
    assert calls["n"] == 1  # tried once, then eager for the rest of the run
    assert len(_warnings(caplog)) == 1
    assert _same_weights(ref, ckpt)  # the eager retry computes exactly the default run


def test_channels_last_model_and_batches_compute_the_same_logits(tiny_cfg: TrainConfig):
    data = load_dataset("sample", val_size=50, limit_train=100, limit_test=50)
    plain = supervised.SupervisedTrainer(tiny_cfg, data, torch.device("cpu"), DistContext())
    cl = supervised.SupervisedTrainer(
        replace(tiny_cfg, fast=FastPathConfig(channels_last=True)), data, torch.device("cpu"), DistContext()
    )
    conv = cl.model.classifier.features[2].weight  # conv 32->64 (C = 1 is both layouts at once)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x, _ = next(data.test.batches(50))
    xb = cl.fast.batch(x)
    assert xb.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        la, f_a = plain.fwd.logits_and_critic(x)  # (50, 10), (50,)
        lb, f_b = cl.fwd.logits_and_critic(xb)
    assert torch.allclose(la, lb, atol=1e-5, rtol=1e-5) and torch.allclose(f_a, f_b, atol=1e-6)


def test_channels_last_trains_and_predicts_like_default(tiny_cfg: TrainConfig, tmp_path: Path, default_run):
    _, ref = default_run
    rec, ckpt = _one_epoch(tiny_cfg, "cl", tmp_path, channels_last=True)
    assert rec["fast_paths"]["channels_last_used"] is True
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in rec["history"])
    x, _ = next(load_dataset("sample", val_size=50, limit_test=200).test.batches(200))
    (a, _), (b, _) = load_classifier(ref), load_classifier(ckpt)
    with torch.no_grad():
        la, lb = a(x), b(x)  # (200, 10)
    # Adam (beta1 0) turns rounding-level gradient differences into lr-sized steps, so the
    # trained weights drift by ~lr per step; the logits stay within a few hundredths.
    assert (la - lb).abs().max() < 0.05
    assert (la.argmax(1) == lb.argmax(1)).float().mean() >= 0.98


def test_cli_offers_and_validates_fast_path_options(tmp_path: Path):
    r = CliRunner().invoke(main, ["train", "--help"])
    for opt in (
        "--precision [float32|bf16]",
        "--channels-last / --no-channels-last",
        "--compile / --no-compile",
        "--pin-memory / --no-pin-memory",
    ):
        assert opt in r.output, opt
    r = CliRunner().invoke(
        main, ["train", "--dataset", "sample", "--precision", "fp16", "--out", str(tmp_path / "bad")]
    )
    assert r.exit_code == 2 and "'fp16' is not one of" in r.output
    assert not (tmp_path / "bad").exists()


def test_cli_records_requested_and_used_fast_paths(tmp_path: Path):
    out = tmp_path / "run"
    args = [
        "train",
        "--dataset",
        "sample",
        "--val-size",
        "100",
        "--limit-train",
        "100",
        "--limit-test",
        "100",
        "--batch-size",
        "50",
        "--synth-per-class",
        "2",
        "--synth-max-steps",
        "2",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--no-progress",
        "--method",
        "baseline",  # the options are recorded alike; WINN's CLI pool costs ~4 s
        "--quiet",
        "--precision",
        "bf16",
        "--channels-last",
        "--no-pin-memory",
        "--out",
        str(out),
    ]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "record.json").read_text())
    assert rec["config"]["fast"] == {
        "precision": "bf16",
        "channels_last": True,
        "compile": False,
        "pin_memory": False,
    }
    fp = rec["fast_paths"]
    assert (fp["precision_used"], fp["channels_last_used"], fp["pin_memory_used"]) == ("float32", True, False)


def test_config_round_trip_and_old_records_still_reused(
    tiny_cfg: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cfg = replace(tiny_cfg, fast=FastPathConfig(precision=Precision.BF16, compile=True, pin_memory=True))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = tiny_cfg.to_dict()
    del old["fast"]  # a record written before fast paths existed
    assert TrainConfig.from_dict(old) == tiny_cfg
    out = Path(tiny_cfg.out)
    out.mkdir(parents=True)
    (out / "record.json").write_text(
        json.dumps({"config": old, "status": "completed", "epochs_run": tiny_cfg.epochs})
    )

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("an old finished run with the same config must be reused")

    monkeypatch.setattr(reproduce, "train", must_not_train)
    assert reproduce.train_or_reuse(tiny_cfg, "cmd")["status"] == "completed"
