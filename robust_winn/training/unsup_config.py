"""Configuration of an unsupervised WINN run (REFERENCE §3.5-3.6), with the paper, quick and cpu presets.

Each field declares its help, range and quick- and cpu-preset values once
(:func:`robust_winn.config.knob`, issue 12 §2); the dataclass default is the paper value. The cpu
preset is ours (issue 15): the paper's 64x64 texture mode with the half-width critic
(``critic64-half``), 6 cascades of 8 iterations and a 100-step ascent cap, well under an hour per
texture on 2 CPU cores; results/textures/search.md holds the measurements it was chosen by.
``robust-winn train-unsupervised`` is generated from these fields (:mod:`robust_winn.cli.knobs`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from ..config import MAX_SEED, check_fields, knob
from ..data.positives import PositiveSource, UnsupDataset, load_positives
from ..models.appd import InitKind

__all__ = ["PositivesConfig", "Preset", "TauFrom", "UnsupConfig"]


class Preset(str, Enum):
    """Budget presets of :meth:`UnsupConfig.preset`."""

    PAPER = "paper"  # the released code's budgets (REFERENCE §3.6)
    QUICK = "quick"  # minutes on a CPU: a smoke run, not a result
    CPU = "cpu"  # textures on 2 CPU cores (issue 15): ours, chosen by texture SWD vs wall time


class TauFrom(str, Enum):
    """Where an iteration's synthesis threshold range [tau_min, tau_max] comes from (REFERENCE §3.6)."""

    TRAINING = "training"  # f+ batch means, each right after its update, in the last pass (code)
    FINAL = "final"  # f+ batch means of the same positives under the critic after its last update


_DATASETS = tuple(d.value for d in UnsupDataset)


@dataclass
class PositivesConfig:
    """Where the positives of an unsupervised run come from (REFERENCE §3.1); shared by WINN and WGAN-GP."""

    dataset: str = field(
        default="texture",
        metadata=knob(
            "Positives: random crops of one texture image, a folder of images, CelebA (centre crop + "
            "resize), or the training images of a dataset.",
            cli={"choices": _DATASETS, "required": True},
        ),
    )  # a run given its own `source` may name any
    image: str | None = field(
        default=None, metadata=knob("Texture image file (--dataset texture).", cli={"path": "file"})
    )
    folder: str | None = field(
        default=None, metadata=knob("Image folder (--dataset image-folder).", cli={"path": "dir"})
    )
    data_dir: str = field(
        default="data",
        metadata=knob("torchvision root for celeba, mnist, svhn, cifar10.", cli={"path": "dir"}),
    )
    download: bool = field(
        default=False, metadata=knob("Let torchvision download missing files (needs network).", cli=False)
    )
    limit: int | None = field(
        default=None, metadata=knob("Keep the first N images of a finite dataset.", low=1)
    )
    image_size: int = field(
        default=64,
        metadata=knob("Crop side (texture) or image side (image-folder, celeba).", low=1, cli={"low": 16}),
    )
    texture_size: int | None = field(
        default=None,
        metadata=knob(
            "Scale the texture image (Lanczos, aspect kept) so its shorter side is N before "
            "cropping; the paper crops 64x64 patches from 256x256 textures (§5.2) [default: the "
            "file's size].",
            low=16,
        ),
    )

    def load_positives(self) -> PositiveSource:
        """The positives these settings name (:func:`robust_winn.data.positives.load_positives`)."""
        return load_positives(
            self.dataset,
            image=self.image,
            folder=self.folder,
            data_dir=self.data_dir,
            size=self.image_size,
            download=self.download,
            limit=self.limit,
            texture_size=self.texture_size,
        )


