"""Texture synthesis judged by a texture distance (issue 15): brick, grass and gravel.

Per texture (../shared/data/textures/<name>.png) this trains an unsupervised WINN texture model
with a named preset (`robust-winn train-unsupervised --preset ...`, default `quick`; `cpu` is the
2-core preset chosen in results/textures/search.md), one cascade at a time (`--cascades c
--resume`), and after every cascade samples 64 patches through
the chain and measures their texture SWD (Karras et al. 2018, App. D; robust_winn.evaluation.swd,
the same numbers as `robust-winn score --images SAMPLES.pt --texture-reference PHOTO`) with its
two brackets: p0 (the initial noise, no ascent) and real crops of a held-apart half of the photo.
At the end it grows a 256x256 texture with any-size synthesis and measures it the same way.

Writes into OUT/<name>/ (default results/textures/<name>/):

- source-256.png   the photo's centre crop at the any-size side (the photo itself is larger), of
                   the photo scaled as the run scaled it (`--texture-size`, e.g. the cpu preset's);
- samples-64.png   the last cascade's 64 samples (8x8 grid);
- anysize-256.png  the any-size synthesis;
- swd.json         both SWDs with brackets and position, the curve, every command with its wall
                   time, the benchmark's command line, versions and date;
- curve.csv        SWD of the samples after each cascade versus the training wall time;

and OUT/README.md, a table of every texture measured so far. Training folders go to RUNS/<name>/.

Usage: python benchmarks/textures.py [--textures brick,grass,gravel] [--preset quick|cpu|paper]
       [--train-args "--iterations 6 --synth-max-steps 100"] [--cascades 3] [--smoke]

`--smoke` shrinks everything (32x32 patches, one iteration per cascade, 2 ascent steps, a
64x64 any-size image, light SWD settings) to prove the pipeline in a few minutes; its numbers
mean nothing, and it writes to results/textures-smoke and runs/textures-smoke unless told.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner
from PIL import Image

from robust_winn.cli.main import main as cli
from robust_winn.data.positives import read_image
from robust_winn.evaluation.swd import TextureSWD, texture_swd
from robust_winn.runtime.checkpoint import versions
from robust_winn.training.unsup_config import Preset, UnsupConfig

TEXTURES = ("brick", "grass", "gravel")
OWNED = ("--out", "--cascades", "--resume", "--overwrite", "--preset", "--dataset", "--image", "--device")
SMOKE_TRAIN = ["--image-size", "32", "--iterations", "1", "--pos-per-step", "10", "--k-passes", "1",
               "--init-images", "20", "--new-per-iter", "10", "--new-last-iter", "20",
               "--synth-max-steps", "2"]  # fmt: skip
SMOKE = {
    "cascades": 2,
    "samples": 8,
    "anysize": 64,
    "patches_per_step": 8,
    "max_steps": 2,
    "swd": {"descriptors": 512, "directions": 32, "repeats": 2, "reference_crops": 16, "bracket_draws": 2},
}


def run(cmd: list[str], log: list[dict[str, Any]]) -> str:
    """Run one robust-winn command in-process; stop on failure; log command and wall time."""
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, cmd, catch_exceptions=False)
    secs = time.perf_counter() - t0
    line = "robust-winn " + " ".join(shlex.quote(c) for c in cmd)
    print(f"[{secs:7.1f}s] {line}\n{r.output.strip()}", flush=True)
    if r.exit_code != 0:
        raise SystemExit(f"command failed ({r.exit_code}): {line}")
    log.append({"command": line, "wall_time_s": round(secs, 1), "output": r.output.strip()[-2000:]})
    return r.output


def reference(photo: Path, texture_size: int | None) -> Path | torch.Tensor:
    """The photo as the run saw it: the file, or scaled as `--texture-size` scales it."""
    return photo if texture_size is None else read_image(photo, shorter_side=texture_size)


def measure(
    images: Path,
    photo: Path,
    texture_size: int | None,
    args: argparse.Namespace,
    init: str,
    log: list[dict[str, Any]],
) -> TextureSWD:
    """Texture SWD of saved images with both brackets; logged like a command."""
    t0 = time.perf_counter()
    x = torch.load(images, weights_only=True)
    result = texture_swd(x, reference(photo, texture_size), seed=args.seed, p0=init, **args.swd)
    secs = time.perf_counter() - t0
    print(f"[{secs:7.1f}s] texture SWD of {images}\n" + "\n".join(result.lines()), flush=True)
    scaled = "" if texture_size is None else f" scaled to shorter side {texture_size}"
    log.append(
        {
            "command": f"texture_swd({images}, {photo}{scaled}, seed={args.seed}, p0={init!r}, **{args.swd})",
            "wall_time_s": round(secs, 1),
            "output": "\n".join(result.lines()),
        }
    )
    return result


def curve_row(cascade: int, record: dict[str, Any], elapsed: float, r: TextureSWD) -> dict[str, Any]:
    """One line of curve.csv: training wall time and SWD (x1e3) after a cascade."""
    row: dict[str, Any] = {
        "cascade": cascade,
        "iterations_run": record["iterations_run"],
        "train_wall_s": round(record["wall_time_s"], 1),
        "elapsed_s": round(elapsed, 1),
        "swd": round(r.images.mean, 2),
        "p0": round(r.p0.mean, 2),
        "p0_std": round(r.p0.spread, 2),
        "real": round(r.real.mean, 2),
        "real_std": round(r.real.spread, 2),
        "position": round(r.position, 4),
    }
    row.update(
        {f"swd_{res}": round(v, 2) for res, v in zip(r.images.resolutions, r.images.per_level, strict=True)}
    )
    return row


def source_crop(photo: Path, texture_size: int | None, side: int, path: Path) -> None:
    """The centre crop (at most side x side) of the photo as the run saw it, as a PNG."""
    im = Image.fromarray(read_image(photo, shorter_side=texture_size).permute(1, 2, 0).numpy())
    w, h = min(side, im.width), min(side, im.height)
    left, top = (im.width - w) // 2, (im.height - h) // 2
    im.crop((left, top, left + w, top + h)).save(path)


def texture(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train, sample and measure one texture; write its folder; return its swd.json."""
    photo = Path(args.data_dir) / "textures" / f"{name}.png"
    out, runs = Path(args.out) / name, Path(args.runs) / name
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    ck = str(runs / "checkpoint-last.pt")
    common = ["--device", args.device]
    log: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    samples_r = None
    for c in range(1, args.cascades + 1):
        run(
            ["train-unsupervised", "--dataset", "texture", "--image", str(photo), "--preset", args.preset,
             *args.train, "--cascades", str(c), *common, "--no-progress", "--out", str(runs),
             "--resume" if c > 1 else "--overwrite"],
            log,
        )  # fmt: skip
        record = json.loads((runs / "record.json").read_text())
        last = c == args.cascades
        samples = runs / f"samples-c{c}.pt"
        grid = ["--out", str(out / f"samples-{record['config']['image_size']}.png")] if last else []
        run(
            ["generate", "--checkpoint", ck, "--n", str(args.samples), "--seed", str(args.seed),
             *args.gen_steps, *common, "--save", str(samples), *grid, "--overwrite"],
            log,
        )  # fmt: skip
        texture_size = record["config"].get("texture_size")
        samples_r = measure(samples, photo, texture_size, args, record["config"]["init"], log)
        curve.append(curve_row(c, record, time.perf_counter() - t0, samples_r))
    assert samples_r is not None
    anysize = runs / "anysize.pt"
    run(
        ["generate", "--checkpoint", ck, "--n", "1", "--size", str(args.anysize), "--seed", str(args.seed),
         "--patches-per-step", str(args.patches_per_step), *args.gen_steps, *common, "--save", str(anysize),
         "--out", str(out / f"anysize-{args.anysize}.png"), "--overwrite"],
        log,
    )  # fmt: skip
    texture_size = record["config"].get("texture_size")
    anysize_r = measure(anysize, photo, texture_size, args, record["config"]["init"], log)
    source_crop(photo, texture_size, args.anysize, out / f"source-{args.anysize}.png")
    with (out / "curve.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)
    entry = {
        "texture": name,
        "photo": str(photo),
        "texture_size": texture_size,
        "preset": args.preset,
        "train_args": args.train,
        "cascades": args.cascades,
        "smoke": args.smoke,
        "script": args.script,
        "samples": {"n": args.samples, **samples_r.to_dict()},
        "anysize": {"size": args.anysize, **anysize_r.to_dict()},
        "curve": curve,
        "train_wall_time_s": round(record["wall_time_s"], 1),
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "steps": log,
        "versions": versions(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }
    (out / "swd.json").write_text(json.dumps(entry, indent=2))
    return entry


def _bracketed(d: dict[str, Any]) -> str:
    pos = "n/a" if d["position"] is None else f"{d['position']:.2f}"
    return (
        f"{d['swd_x1e3']['mean']:.0f} (p0 {d['p0_x1e3']['mean']:.0f}, real {d['real_x1e3']['mean']:.0f}; "
        f"position {pos})"
    )


def write_readme(out: Path) -> None:
    """OUT/README.md: one row per texture folder holding a swd.json."""
    lines = [
        "# Texture synthesis judged by SWD (issue 15)",
        "",
        "SWD x1e3 (Karras et al. 2018, App. D; mean over Laplacian-pyramid levels) of the samples "
        "to random crops of the photo, with the same distance for p0 (initial noise, no ascent) and "
        "for real crops of a held-apart half of the photo; position = (p0 - x) / (p0 - real): 0 at "
        "p0, 1 at the real floor. Made by `benchmarks/textures.py`; each folder's swd.json holds "
        "the commands, wall times and per-level values, curve.csv the SWD after each cascade.",
        "",
        "| texture | photo crop | samples | any-size | samples SWD | any-size SWD | training | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*/swd.json")):
        e = json.loads(path.read_text())
        name, side = e["texture"], e["anysize"]["size"]
        size = e["samples"]["settings"]["size"][0]
        lines.append(
            f"| {name} | ![]({name}/source-{side}.png) | ![]({name}/samples-{size}.png) | "
            f"![]({name}/anysize-{side}.png) | {_bracketed(e['samples'])} | {_bracketed(e['anysize'])} | "
            f"{e['train_wall_time_s'] / 60:.1f} min | `{e['script']}` |"
        )
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data", help="holds textures/<name>.png")
    ap.add_argument("--textures", default=",".join(TEXTURES), help="comma-separated texture names")
    ap.add_argument(
        "--preset", default=Preset.QUICK.value, choices=[p.value for p in Preset], help="training budget"
    )
    ap.add_argument(
        "--train-args", default="", help="extra train-unsupervised options, e.g. '--iterations 6'"
    )
    ap.add_argument("--cascades", type=int, default=None, help="cascades to train [default: the preset's]")
    ap.add_argument("--samples", type=int, default=64, help="samples per SWD after each cascade")
    ap.add_argument("--anysize", type=int, default=256, help="side of the any-size synthesis")
    ap.add_argument("--patches-per-step", type=int, default=200, help="any-size patches per step")
    ap.add_argument("--max-steps", type=int, default=None, help="ascent step cap when sampling [the run's]")
    ap.add_argument("--seed", type=int, default=0, help="seeds sampling and the SWD")
    ap.add_argument("--runs", default=None, help="training folders [runs/textures]")
    ap.add_argument("--out", default=None, help="results [results/textures]")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="a few minutes' run that proves the pipeline")
    args = ap.parse_args()
    args.script = "python benchmarks/textures.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    args.train = shlex.split(args.train_args)
    clash = [a for a in args.train if a.split("=")[0] in OWNED]
    if clash:
        raise SystemExit(f"--train-args may not set {clash}: the benchmark sets them")
    names = [t.strip() for t in args.textures.split(",") if t.strip()]
    missing = [n for n in names if not (Path(args.data_dir) / "textures" / f"{n}.png").is_file()]
    if missing:
        raise SystemExit(f"no photo for {missing} in {Path(args.data_dir) / 'textures'}")
    args.swd = {}
    suffix = ""
    if args.smoke:
        suffix = "-smoke"
        args.train = [*SMOKE_TRAIN, *args.train]
        args.cascades = args.cascades or SMOKE["cascades"]
        args.samples, args.anysize = SMOKE["samples"], SMOKE["anysize"]
        args.patches_per_step, args.max_steps = SMOKE["patches_per_step"], SMOKE["max_steps"]
        args.swd = SMOKE["swd"]
    args.cascades = args.cascades or UnsupConfig.preset(args.preset).cascades
    if min(args.cascades, args.samples, args.anysize, args.patches_per_step) < 1:
        raise SystemExit("--cascades, --samples, --anysize and --patches-per-step must be >= 1")
    args.gen_steps = [] if args.max_steps is None else ["--max-steps", str(args.max_steps)]
    args.runs = args.runs or f"runs/textures{suffix}"
    args.out = args.out or f"results/textures{suffix}"
    for name in names:
        texture(name, args)
    write_readme(Path(args.out))
    print((Path(args.out) / "README.md").read_text())


if __name__ == "__main__":
    main()
