"""Unsupervised WINN runs that fit 2 CPU cores (issue 4 §9): a texture model, a 256x256 texture
grown from it, and a digit generator scored offline with the digit score.

Every step is a `robust-winn` command; the commands, wall times, versions and scores go to
results/unsupervised/record.json and README.md next to the PNG grids. The digit score uses a
robust_winn MNIST classifier (default: the Table 2 baseline, seed 0), and is given beside the
same score on real MNIST test images and on the initial distribution p0 (ascent capped at 0
steps), so that the generator's number can be read.

Usage: python benchmarks/unsupervised.py [--data-dir ../shared/data] [--texture brick]
       [--classifier runs/table2/mnist-vanilla-baseline-s0/checkpoint-best.pt] [--parts digits]

`--parts digits` reruns only the digit generator and keeps the texture entry of an existing
record.json (each part's entry holds its own command line, date, versions and wall time).
The texture part runs the `quick` preset (a smoke budget: 64x64 crops, 2 critic steps per
iteration); the digit part runs the paper preset with smaller counts (see --digit-*).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner

from robust_winn.cli.main import main as cli
from robust_winn.data.datasets import load_dataset
from robust_winn.evaluation.scores import digit_score
from robust_winn.runtime.checkpoint import versions


def run(cmd: list[str], log: list[dict[str, Any]]) -> str:
    """Run one robust-winn command in-process; stop on failure; log command and wall time."""
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, cmd, catch_exceptions=False)
    secs = time.perf_counter() - t0
    line = "robust-winn " + " ".join(shlex.quote(c) for c in cmd)
    print(f"[{secs:7.1f}s] {line}\n{r.output.strip()}")
    if r.exit_code != 0:
        raise SystemExit(f"command failed ({r.exit_code}): {line}")
    log.append({"command": line, "wall_time_s": round(secs, 1), "output": r.output.strip()[-2000:]})
    return r.output


def _texture(args: argparse.Namespace, runs: Path, out: Path, log: list[dict[str, Any]]) -> dict[str, Any]:
    """Texture model (critic64, 64x64 crops of one photo), a 4x4 grid and a 256x256 texture."""
    tex = runs / args.texture
    image = str(Path(args.data_dir) / "textures" / f"{args.texture}.png")
    run(
        [
            "train",
            "--mode",
            "unsupervised",
            "--dataset",
            "texture",
            "--image",
            image,
            "--preset",
            "quick",
            "--cascades",
            "2",
            "--iterations",
            str(args.tex_iterations),
            "--synth-max-steps",
            str(args.tex_steps),
            "--device",
            args.device,
            "--no-progress",
            "--overwrite",
            "--out",
            str(tex),
        ],
        log,
    )
    ck = str(tex / "checkpoint-last.pt")
    run(
        [
            "generate",
            "--checkpoint",
            ck,
            "--n",
            "16",
            "--device",
            args.device,
            "--overwrite",
            "--out",
            str(out / f"{args.texture}-64.png"),
        ],
        log,
    )
    run(
        [
            "generate",
            "--checkpoint",
            ck,
            "--n",
            "1",
            "--size",
            "256",
            "--device",
            args.device,
            "--overwrite",
            "--out",
            str(out / f"{args.texture}-256.png"),
        ],
        log,
    )
    return {}


def _digits(args: argparse.Namespace, runs: Path, out: Path, log: list[dict[str, Any]]) -> dict[str, Any]:
    """MNIST digit generator (vanilla critic) and its digit score beside p0's and real MNIST's."""
    dig = runs / "mnist"
    run(
        [
            "train",
            "--mode",
            "unsupervised",
            "--dataset",
            "mnist",
            "--data-dir",
            args.data_dir,
            "--arch",
            "vanilla",
            "--preset",
            "paper",
            "--cascades",
            str(args.digit_cascades),
            "--iterations",
            str(args.digit_iterations),
            "--pos-per-step",
            str(args.digit_pos_per_step),
            "--ramp-max",
            "5",
            "--k-passes",
            "3",
            "--init-images",
            str(args.digit_new_last_iter),
            "--new-per-iter",
            str(args.digit_new_per_iter),
            "--new-last-iter",
            str(args.digit_new_last_iter),
            "--synth-max-steps",
            str(args.digit_steps),
            "--pool-capacity",
            "20000",
            "--device",
            args.device,
            "--no-progress",
            "--overwrite",
            "--out",
            str(dig),
        ],
        log,
    )
    ck = str(dig / "checkpoint-last.pt")
    run(
        [
            "generate",
            "--checkpoint",
            ck,
            "--n",
            "64",
            "--device",
            args.device,
            "--overwrite",
            "--out",
            str(out / "mnist-digits.png"),
        ],
        log,
    )
    scores: dict[str, Any] = {}
    for name, extra in (("generator", []), ("p0_no_ascent", ["--max-steps", "0"])):
        text = run(
            [
                "score",
                "--checkpoint",
                ck,
                "--n",
                str(args.score_n),
                "--classifier",
                args.classifier,
                "--device",
                args.device,
                *extra,
            ],
            log,
        )
        scores[name] = text.strip().splitlines()[-1]
    test = load_dataset("mnist", data_dir=args.data_dir).test
    real = next(test.batches(args.score_n))[0]
    m, s = digit_score(real, args.classifier, device=args.device)
    scores["real_mnist_test"] = f"digit score {m:.3f} +- {s:.3f} (first {args.score_n} test images)"
    return {"digit_scores": scores}


PARTS = {"texture": _texture, "digits": _digits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data", help="holds MNIST/ and textures/")
    ap.add_argument(
        "--parts",
        default="texture,digits",
        help="comma-separated parts to run; parts not run keep their entry of an existing record",
    )
    ap.add_argument("--texture", default="brick", help="textures/<name>.png")
    ap.add_argument(
        "--classifier",
        default="runs/table2/mnist-vanilla-baseline-s0/checkpoint-best.pt",
        help="robust_winn MNIST classifier for the digit score",
    )
    ap.add_argument("--runs", default="runs/unsup", help="training folders")
    ap.add_argument("--out", default="results/unsupervised", help="grids, record.json, README.md")
    ap.add_argument("--tex-iterations", type=int, default=4, help="texture: iterations per cascade")
    ap.add_argument("--tex-steps", type=int, default=60, help="texture: ascent step cap")
    ap.add_argument("--digit-cascades", type=int, default=2, help="digits: cascades")
    ap.add_argument("--digit-iterations", type=int, default=12, help="digits: iterations per cascade")
    ap.add_argument(
        "--digit-pos-per-step",
        type=int,
        default=500,
        help="digits: ramp unit (paper 1000; positives per iteration = min(it+1, 5) x this)",
    )
    ap.add_argument(
        "--digit-new-per-iter", type=int, default=500, help="digits: pseudo-negatives per iteration"
    )
    ap.add_argument(
        "--digit-new-last-iter",
        type=int,
        default=1000,
        help="digits: pseudo-negatives at a cascade's last iteration, and initial p0 images",
    )
    ap.add_argument("--digit-steps", type=int, default=200, help="digits: ascent step cap")
    ap.add_argument("--score-n", type=int, default=1000, help="images per digit score")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {sorted(PARTS)}")

    out, runs = Path(args.out), Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "record.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    record: dict[str, Any] = {"parts": dict(old.get("parts", {}))}
    script = "python benchmarks/unsupervised.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
    )
    for name in parts:
        log: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        extra = PARTS[name](args, runs, out, log)
        record["parts"][name] = {
            "script": script,
            "steps": log,
            **extra,
            "versions": versions(),
            "device": args.device,
            "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "wall_time_s": round(time.perf_counter() - t0, 1),
        }
    path.write_text(json.dumps(record, indent=2))
    lines = ["# Unsupervised WINN on 2 CPU cores (issue 4): texture, 256x256 texture, digits", ""]
    for name in PARTS:
        part = record["parts"].get(name)
        if part is None:
            continue
        lines += [
            f"## {name}",
            "",
            f"Made by `{part['script']}` (part `{name}`) on {part['date']} "
            f"({part['device']}, {part['threads']} threads, {part['wall_time_s'] / 60:.1f} min). "
            "Versions: " + ", ".join(f"{k} {v}" for k, v in part["versions"].items()),
            "",
            "| step | wall time |",
            "|---|---|",
        ]
        lines += [f"| `{s['command']}` | {s['wall_time_s']:.0f} s |" for s in part["steps"]]
        if "digit_scores" in part:
            lines += ["", "Digit scores (Inception-score formula with the MNIST classifier, 10 splits):", ""]
            lines += [f"- {k}: {v}" for k, v in part["digit_scores"].items()]
        lines.append("")
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
