"""Real 2-process gloo runs (torch.multiprocessing, forked; file:// rendezvous) on a tiny config."""

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
        dataset="sample",
        val_size=50,
        limit_train=100,
        limit_test=50,
        method="winn",
        epochs=epochs,
        batch_size=50,
        device="cpu",
        out=str(out),
        progress=False,
        eval_batch_size=50,
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
    """Start WORLD processes running ``job`` and wait for them.

    Forked, not spawned: a spawned process imports torch and robust_winn again and, at its
    first optimizer, torch._dynamo (~5 of the ~6 s a launch took in the suite); a forked one
    inherits them. Each process still has its own memory and its own gloo process group (the
    parent never has one), and sets one intra-op thread first, as DataLoader workers do. tqdm's
    monitor thread is stopped first: a fork while it held tqdm's lock would leave that lock
    taken in the children, which create (disabled) progress bars.
    """
    from tqdm import tqdm

    if tqdm.monitor is not None:
        tqdm.monitor.exit()
        tqdm.monitor = None
    init = f"file://{tmp_path / f'rendezvous-{job}-{len(list(tmp_path.iterdir()))}'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tqdm, "monitor_interval", 0)  # no new monitor thread until the children are up
        mp.start_processes(_worker, args=(init, job, args), nprocs=WORLD, join=True, start_method="fork")


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


def _train_then_eval_job(rank: int, cfg: TrainConfig, spy: str, out: str) -> None:
    """Both jobs in one process group: one launch instead of two."""
    _train_job(rank, cfg, spy, False)
    _eval_job(rank, out)


_JOBS = {"train": _train_job, "eval": _eval_job, "train+eval": _train_then_eval_job}


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


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 2-process launch: a 1-epoch WINN run, then the harness on two models."""
    tmp_path = tmp_path_factory.mktemp("dist")
    cfg = _tiny(tmp_path / "run", epochs=1)
    spy, evals = str(tmp_path / "pool"), str(tmp_path / "eval")
    _spawn(tmp_path, "train+eval", cfg, spy, evals)
    return {"cfg": cfg, "spy": spy, "eval": evals}


def test_two_process_winn_pool_identical_and_rank0_alone_writes(two_ranks: dict[str, Any]):
    cfg, spy = two_ranks["cfg"], two_ranks["spy"]
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


def test_distributed_evaluate_matches_single_process(two_ranks: dict[str, Any]):
    single = harness.evaluate(_models(), dataset="sample", limit=50, batch_size=20, device="cpu")
    for rank in range(WORLD):
        rec = json.loads(Path(f"{two_ranks['eval']}-rank{rank}.json").read_text())
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
