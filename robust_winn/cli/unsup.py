"""Unsupervised WINN commands: ``train-unsupervised``, ``generate``, ``score``.

Thin (DESIGN §1): parse, build an :class:`UnsupConfig`, call one library function. The command
objects are :data:`train_unsupervised_cmd`, :data:`generate_cmd` and :data:`score_cmd`; the main
``robust-winn`` group registers them. Bad input (a :class:`robust_winn.errors.UserError`)
ends with one ``Error:`` line and exit code 2 through the main group; output paths and the
scoring classifier are checked before any image is generated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import torch

from ..errors import BadValueError, DataUnavailableError, one_line
from ..runtime.rundir import check_writable_file
from ..synthesis.anysize import PatchLayout
from ..training.unsup_config import Preset, UnsupConfig
from .common import (
    SEED,
    RobustWinnCommand,
    command_line,
    device_option_check,
    overwrite_option,
    setup_logging,
    trust_option,
)
from .knobs import Knobs

__all__ = ["train_unsupervised_cmd", "generate_cmd", "score_cmd"]


def _device(name: str) -> torch.device:
    from ..runtime.device import resolve_device

    return resolve_device(name)


def _check_image_path(path: str, option: str) -> None:
    """An image file name PIL can write, in a folder that can be written (before any work)."""
    from PIL import Image

    Image.init()
    suffix = Path(path).suffix.lower()
    if suffix not in Image.EXTENSION:
        raise BadValueError(
            f"{option} {path}: unknown image type {suffix or '(no suffix)'!r}; use e.g. .png or .jpg"
        )
    check_writable_file(path, option)


def _cascades(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    if value == "all":
        return value
    try:
        k = int(value)
    except ValueError:
        raise click.BadParameter(f"must be 'all' or a positive integer, got {value!r}") from None
    if k < 1:
        raise click.BadParameter(f"must be 'all' or a positive integer, got {value!r}")
    return k


_POS = click.IntRange(min=1)


UNSUP_KNOBS = Knobs(UnsupConfig, preset_default=Preset.PAPER.value)  # from the fields (config.knob)


@click.command("train-unsupervised", cls=RobustWinnCommand)
@click.option(
    "--preset",
    type=click.Choice([p.value for p in Preset]),
    default=Preset.QUICK.value,
    show_default=True,
    help="Budgets: paper = the released code's (REFERENCE §3.6); quick = a CPU smoke run; cpu = "
    "textures on 2 CPU cores (issue 15). Each budget option overrides one value; its help gives "
    "every preset's value.",
)
@UNSUP_KNOBS
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from OUT/checkpoint-last.pt exactly (only "
    "--cascades, --device, data paths and --no-progress may differ from the run's).",
)
@overwrite_option()
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def train_unsupervised_cmd(preset: str, resume: bool, overwrite: bool, quiet: bool, **kw: Any) -> None:
    """Train an unsupervised WINN (Algorithm 1 with cascades, paper §3-5)."""
    from ..runtime.distributed import launched_by_torchrun
    from ..training.supervised import NonFiniteLossError
    from ..training.unsupervised import train_unsupervised

    setup_logging(quiet)
    if launched_by_torchrun():  # every rank would train alone and all write to one --out
        raise click.UsageError(
            "unsupervised training runs in one process; under torchrun (WORLD_SIZE > 1) only "
            "supervised `robust-winn train` and `robust-winn attack` are distributed"
        )
    if kw["dataset"] == "texture" and not kw["image"]:
        raise click.UsageError("--dataset texture needs --image FILE")
    if kw["dataset"] == "image-folder" and not kw["folder"]:
        raise click.UsageError("--dataset image-folder needs --folder DIR")
    cfg = UnsupConfig.preset(preset, **UNSUP_KNOBS.values(kw))
    try:
        record = train_unsupervised(cfg, resume=resume, overwrite=overwrite, command=command_line())
    except NonFiniteLossError as exc:
        raise click.ClickException(one_line(exc)) from exc
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted. Finished iterations are kept in {cfg.out}; continue with --resume.", err=True
        )
        sys.exit(130)
    click.echo(
        f"unsupervised WINN {cfg.arch} on {record['dataset']['name']}: {record['cascades_done']} cascades, "
        f"{record['iterations_run']} iterations; wrote {Path(cfg.out) / 'checkpoint-last.pt'}"
    )


def _generate(
    checkpoint: str | dict[str, Any],
    n: int,
    cascades: int | str,
    size: int | None,
    seed: int,
    device: str,
    max_steps: int | None,
    **kw: Any,
) -> torch.Tensor:
    from ..synthesis.cascade import generate

    return generate(
        checkpoint,
        n,
        cascades=cascades,
        size=size,
        seed=seed,
        device=_device(device),
        max_steps=max_steps,
        **kw,
    )


_CKPT = click.option(
    "--checkpoint",
    required=True,
    type=click.Path(dir_okay=False),
    help="checkpoint-last.pt of an unsupervised run.",
)
_CASC = click.option(
    "--cascades",
    default="all",
    show_default=True,
    callback=_cascades,
    help="'all' or how many cascades of the chain to run.",
)
_COMMON = [
    click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds p0 and every tau."),
    click.option(
        "--device",
        default="auto",
        show_default=True,
        callback=device_option_check,
        help="auto, cpu, cuda or cuda:N.",
    ),
    click.option(
        "--max-steps", type=click.IntRange(min=0), default=None, help="Ascent step cap [default: the run's]."
    ),
    click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr."),
    trust_option,
]


def _common(fn: Any) -> Any:
    for opt in reversed(_COMMON):
        fn = opt(fn)
    return fn


@click.command("generate", cls=RobustWinnCommand)
@_CKPT
@_CASC
@click.option("--n", type=_POS, default=64, show_default=True, help="Images to generate.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Image grid to write (.png, .jpg, ...); an existing file is refused without --overwrite.",
)
@click.option(
    "--size",
    type=click.IntRange(min=16),
    default=None,
    help="Output side; larger than the training patches uses any-size texture synthesis.",
)
@click.option(
    "--patches-per-step", type=_POS, default=200, show_default=True, help="Any-size: patches per step."
)
@click.option(
    "--layout",
    type=click.Choice([p.value for p in PatchLayout]),
    default="torus",
    show_default=True,
    help="Any-size patch positions: torus (wrap) or margin (no wrap).",
)
@click.option(
    "--save", type=click.Path(dir_okay=False), default=None, help="Also save the tensor (torch.save)."
)
@overwrite_option("files named by --out and --save")
@_common
def generate_cmd(
    checkpoint: str,
    cascades: int | str,
    n: int,
    out: str | None,
    size: int | None,
    patches_per_step: int,
    layout: str,
    save: str | None,
    overwrite: bool,
    seed: int,
    device: str,
    max_steps: int | None,
    quiet: bool,
    trust_code: bool,
) -> None:
    """Sample images through the cascade chain and write a PNG grid (REFERENCE §3.7, §3.9)."""
    from ..synthesis.cascade import save_grid

    setup_logging(quiet)
    if out is None and save is None:
        raise click.UsageError("give --out GRID.png and/or --save FILE")
    if out is not None:
        _check_image_path(out, "--out")
    if save is not None:
        check_writable_file(save, "--save")
    for option, path in (("--out", out), ("--save", save)):
        if path is not None and Path(path).exists() and not overwrite:
            raise BadValueError(f"{option} {path} exists; pass --overwrite to replace it")
    x = _generate(
        checkpoint,
        n,
        cascades,
        size,
        seed,
        device,
        max_steps,
        patches_per_step=patches_per_step,
        layout=layout,
        trust_code=trust_code,
    )
    if out is not None:
        save_grid(x, out)
        click.echo(f"wrote {n} images to {out}")
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        torch.save(x, save)
        click.echo(f"saved tensor {tuple(x.shape)} to {save}")


_SCORE_CKPT = click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="checkpoint-last.pt of an unsupervised run (required unless --images).",
)


def _read_images(path: str) -> torch.Tensor:
    """``--images``: a tensor saved by ``generate --save`` (.pt/.pth) or one image file, in [-1, 1]."""
    from ..data.datasets import to_model_range
    from ..data.positives import read_image

    p = Path(path)
    if p.suffix.lower() not in (".pt", ".pth"):
        return to_model_range(read_image(p)).unsqueeze(0)  # (1, 3, H, W)
    if not p.is_file():
        raise DataUnavailableError(f"--images {path} does not exist or is not a file")
    try:
        x = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise DataUnavailableError(
            f"--images {path}: cannot read it as a tensor file: {one_line(exc)}"
        ) from exc
    if not isinstance(x, torch.Tensor):
        raise BadValueError(f"--images {path} holds a {type(x).__name__}, not an image tensor")
    return x.float() if x.is_floating_point() else x


def _texture_score(
    reference: str,
    images: str | None,
    checkpoint: str | None,
    n: int,
    size: int | None,
    chunk: int,
    cascades: int | str,
    seed: int,
    device: str,
    max_steps: int | None,
    trust_code: bool,
    texture_size: int | None,
) -> list[str]:
    """SWD of given or generated images to the photo, with the p0 and real brackets (issue 15)."""
    from ..data.positives import read_image
    from ..evaluation.swd import check_reference, texture_swd
    from ..models.appd import InitKind
    from ..runtime.checkpoint import model_meta
    from ..synthesis.cascade import load_chain

    photo: str | torch.Tensor = reference
    if images is not None:
        x = _read_images(images)
        init = InitKind.APPD  # the texture mode's p0 (no checkpoint says otherwise)
        if texture_size is not None:
            photo = read_image(reference, shorter_side=texture_size, channels=int(x.shape[-3]))
    else:
        assert checkpoint is not None
        ckpt, _ = load_chain(checkpoint, cascades)  # a bad checkpoint fails before any work
        meta = model_meta(ckpt, checkpoint, keys=("image_shape",), trust_code=trust_code)
        c, h, w = (int(v) for v in meta["image_shape"])
        texture_size = texture_size or ckpt["config"].get("texture_size")
        if texture_size is not None:
            photo = read_image(reference, shorter_side=texture_size, channels=c)
        check_reference(photo, (size, size) if size else (h, w), channels=c)
        init = InitKind(ckpt["config"].get("init", InitKind.APPD.value))
        x = torch.cat(
            [
                _generate(
                    ckpt,
                    min(chunk, n - s),
                    cascades,
                    size,
                    seed + i,
                    device,
                    max_steps,
                    trust_code=trust_code,
                )
                for i, s in enumerate(range(0, n, chunk))
            ]
        )
    return texture_swd(x, photo, seed=seed, p0=init).lines()


@click.command("score", cls=RobustWinnCommand)
@_SCORE_CKPT
@_CASC
@click.option(
    "--n",
    type=_POS,
    default=None,
    help="Images to generate and score [default: 50000; 64 with --texture-reference].",
)
@click.option(
    "--classifier",
    type=click.Path(dir_okay=False),
    default=None,
    help="A robust_winn classifier checkpoint: compute the digit score instead of Inception.",
)
@click.option(
    "--inception-weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="Inception-v3 weight file [default: the torch hub cache].",
)
@click.option(
    "--texture-reference",
    type=click.Path(),
    default=None,
    help="Source photo of a texture: report the sliced Wasserstein distance (Karras et al. 2018) "
    "of the images to random crops of it, beside the same distance for p0 and for real crops of "
    "a held-apart half of the photo (x1e3, seeded by --seed). The photo must hold two disjoint "
    "crops of the images' size.",
)
@click.option(
    "--images",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --texture-reference: score these images instead of generating them: a tensor "
    "saved by `generate --save` (.pt) or one image file (e.g. a 256x256 texture).",
)
@click.option(
    "--size",
    type=click.IntRange(min=16),
    default=None,
    help="With --texture-reference: generate at this side (any-size synthesis) [default: the run's].",
)
@click.option(
    "--texture-size",
    type=click.IntRange(min=16),
    default=None,
    help="With --texture-reference: scale the photo first so its shorter side is N, as "
    "train-unsupervised --texture-size does [default: the run's with --checkpoint; the file's "
    "size with --images].",
)
@click.option("--splits", type=_POS, default=10, show_default=True, help="Splits for mean +- std.")
@click.option("--chunk", type=_POS, default=1000, show_default=True, help="Images generated per chunk.")
@_common
def score_cmd(
    checkpoint: str | None,
    cascades: int | str,
    n: int | None,
    classifier: str | None,
    inception_weights: str | None,
    texture_reference: str | None,
    images: str | None,
    size: int | None,
    texture_size: int | None,
    splits: int,
    chunk: int,
    seed: int,
    device: str,
    max_steps: int | None,
    quiet: bool,
    trust_code: bool,
) -> None:
    """Inception score (or digit score with --classifier) of N generated images (paper §5.5).

    With --texture-reference: the texture SWD of generated (or --images) images to a photo.
    """
    from ..evaluation.scores import digit_score, inception_score, inception_weights_path
    from ..runtime.checkpoint import load_classifier

    setup_logging(quiet)
    if (checkpoint is None) == (images is None):
        raise click.UsageError("give either --checkpoint or --images (with --texture-reference)")
    if texture_reference is not None:
        if classifier is not None or inception_weights is not None:
            raise click.UsageError(
                "--texture-reference scores alone: drop --classifier / --inception-weights"
            )
        for line in _texture_score(
            texture_reference,
            images,
            checkpoint,
            64 if n is None else n,
            size,
            chunk,
            cascades,
            seed,
            device,
            max_steps,
            trust_code,
            texture_size,
        ):
            click.echo(line)
        return
    if images is not None or size is not None or texture_size is not None:
        raise click.UsageError("--images, --size and --texture-size only work with --texture-reference")
    assert checkpoint is not None
    n = 50_000 if n is None else n
    if classifier is not None and inception_weights is not None:
        raise click.UsageError("give either --classifier or --inception-weights, not both")
    if splits > n:
        raise click.BadParameter(f"must be <= --n ({n}), got {splits}", param_hint="'--splits'")
    dev = _device(device)
    # Everything that can fail on bad input is checked before generating anything.
    scorer = None
    if classifier is None:
        inception_weights_path(inception_weights)
    else:
        scorer = load_classifier(classifier, map_location=dev, trust_code=trust_code)
    parts = [
        _generate(
            checkpoint, min(chunk, n - s), cascades, None, seed + i, device, max_steps, trust_code=trust_code
        )
        for i, s in enumerate(range(0, n, chunk))
    ]
    images_t = torch.cat(parts)
    if scorer is not None:
        mean, std = digit_score(images_t, scorer, splits=splits, device=dev)
        name = "digit score"
    else:
        mean, std = inception_score(images_t, weights=inception_weights, splits=splits, device=dev)
        name = "Inception score"
    click.echo(f"{name} of {n} images: {mean:.3f} +- {std:.3f}")
