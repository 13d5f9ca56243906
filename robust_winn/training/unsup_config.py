"""Configuration of an unsupervised WINN run (REFERENCE §3.5-3.6), with the paper and quick presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from ..config import MAX_SEED, check_number
from ..models.appd import InitKind

__all__ = ["Preset", "UnsupConfig"]


class Preset(str, Enum):
    """Budget presets of :meth:`UnsupConfig.preset`."""

    PAPER = "paper"  # the released code's budgets (REFERENCE §3.6)
    QUICK = "quick"  # minutes on a CPU: a smoke run, not a result


@dataclass
class UnsupConfig:
    """Everything one unsupervised run depends on (defaults = the paper preset)."""

    dataset: str = "texture"  # texture | image-folder | celeba | mnist | svhn | cifar10
    image: str | None = None  # texture image file
    folder: str | None = None  # image-folder folder
    data_dir: str = "data"  # torchvision root (celeba, mnist, svhn, cifar10)
    download: bool = False  # let torchvision download (needs network)
    limit: int | None = None  # keep the first N images of a finite dataset
    image_size: int = 64  # crop / resize side (textures, folders, celeba)
    arch: str = "critic64"  # registered network with one output, or "pkg.module:factory"
    cascades: int = 4  # cascades (WINN-single: 1)
    iterations: int = 100  # iterations per cascade
    pos_per_step: int = 1000  # ramp unit: n+ = min(it + 1, ramp_max) * pos_per_step
    ramp_max: int = 5  # ramp cap (5 -> 5,000 positives)
    k_passes: int = 3  # passes over each iteration's fixed set (Alg. 1 "k")
    batch_size: int = 50  # positives per critic step, and as many negatives
    lr: float = 1e-4  # critic Adam lr
    beta1: float = 0.0  # critic Adam beta1
    beta2: float = 0.9  # critic Adam beta2
    gp_lambda: float = 10.0  # gradient-penalty weight
    init: InitKind = InitKind.APPD  # p0 of the initial pool and sampling
    init_images: int = 10_000  # images drawn from p0 at the start (pool + first init source)
    new_per_iter: int = 1000  # pseudo-negatives synthesised per iteration
    new_last_iter: int = 10_000  # ... at the last iteration of a cascade (next init source)
    synth_batch: int = 100  # images per synthesis batch (own tau, fresh Adam)
    synth_max_steps: int = 2000  # ascent step cap per batch
    synth_lr: float = 0.01  # synthesis Adam lr
    synth_beta1: float = 0.9  # synthesis Adam beta1
    synth_beta2: float = 0.999  # synthesis Adam beta2 (TF default; paper: 0.99)
    pool_capacity: int = 120_000  # most pseudo-negatives kept (FIFO; code keeps all: 446k)
    quantize: bool = True  # store S- and init sources as uint8 (the code's PNG round trip)
    seed: int = 0  # seeds everything
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs/unsup"  # output folder
    progress: bool = True  # tqdm progress bar (off anyway when not a TTY)

    @classmethod
    def preset(cls, name: Preset | str, **overrides: Any) -> UnsupConfig:
        """The ``paper`` or ``quick`` budgets, with any field overridden."""
        preset = Preset(name)
        base: dict[str, Any] = {}
        if preset is Preset.QUICK:
            base = dict(
                cascades=2,
                iterations=3,
                pos_per_step=50,
                ramp_max=2,
                k_passes=1,
                init_images=200,
                new_per_iter=50,
                new_last_iter=100,
                synth_max_steps=30,
                pool_capacity=2000,
            )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def validate(self) -> None:
        """Raise :class:`BadValueError` naming the first bad field."""
        positive = (
            "cascades",
            "iterations",
            "pos_per_step",
            "ramp_max",
            "k_passes",
            "batch_size",
            "init_images",
            "new_per_iter",
            "new_last_iter",
            "synth_batch",
            "pool_capacity",
            "image_size",
        )
        for name in positive:
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("synth_max_steps", self.synth_max_steps, low=0, integer=True)
        check_number("seed", self.seed, low=0, high=MAX_SEED, integer=True)
        for name in ("lr", "synth_lr"):
            check_number(name, getattr(self, name), low=0, low_open=True)
        InitKind(self.init)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and weights_only-safe dict."""
        d = asdict(self)
        d["init"] = InitKind(self.init).value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UnsupConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["init"] = InitKind(kw.get("init", InitKind.APPD.value))
        return cls(**kw)
