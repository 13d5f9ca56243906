"""Scaling benchmark (issue 5 §5): WINN supervised training throughput with 1 and N processes.

Every configuration is one real ``robust-winn train`` run on the same small WINN setup (by
default the vanilla CNN on 5,000 MNIST training images, 1 epoch, 100 new pseudo-negatives per
class capped at 20 synthesis steps) started as a subprocess; the multi-process runs go
through torchrun (``python -m torch.distributed.run --standalone --nproc-per-node N -m
robust_winn train ...``), gloo on CPU and nccl on CUDA. The figures come from the per-phase
cost the trainer writes into record.json (``cost``; with ``--epochs`` > 1 from the last epoch of
``history`` alone, so that warm-up such as CUDA init or torch.compile is left out):

    throughput = (train_images + synth_image_steps) / (classify_time_s + synth_time_s)

in images per second: one training image is one positive (with its pseudo-negative and its
gradient-penalty interpolate) through forward and backward; one synthesis image-step is one
image through one forward and backward to the image. Evaluation is not counted. Each phase's
own rate is printed too. speed-up = throughput / baseline throughput.

CPU. ``--cpu-procs N`` (default 2, this machine's core count) gives three runs:
``cpu_1p1t`` (1 process, 1 thread), ``cpu_1p{N}t`` (1 process, N intra-op threads) and
``cpu_{N}p1t`` (N processes of 1 thread each). Two efficiencies are printed, each the speed-up
divided by how many times more cores the run uses than its baseline:

- vs ``cpu_1p1t``: efficiency = speed-up / N (= speed-up / n_procs), the usual scaling
  efficiency; 1.0 is perfect data-parallel scaling.
- vs ``cpu_1p{N}t``: both use N cores, so efficiency = speed-up. Above 1, splitting the batch
  across processes uses the cores better than intra-op threads do; below 1, threads win
  (gradient all-reduce and per-process overheads cost more than threading's synchronisation).

CUDA (when available, skip with ``--skip-cuda``): ``cuda_1g`` (1 process on 1 GPU) and
``cuda_{G}g`` (G processes, one per GPU, G = ``--gpus``, default all visible, run when G >= 2);
efficiency = speed-up / G. ``--train-args "--precision bf16 --channels-last"`` passes fast-path
options to every run (on CPU bf16 falls back to float32, as the records say).

Results are printed and merged into ``--results`` (default results/speed.json, a flat name ->
value JSON shared with the other speed benchmarks: read, updated, written back, other keys
kept): ``scaling_<config>_images_per_s`` and the phase rates, ``scaling_<config>_threads``
(torch threads per process, from the record), speed-ups and efficiencies, and
``scaling_device``, ``scaling_torch_version``, ``scaling_command``, ``scaling_setup``.

Usage: python benchmarks/scaling.py --data-dir /work/shared/data [--limit-train 5000]
       [--synth-max-steps 20] [--epochs 1] [--cpu-procs 2] [--skip-cuda] [--train-args "..."]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Setup:
    """One way of running the same training: processes, threads per process, device."""

    name: str
    procs: int
    threads: int
    device: str  # "cpu" or "cuda"

    @property
    def cores(self) -> int:
        """Cores (CPU) or GPUs the run occupies."""
        return self.procs * self.threads if self.device == "cpu" else self.procs


def train_command(args: argparse.Namespace, setup: Setup, out: Path) -> list[str]:
    """The robust-winn train command line of one setup (torchrun when it has several processes)."""
    launch = [sys.executable, "-m", "robust_winn"]
    if setup.procs > 1:
        launch = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={setup.procs}",
            "-m",
            "robust_winn",
        ]
    return [
        *launch,
        "train",
        "--method",
        "winn",
        "--dataset",
        args.dataset,
        "--data-dir",
        args.data_dir,
        "--arch",
        args.arch,
        "--epochs",
        str(args.epochs),
        "--limit-train",
        str(args.limit_train),
        "--val-size",
        str(args.val_size),
        "--limit-test",
        str(args.limit_test),
        "--batch-size",
        str(args.batch_size),
        "--synth-per-class",
        str(args.synth_per_class),
        "--synth-max-steps",
        str(args.synth_max_steps),
        "--seed",
        "0",
        "--device",
        setup.device,
        "--no-progress",
        "--quiet",
        "--overwrite",
        *shlex.split(args.train_args),
        "--out",
        str(out),
    ]


def run_setup(args: argparse.Namespace, setup: Setup) -> dict[str, float]:
    """Train once in ``setup``; return its throughputs read from the run's record."""
    out = Path(args.work_dir) / setup.name
    cmd = train_command(args, setup, out)
    env = {**os.environ, "OMP_NUM_THREADS": str(setup.threads), "MKL_NUM_THREADS": str(setup.threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(
            f"{setup.name} failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"{(proc.stdout + proc.stderr)[-3000:]}"
        )
    rec = json.loads((out / "record.json").read_text())
    return {
        **throughputs(rec),
        "threads": float(rec["torch_threads"]),
        "world_size": float(rec["world_size"]),
        "process_wall_s": wall,
    }


def throughputs(rec: dict[str, Any]) -> dict[str, float]:
    """Images/s of classification + synthesis, and of each phase, from a record's cost."""
    cost, hist = rec["cost"], rec["history"]
    if len(hist) > 1:  # steady state: the last epoch alone
        last = hist[-1]
        train_images = cost["train_images"] / len(hist)
        synth_s, steps = last["synth_time_s"], last["synth_image_steps"]
        classify_s = last["train_time_s"] - synth_s
    else:
        train_images, steps = cost["train_images"], cost["synth_image_steps"]
        classify_s, synth_s = cost["classify_time_s"], cost["synth_time_s"]
    return {
        "images_per_s": (train_images + steps) / (classify_s + synth_s),
        "classify_images_per_s": train_images / classify_s,
        "synth_image_steps_per_s": steps / synth_s if synth_s > 0 else float("nan"),
        "classify_time_s": classify_s,
        "synth_time_s": synth_s,
    }


def setups(args: argparse.Namespace) -> list[tuple[Setup, Setup | None]]:
    """(setup, its single-process baseline or None), in the order they run."""
    n = args.cpu_procs
    plan: list[tuple[Setup, Setup | None]] = []
    if not args.skip_cpu:
        one = Setup("cpu_1p1t", 1, 1, "cpu")
        plan += [
            (one, None),
            (Setup(f"cpu_1p{n}t", 1, n, "cpu"), None),
            (Setup(f"cpu_{n}p1t", n, 1, "cpu"), one),
        ]
    if torch.cuda.is_available() and not args.skip_cuda:
        gpus = args.gpus or torch.cuda.device_count()
        per = max(1, (os.cpu_count() or 1) // gpus)
        g1 = Setup("cuda_1g", 1, per, "cuda")
        plan.append((g1, None))
        if gpus >= 2:
            plan.append((Setup(f"cuda_{gpus}g", gpus, per, "cuda"), g1))
    return plan


def compare(fig: dict[str, float], run: Setup, base: Setup) -> str:
    """Add speed-up and efficiency of ``run`` over ``base`` to ``fig``; return a printable line."""
    speedup = fig[f"scaling_{run.name}_images_per_s"] / fig[f"scaling_{base.name}_images_per_s"]
    eff = speedup / (run.cores / base.cores)
    fig[f"scaling_{run.name}_speedup_vs_{base.name}"] = speedup
    fig[f"scaling_{run.name}_efficiency_vs_{base.name}"] = eff
    return f"  {run.name} vs {base.name}: speed-up {speedup:.2f}x, efficiency {eff:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--arch", default="vanilla")
    ap.add_argument("--limit-train", type=int, default=5000, help="training images per epoch")
    ap.add_argument("--val-size", type=int, default=1000, help="validation split (not timed)")
    ap.add_argument("--limit-test", type=int, default=1000, help="test images (not timed)")
    ap.add_argument("--batch-size", type=int, default=100, help="global batch (split across ranks)")
    ap.add_argument("--synth-per-class", type=int, default=100)
    ap.add_argument("--synth-max-steps", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=1, help="> 1: time the last epoch only")
    ap.add_argument("--cpu-procs", type=int, default=2, help="processes (and threads) of the CPU runs")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs of the multi-GPU run [all]")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-cuda", action="store_true")
    ap.add_argument("--train-args", default="", help="extra robust-winn train options, quoted")
    ap.add_argument("--work-dir", default="runs/scaling")
    ap.add_argument("--results", default="results/speed.json")
    args = ap.parse_args()
    if args.cpu_procs < 2:
        ap.error("--cpu-procs must be at least 2")

    fig: dict[str, Any] = {}
    lines: list[str] = []
    by_name: dict[str, Setup] = {}
    for run, base in setups(args):
        r = run_setup(args, run)
        by_name[run.name] = run
        for key in ("images_per_s", "classify_images_per_s", "synth_image_steps_per_s", "threads"):
            fig[f"scaling_{run.name}_{key}"] = r[key]
        print(
            f"{run.name}: {run.procs} process(es) x {int(r['threads'])} thread(s) on {run.device}: "
            f"{r['images_per_s']:,.0f} img/s (classify {r['classify_images_per_s']:,.0f} img/s in "
            f"{r['classify_time_s']:.1f}s, synthesis {r['synth_image_steps_per_s']:,.0f} "
            f"image-steps/s in {r['synth_time_s']:.1f}s; process {r['process_wall_s']:.1f}s)"
        )
        if base is not None:
            lines.append(compare(fig, run, base))
    n = args.cpu_procs
    multi = by_name.get(f"cpu_{n}p1t")
    if multi is not None:
        lines.append(compare(fig, multi, by_name[f"cpu_1p{n}t"]))
    print("\n".join(lines))

    devices = [f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"]
    if any(s.device == "cuda" for s in by_name.values()):
        devices.append(f"cuda ({torch.cuda.get_device_name(0)} x {torch.cuda.device_count()})")
    fig.update(
        {
            "scaling_device": "; ".join(devices),
            "scaling_torch_version": torch.__version__,
            "scaling_command": shlex.join([sys.executable, *sys.argv]),
            "scaling_setup": (
                f"winn {args.arch} on {args.dataset}: {args.limit_train} train images, "
                f"batch {args.batch_size}, {args.epochs} epoch(s), "
                f"{args.synth_per_class}/class synthesized, <= {args.synth_max_steps} steps"
                + (f", train args {args.train_args!r}" if args.train_args else "")
            ),
            "scaling_time": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update({k: round(v, 4) if isinstance(v, float) else v for k, v in fig.items()})
    path.write_text(json.dumps(merged, indent=2, sort_keys=True))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
