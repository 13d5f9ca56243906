"""Real 2-process gloo runs (torch.multiprocessing, file:// rendezvous) on a tiny config."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from robust_winn.attacks import harness
from robust_winn.config import SynthesisConfig, TrainConfig
from robust_winn.models import build_classifier
from robust_winn.objectives.winn import WinnObjective
from robust_winn.runtime.checkpoint import load_checkpoint
from robust_winn.runtime.distributed import DistContext, shard_bounds
from robust_winn.training import train

WORLD = 2


def _tiny(out: Path, *, epochs: int = 2) -> TrainConfig:
    return TrainConfig(
        dataset="sample", val_size=50, limit_train=100, limit_test=50, method="winn", epochs=epochs,
        batch_size=50, device="cpu", out=str(out), progress=False, eval_batch_size=50,
        synthesis=SynthesisConfig(per_class=4, init_per_class=2, max_steps=2),
    )


def _worker(rank: int, init: str, job: str, args: tuple[Any, ...]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        _JOBS[job](rank, *args)
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, job: str, *args: Any) -> None:
    init = f"file://{tmp_path / f'rendezvous-{job}-{len(list(tmp_path.iterdir()))}'}"
    mp.spawn(_worker, args=(init, job, args), nprocs=WORLD, join=True)


def _train_job(rank: int, cfg: TrainConfig, spy: str, resume: bool) -> None:
    """Train; rank 1 points at its own folder, which must stay empty; save each rank's pool."""
    if rank == 1:
        if not resume:  # a resumed run must read the checkpoint in rank 0's folder
            cfg = replace(cfg, out=cfg.out + "-rank1")
        real = WinnObjective.end_epoch
        epochs = itertools.count()  # epochs synthesised by this process

        def keep_pool(self: WinnObjective, steps: dict[str, list[float]]) -> dict[str, float]:
            out = real(self, steps)
            torch.save(self.pool.state_dict(), f"{spy}-rank{rank}-epoch{next(epochs)}.pt")
            return out

        WinnObjective.end_epoch = keep_pool  # type: ignore[method-assign]
    train(cfg, resume=resume)


def _eval_job(rank: int, out: str) -> None:
    rec = harness.evaluate(_models(), dataset="sample", limit=50, batch_size=20, device="cpu")
    Path(f"{out}-rank{rank}.json").write_text(json.dumps(rec))


_JOBS = {"train": _train_job, "eval": _eval_job}


def _models() -> dict[str, torch.nn.Module]:
    out = {}
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        out[name] = build_classifier("vanilla", image_shape=(1, 28, 28), num_classes=10)
    return out


def test_shard_bounds_cover_and_split_evenly():
    for n in (0, 1, 7, 10):
        bounds = [shard_bounds(n, DistContext(r, 3)) for r in range(3)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


def test_two_process_winn_pool_identical_and_rank0_alone_writes(tmp_path: Path):
    cfg = _tiny(tmp_path / "run", epochs=1)
    spy = str(tmp_path / "pool")
    _spawn(tmp_path, "train", cfg, spy, False)
    out = Path(cfg.out)
    for name in ("checkpoint-best.pt", "checkpoint-last.pt", "record.json", "epochs.csv"):
        assert (out / name).is_file(), name
    assert not Path(cfg.out + "-rank1").exists()  # rank 1 wrote nothing
    saved = load_checkpoint(out / "checkpoint-last.pt")
    rank1 = torch.load(f"{spy}-rank1-epoch0.pt", weights_only=True)
    assert saved["pool_state"]["count"] == rank1["count"] == [2 + 4] * 10
    assert all(torch.equal(a, b) for a, b in zip(saved["pool_state"]["bufs"], rank1["bufs"], strict=True))
    rec = json.loads((out / "record.json").read_text())
    assert rec["world_size"] == 2 and rec["cost"]["images_synthesized"] == 40
    assert rec["cost"]["classifier_steps"] == 2 and rec["cost"]["train_images"] == 100


def test_distributed_evaluate_matches_single_process(tmp_path: Path):
    single = harness.evaluate(_models(), dataset="sample", limit=50, batch_size=20, device="cpu")
    _spawn(tmp_path, "eval", str(tmp_path / "eval"))
    for rank in range(WORLD):
        rec = json.loads((tmp_path / f"eval-rank{rank}.json").read_text())
        assert rec["n"] == single["n"] == 50
        for key in ("models", "results", "correction", "worst_case", "curves"):
            assert rec[key] == single[key], key
        for key in ("forward_images", "adversarial_images"):  # summed over the two ranks
            assert rec["cost"][key] == single["cost"][key], key


@pytest.mark.slow
def test_two_process_resume_matches_uninterrupted(tmp_path: Path):
    full = _tiny(tmp_path / "full")
    _spawn(tmp_path, "train", full, str(tmp_path / "spy-full"), False)
    part = _tiny(tmp_path / "part", epochs=1)
    _spawn(tmp_path, "train", part, str(tmp_path / "spy-part"), False)
    _spawn(tmp_path, "train", replace(part, epochs=2), str(tmp_path / "spy-resume"), True)
    a = load_checkpoint(tmp_path / "full" / "checkpoint-last.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoint-last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    pools = zip(a["pool_state"]["bufs"], b["pool_state"]["bufs"], strict=True)
    assert all(torch.equal(x, y) for x, y in pools)
