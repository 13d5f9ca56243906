"""Paper Figure 3 (§5.3, issue 4 item 8): can a WGAN-GP discriminator generate, like WINN's critic?

Trains, with the same critic architecture and the same positives,
  (1) WGAN-GP (critic + DCGAN generator; robust_winn.training.wgan_gp), and
  (2) WINN-single (1 cascade; robust_winn.training.unsupervised),
then synthesises images from each *critic alone* by WINN's gradient ascent (same p0 draw, same
sampler, each critic's own tau range) and writes one PNG whose rows are
  positives | WGAN-GP generator samples | WGAN-GP critic ascent | WINN-single ascent,
with the mean f of every row under both critics. The paper's claim: the WGAN-GP critic's ascent
reaches "real" scores without looking like the data; WINN-single's looks like the data.

Budgets (--budget):
  quick (default): 64x64 crops of one texture with critic64; WINN-single with
      UnsupConfig.preset("quick", cascades=1) (3 iterations, 5 critic steps, <= 30 ascent steps),
      WGAN-GP with WganGpConfig.preset("quick") (20 generator iterations x 5 critic steps,
      batch 32). CPU-sized: a smoke result, not the paper's (which trains on CelebA for hours).
  tiny: 16x16 crops, a few steps of each; seconds. Only checks that everything runs.
  paper: WINN-single with the paper preset (1 cascade x 100 iterations) and WGAN-GP's 100k
      generator iterations of batch 64; needs a GPU.

Writes results/figure3/ (--results): figure3.png, figure3.json (the comparison) and record.json
(exact command, seed, versions, device, wall times, both runs' settings). Checkpoints go to
--work-dir. Pass --wgan-checkpoint / --winn-checkpoint to reuse trained runs.

Usage: OMP_NUM_THREADS=1 python benchmarks/figure3.py --threads 1 [--budget quick|tiny|paper]
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from robust_winn.experiments.figure3 import FIGURE3_ROWS, figure3_comparison
from robust_winn.runtime.checkpoint import versions
from robust_winn.runtime.device import resolve_device
from robust_winn.training.unsupervised import UnsupConfig, train_unsupervised
from robust_winn.training.wgan_gp import WganGpConfig, train_wgan_gp

REPO = Path(__file__).resolve().parents[1]
BRICK = REPO.parent / "shared" / "data" / "textures" / "brick.png"

# Settings of the tiny budget (seconds on one CPU thread).
_TINY_WINN = dict(
    iterations=2,
    pos_per_step=10,
    ramp_max=2,
    k_passes=1,
    batch_size=10,
    init_images=20,
    new_per_iter=10,
    new_last_iter=20,
    synth_batch=10,
    synth_max_steps=5,
    pool_capacity=60,
)
_TINY_WGAN = dict(iterations=2, batch_size=8, gen_width=16)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--budget",
        choices=("quick", "tiny", "paper"),
        default="quick",
        help="training budgets of both runs (see above); default quick",
    )
    ap.add_argument(
        "--dataset",
        default="texture",
        help="positives: texture | image-folder | celeba | mnist | svhn | cifar10 (default texture)",
    )
    ap.add_argument("--image", default=str(BRICK), help="texture image file (default: %(default)s)")
    ap.add_argument("--folder", default=None, help="image folder for --dataset image-folder")
    ap.add_argument("--data-dir", default="../shared/data", help="torchvision root (default %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="keep the first N images of a finite dataset")
    ap.add_argument(
        "--arch",
        default="critic64",
        help="critic of both runs: a registered one-output network or pkg.module:factory (default critic64)",
    )
    ap.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="crop / image side (default: 64, or 16 for --budget tiny)",
    )
    ap.add_argument(
        "--wgan-iterations",
        type=int,
        default=None,
        help="WGAN-GP generator iterations (default: the budget's)",
    )
    ap.add_argument("--wgan-batch", type=int, default=None, help="WGAN-GP batch size (default: the budget's)")
    ap.add_argument("--gen-width", type=int, default=None, help="generator width (default: the budget's)")
    ap.add_argument("--n", type=int, default=None, help="images per figure row (default 8, tiny 4)")
    ap.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="ascent step cap of the figure's synthesis (default: the WINN run's synth_max_steps)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seeds both trainings and the figure (default 0)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's; use 1 on a busy CPU)",
    )
    ap.add_argument(
        "--work-dir", default="runs/figure3", help="checkpoints of both runs (default %(default)s)"
    )
    ap.add_argument("--results", default="results/figure3", help="output folder (default %(default)s)")
    ap.add_argument(
        "--wgan-checkpoint", default=None, help="reuse this WGAN-GP checkpoint (skip its training)"
    )
    ap.add_argument(
        "--winn-checkpoint", default=None, help="reuse this WINN-single checkpoint (skip its training)"
    )
    ap.add_argument("--quiet", action="store_true", help="only warnings on stderr")
    return ap.parse_args(argv)


def build_configs(args: argparse.Namespace, work: Path) -> tuple[WganGpConfig, UnsupConfig]:
    """The two runs' configurations for the chosen budget, with the command-line overrides."""
    tiny = args.budget == "tiny"
    preset = "paper" if args.budget == "paper" else "quick"
    common: dict[str, Any] = dict(
        dataset=args.dataset,
        image=args.image,
        folder=args.folder,
        data_dir=args.data_dir,
        limit=args.limit,
        image_size=args.image_size or (16 if tiny else 64),
        arch=args.arch,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    wgan = WganGpConfig.preset(
        preset,
        **common,
        **(_TINY_WGAN if tiny else {}),
        out=str(work / "wgan_gp"),
    )
    for field, value in (
        ("iterations", args.wgan_iterations),
        ("batch_size", args.wgan_batch),
        ("gen_width", args.gen_width),
    ):
        if value is not None:
            setattr(wgan, field, value)
    winn = UnsupConfig.preset(
        preset, **common, **(_TINY_WINN if tiny else {}), cascades=1, out=str(work / "winn_single")
    )
    return wgan, winn


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/figure3.py", *(sys.argv[1:] if argv is None else argv)])
    work, results = Path(args.work_dir), Path(args.results)
    wgan_cfg, winn_cfg = build_configs(args, work)
    t_all = time.perf_counter()
    times: dict[str, float] = {}

    wgan_ckpt = args.wgan_checkpoint
    if wgan_ckpt is None:
        t0 = time.perf_counter()
        train_wgan_gp(wgan_cfg, command=command, overwrite=True)  # scratch work dir
        times["wgan_gp_train_s"] = time.perf_counter() - t0
        wgan_ckpt = str(work / "wgan_gp" / "checkpoint-last.pt")
    winn_ckpt = args.winn_checkpoint
    if winn_ckpt is None:
        t0 = time.perf_counter()
        train_unsupervised(winn_cfg, command=command, overwrite=True)
        times["winn_single_train_s"] = time.perf_counter() - t0
        winn_ckpt = str(work / "winn_single" / "checkpoint-last.pt")

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    n = args.n or (4 if args.budget == "tiny" else 8)
    fig = figure3_comparison(
        wgan_ckpt, winn_ckpt, results, n=n, seed=args.seed, device=device, max_steps=args.max_steps
    )
    times["figure_s"] = time.perf_counter() - t0
    times["total_s"] = time.perf_counter() - t_all

    record = {
        "command": command,
        "budget": args.budget,
        "seed": args.seed,
        "versions": versions(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "wall_time_s": times,
        "wgan_gp_checkpoint": wgan_ckpt,
        "winn_single_checkpoint": winn_ckpt,
        "wgan_gp_config": wgan_cfg.to_dict() if args.wgan_checkpoint is None else None,
        "winn_single_config": winn_cfg.to_dict() if args.winn_checkpoint is None else None,
        "figure3": fig,
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "record.json").write_text(json.dumps(record, indent=2))

    print(f"Figure 3 ({args.budget} budget, {fig['arch']} on {fig['image_shape']}, device {device}):")
    print(f"  PNG rows: {' | '.join(FIGURE3_ROWS)}  -> {fig['png']}")
    print(f"  {'row':<24}{'f WGAN-GP critic':>18}{'f WINN-single':>16}")
    for row in FIGURE3_ROWS:
        fw, fi = fig["mean_f"]["wgan_gp_critic"][row], fig["mean_f"]["winn_single_critic"][row]
        print(f"  {row:<24}{fw:>18.4f}{fi:>16.4f}")
    tw, ti = fig["tau"]["wgan_gp_critic"], fig["tau"]["winn_single_critic"]
    print(f"  tau WGAN-GP [{tw[0]:.4f}, {tw[1]:.4f}]  tau WINN-single [{ti[0]:.4f}, {ti[1]:.4f}]")
    print(
        f"  ascent cap {fig['max_steps']} steps; WGAN-GP critic ascent mean steps "
        f"{fig['wgan_gp_critic_ascent']['mean_steps']:.1f}"
    )
    print("  wall time: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    print(f"  record: {results / 'record.json'}")
    return record


if __name__ == "__main__":
    main()
