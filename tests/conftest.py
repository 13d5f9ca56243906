"""Shared fixtures and helpers: one intra-op thread, tiny CPU configurations on real (bundled)
MNIST, and a CliRunner helper for the ``robust-winn`` command.

The helper modules next to this file (``custom_model``, ``user_models``, ``bn_models``,
``textures``) are importable by name because ``pyproject.toml`` puts ``tests/`` on
``sys.path`` (``[tool.pytest.ini_options] pythonpath``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

from robust_winn.config import SynthesisConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# 100 training images (2 steps of 50), 100 validation and 100 test images of the bundled sample.
TINY_DATA: dict[str, Any] = {"val_size": 100, "limit_train": 100, "limit_test": 100}


def tiny_synthesis(**kw: Any) -> SynthesisConfig:
    """2 pseudo-negatives per class (2 initial ones too), at most 5 synthesis steps.

    The init generator is a DCGAN-sized network: its 100 initial images per class by default
    cost ~4 s on a CPU, and even 5 per class were a third of a tiny run's time.
    """
    return SynthesisConfig(**{"per_class": 2, "init_per_class": 2, "max_steps": 5, **kw})


def tiny_overrides(**kw: Any) -> dict[str, Any]:
    """TrainConfig overrides of a tiny run (for GridSpec/AblationSpec ``extra`` and ``replace``)."""
    return {**TINY_DATA, "batch_size": 50, "synthesis": tiny_synthesis(), **kw}


def tiny_config(out: str | Path, **kw: Any) -> TrainConfig:
    """WINN on 100 real MNIST images for 2 epochs, on the CPU, without progress bars."""
    base: dict[str, Any] = {
        "dataset": "sample",
        "method": "winn",
        "epochs": 2,
        "device": "cpu",
        "out": str(out),
        "progress": False,
        **tiny_overrides(),
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session() -> Iterator[None]:
    """One intra-op thread, also for module- and session-scoped fixtures that train or attack.

    The tests run tiny models on a shared 2-core machine: a second thread buys nothing there and,
    once the other core is busy, makes tiny models many times slower. Restored at the end.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """Every test starts with one intra-op thread, whatever an earlier test set."""
    torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> TrainConfig:
    """WINN on 100 real MNIST images for 2 epochs, 2 pseudo-negatives per class, 5 synthesis steps."""
    return tiny_config(tmp_path / "run")


def invoke(*args: Any, catch_exceptions: bool = True, **kw: Any) -> Result:
    """Run ``robust-winn ARGS...`` in-process (paths and numbers may be given as objects)."""
    from robust_winn.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=catch_exceptions, **kw)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """:func:`invoke`: ``cli("train", "--dataset", "sample", ...)`` gives click's Result."""
    return invoke


@pytest.fixture
def small_init_pool(monkeypatch: pytest.MonkeyPatch) -> list[TrainConfig]:
    """Commands that train WINN draw 2 initial pseudo-negatives per class, not 100.

    The command line cannot set ``init_per_class`` (it always asks for 100 per class: ~4 s of
    the DCGAN-sized init generator per run on a CPU). This wraps ``robust_winn.training.train``,
    which the commands call, to lower it; everything else runs as the command built it. Returns
    the configurations the commands built, unchanged, so a test can check them (and that the
    wrapper was reached).
    """
    import robust_winn.training as training

    real = training.train
    built: list[TrainConfig] = []

    def train(cfg: TrainConfig, *args: Any, **kwargs: Any) -> dict[str, Any]:
        built.append(cfg)
        return real(replace(cfg, synthesis=replace(cfg.synthesis, init_per_class=2)), *args, **kwargs)

    monkeypatch.setattr(training, "train", train)
    return built