@dataclass
class UnsupConfig(PositivesConfig):
    """Everything one unsupervised run depends on (defaults = the paper preset)."""

    arch: str = field(
        default="critic64",
        metadata=knob(
            "Registered network with one output (critic64, wgan_resnet32, densenet, ...) or "
            "'pkg.module:factory'.",
            presets={"cpu": "critic64-half"},
        ),
    )
    cascades: int = field(
        default=4, metadata=knob("Cascades (WINN-single: 1).", low=1, presets={"quick": 2, "cpu": 6})
    )
    iterations: int = field(
        default=100, metadata=knob("Iterations per cascade.", low=1, presets={"quick": 3, "cpu": 8})
    )
    pos_per_step: int = field(
        default=1000,
        metadata=knob("Ramp unit: min(it+1, ramp)*N positives.", low=1, presets={"quick": 50, "cpu": 100}),
    )
    ramp_max: int = field(
        default=5,
        metadata=knob(
            "Ramp cap: at most ramp_max * pos_per_step positives per iteration.",
            low=1,
            presets={"quick": 2, "cpu": 2},
        ),
    )
    k_passes: int = field(
        default=3,
        metadata=knob(
            "Passes over each iteration's fixed set (Alg. 1 'k').", low=1, presets={"quick": 1, "cpu": 2}
        ),
    )
    batch_size: int = field(
        default=50, metadata=knob("Positives per critic step, and as many negatives.", low=1, cli=False)
    )
    lr: float = field(default=1e-4, metadata=knob("Critic Adam lr.", low=0, low_open=True, cli=False))
    beta1: float = field(default=0.0, metadata=knob("Critic Adam beta1.", low=0, high=1, cli=False))
    beta2: float = field(default=0.9, metadata=knob("Critic Adam beta2.", low=0, high=1, cli=False))
    gp_lambda: float = field(default=10.0, metadata=knob("Gradient-penalty weight.", low=0, cli=False))
    init: InitKind = field(
        default=InitKind.APPD,
        metadata=knob("p0 of the initial pool and of sampling: appd (App. D network) or gaussian."),
    )
    init_images: int = field(
        default=10_000,
        metadata=knob(
            "Initial p0 images (pool and first init source).", low=1, presets={"quick": 200, "cpu": 500}
        ),
    )
    new_per_iter: int = field(
        default=1000,
        metadata=knob(
            "Pseudo-negatives synthesised per iteration.", low=1, presets={"quick": 50, "cpu": 100}
        ),
    )
    new_last_iter: int = field(
        default=10_000,
        metadata=knob(
            "... at a cascade's last iteration (the next cascade's init source).",
            low=1,
            presets={"quick": 100, "cpu": 200},
        ),
    )
    tau_from: TauFrom = field(
        default=TauFrom.TRAINING,
        metadata=knob(
            "Synthesis threshold range: training = min/max of the f+ batch means recorded after "
            "each update of the last pass (released code); final = min/max of the same batches' "
            "f+ means under the critic after its last update (ours: with few updates per "
            "iteration the critic's free offset drifts between them and widens the range)."
        ),
    )
    synth_batch: int = field(
        default=100, metadata=knob("Images per synthesis batch (own tau, fresh Adam).", low=1, cli=False)
    )
    synth_max_steps: int = field(
        default=2000, metadata=knob("Ascent step cap per batch.", low=0, presets={"quick": 30, "cpu": 100})
    )
    synth_lr: float = field(
        default=0.01,
        metadata=knob("Synthesis Adam lr.", low=0, low_open=True, cli=False, presets={"cpu": 0.02}),
    )
    synth_beta1: float = field(default=0.9, metadata=knob("Synthesis Adam beta1.", low=0, high=1, cli=False))
    synth_beta2: float = field(
        default=0.999,
        metadata=knob("Synthesis Adam beta2 (TF default; paper: 0.99).", low=0, high=1, cli=False),
    )
    pool_capacity: int = field(
        default=120_000,
        metadata=knob(  # the code keeps all: 446k
            "Most pseudo-negatives kept (FIFO).", low=1, presets={"quick": 2000, "cpu": 5000}
        ),
    )
    quantize: bool = field(
        default=True,
        metadata=knob(
            "Store pseudo-negatives and init sources as uint8 (the code's PNG round trip).",
            cli={"invert": True, "help": "Keep pseudo-negatives as float32 (code: 8-bit PNGs)."},
        ),
    )
    seed: int = field(default=0, metadata=knob("Seeds everything.", low=0, high=MAX_SEED))
    device: str = field(default="auto", metadata=knob("auto, cpu, cuda or cuda:N.", cli={"device": True}))
    out: str = field(
        default="runs/unsup",
        metadata=knob(
            "Output folder: checkpoint-last.pt, record.json, iterations.csv.",
            cli={"path": "dir", "required": True},
        ),
    )
    progress: bool = field(
        default=True,
        metadata=knob(
            "tqdm progress bar (off anyway when not a TTY).",
            cli={"invert": True, "help": "Hide the progress bar (hidden anyway when not a TTY)."},
        ),
    )

    @classmethod
    def preset(cls, name: Preset | str, **overrides: Any) -> UnsupConfig:
        """The ``paper``, ``quick`` or ``cpu`` budgets, with any field overridden (``None``: the preset's).

        A field's quick and cpu values are declared with the field (``knob(presets=...)``);
        ``paper`` is the dataclass default.
        """
        preset = Preset(name)
        base = {
            f.name: f.metadata["presets"][preset.value]
            for f in fields(cls)
            if preset.value in f.metadata.get("presets", {})
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def validate(self) -> None:
        """Raise :class:`BadValueError` naming the first field out of its declared range."""
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and weights_only-safe dict."""
        d = asdict(self)
        d["init"] = InitKind(self.init).value
        d["tau_from"] = TauFrom(self.tau_from).value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UnsupConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["init"] = InitKind(kw.get("init", InitKind.APPD.value))
        kw["tau_from"] = TauFrom(kw.get("tau_from", TauFrom.TRAINING.value))  # older runs: the code's
        return cls(**kw)
