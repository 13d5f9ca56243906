"""Peers benchmark (issue 16): robust_winn's harness against IBM ART and a bare torchattacks loop.

One job, the same for all three tools: the clean error and the adversarial error of one
classifier on the MNIST test set (all 10,000 images; Square on the first ``--square-images``),
i.e. a clean pass, the attack and the scoring of the adversarial examples. eps = 0.125 in
[0, 1] pixel units, the paper's MNIST FGSM eps (Table 3, REFERENCE §2), for every attack:

- FGSM;
- PGD-40: 40 steps of 0.01, one random start (Madry et al.; torchattacks' and ART's default);
- APGD-CE: 100 steps, one run (Croce & Hein 2020; ART's initial step 2 eps, as in the paper);
- Square: ``--square-queries`` queries, one restart, on a subset (gradient-free, slow on CPU).

The tools:

- harness: ``robust_winn.evaluate(model, attacks=[...], eps=[0.125])``, the whole record
  (clean pass with gradient statistics, attack, scoring, sanity checks);
- art: ``PyTorchClassifier`` (inputs in [0, 1], preprocessing (0.5, 0.5) to the model's
  [-1, 1]) with FastGradientMethod / ProjectedGradientDescent / AutoProjectedGradientDescent /
  SquareAttack, ``predict`` for the clean and the adversarial predictions; the test set is handed
  over as the float32 [0, 1] array ART takes (made once, outside the timings);
- bare: torchattacks attacks built by hand (``set_normalization_used(0.5, 0.5)``) in a loop over
  the same batches, a no-grad forward for the clean and the adversarial predictions.

All three get the same model object in eval mode with frozen parameters (no weight gradients),
the same batch size (the harness's default unless ``--batch-size``) and the same seed per
repetition. Repetitions are interleaved (every tool once per attack per repetition, the tool
order rotating), after one warm-up job per tool; best-of and median are reported.

Checks, printed and recorded: FGSM error counts identical across the three (the script exits 1
otherwise); for random-start attacks the harness and the bare loop run the same torchattacks
code from the same seed and must agree exactly, and ART's count must lie within the
random-start spread (the range of the torchattacks counts over the repetitions, widened by
three times the square root of their median, a Poisson-like allowance for a single seed).

The checkpoint: ``--checkpoint CKPT``, or one trained here: a 1-epoch vanilla WINN on MNIST
(synthesis capped at ``--synth-max-steps``, as in benchmarks/speed.py) under ``--work-dir``.

Writes ``peers`` into ``--results`` (merged: other keys kept, an attack's entry replaced only by
a new run of that attack) with the command, date, versions, thread count and device, and prints
a Markdown table.

Usage:
    pip install -e '.[bench]'        # adversarial-robustness-toolbox, benchmarks only
    python benchmarks/peers.py --data-dir ../shared/data --reps 3
    python benchmarks/peers.py --smoke --dataset sample     # ~1 min: tiny checkpoint, 100 images
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchattacks
from torch import nn

from robust_winn.attacks import evaluate
from robust_winn.config import Method, SynthesisConfig, TrainConfig
from robust_winn.data.datasets import ImageSet, load_dataset
from robust_winn.runtime.checkpoint import load_classifier, versions
from robust_winn.training import train

EPS = 0.125  # [0, 1] units: the paper's MNIST FGSM eps (REFERENCE §2), used for every attack
TOOLS = ("harness", "art", "bare")


@dataclass(frozen=True)
class Peer:
    """One attack as each tool spells it, and on how many test images it runs."""

    name: str
    spec: str  # robust_winn's attack string
    bare: Callable[[nn.Module, int], Any]  # (model, seed) -> torchattacks attack
    art: Callable[[Any, int], Any]  # (ART estimator, batch size) -> ART attack
    random: bool  # a random start: counts vary with the seed
    images: int | None = None  # None: the whole test set


def peers(args: argparse.Namespace) -> dict[str, Peer]:
    """FGSM, PGD-40, APGD-CE and Square at eps 0.125, as robust_winn, torchattacks and ART run them."""
    from art.attacks.evasion import (
        AutoProjectedGradientDescent,
        FastGradientMethod,
        ProjectedGradientDescent,
        SquareAttack,
    )

    q = args.square_queries
    return {
        "fgsm": Peer(
            "fgsm",
            "fgsm",
            lambda m, seed: torchattacks.FGSM(m, eps=EPS),
            lambda est, b: FastGradientMethod(est, norm=np.inf, eps=EPS, batch_size=b),
            random=False,
        ),
        "pgd40": Peer(
            "pgd40",
            "pgd:steps=40,alpha=0.01",
            lambda m, seed: torchattacks.PGD(m, eps=EPS, alpha=0.01, steps=40, random_start=True),
            lambda est, b: ProjectedGradientDescent(
                est,
                norm=np.inf,
                eps=EPS,
                eps_step=0.01,
                max_iter=40,
                num_random_init=1,
                batch_size=b,
                verbose=False,
            ),
            random=True,
        ),
        "apgd-ce": Peer(
            "apgd-ce",
            "apgd",
            lambda m, seed: torchattacks.APGD(
                m, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=seed
            ),
            lambda est, b: AutoProjectedGradientDescent(
                est,
                norm=np.inf,
                eps=EPS,
                eps_step=2 * EPS,
                max_iter=100,
                nb_random_init=1,
                loss_type="cross_entropy",
                batch_size=b,
                verbose=False,
            ),
            random=True,
        ),
        "square": Peer(
            "square",
            f"square:queries={q}",
            lambda m, seed: torchattacks.Square(
                m, norm="Linf", eps=EPS, n_queries=q, n_restarts=1, seed=seed
            ),
            lambda est, b: SquareAttack(
                est, norm=np.inf, eps=EPS, max_iter=q, nb_restarts=1, batch_size=b, verbose=False
            ),
            random=True,
            images=args.square_images,
        ),
    }


def harness_job(model: nn.Module, test: ImageSet, peer: Peer, batch: int, seed: int) -> tuple[int, int]:
    """(clean errors, adversarial errors) from robust_winn's harness."""
    rec = evaluate(
        model, dataset=test, attacks=[peer.spec], eps=[EPS], batch_size=batch, device="cpu", seed=seed
    )
    (row,) = rec["results"]
    return round(rec["models"]["model"]["clean_error"] * rec["n"]), row["errors"]


def bare_job(model: nn.Module, test: ImageSet, peer: Peer, batch: int, seed: int) -> tuple[int, int]:
    """(clean errors, adversarial errors) from a hand-written torchattacks loop."""
    torch.manual_seed(seed)
    atk = peer.bare(model, seed)
    atk.set_normalization_used(mean=[0.5], std=[0.5])  # the model sees [-1, 1]
    clean = adv = 0
    for x, y in test.batches(batch):  # (B, 1, 28, 28) in [-1, 1], (B,)
        with torch.no_grad():
            clean += int((model(x).argmax(1) != y).sum())
        x_adv = atk(x, y)
        with torch.no_grad():
            adv += int((model(x_adv).argmax(1) != y).sum())
    return clean, adv


def art_job(
    model: nn.Module, arrays: tuple[np.ndarray, np.ndarray], peer: Peer, batch: int, seed: int
) -> tuple[int, int]:
    """(clean errors, adversarial errors) from IBM ART: estimator, predict, generate, predict."""
    from art.estimators.classification import PyTorchClassifier

    np.random.seed(seed)
    torch.manual_seed(seed)
    x, y = arrays  # (N, 1, 28, 28) float32 in [0, 1], (N,) int64
    est = PyTorchClassifier(
        model,
        loss=nn.CrossEntropyLoss(),
        input_shape=x.shape[1:],
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing=(0.5, 0.5),  # (u - 0.5) / 0.5: the model's [-1, 1]
        device_type="cpu",
    )
    clean = int((est.predict(x, batch_size=batch).argmax(1) != y).sum())
    x_adv = peer.art(est, batch).generate(x, y=y)
    adv = int((est.predict(x_adv, batch_size=batch).argmax(1) != y).sum())
    return clean, adv


def checkpoint(args: argparse.Namespace) -> Path:
    """The given checkpoint, or a 1-epoch vanilla WINN trained here (tiny with ``--smoke``)."""
    if args.checkpoint:
        return Path(args.checkpoint)
    cfg = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        arch="vanilla",
        method=Method.WINN,
        epochs=1,
        device="cpu",
        seed=0,
        out=str(Path(args.work_dir) / "winn"),
        progress=False,
        synthesis=SynthesisConfig(max_steps=args.synth_max_steps),
    )
    if args.smoke:
        cfg = replace(
            cfg,
            val_size=100,
            limit_train=200,
            batch_size=50,
            synthesis=SynthesisConfig(per_class=2, init_per_class=2, max_steps=5),
        )
    train(cfg, overwrite=True)  # a scratch run, retrained on every benchmark
    return Path(cfg.out) / "checkpoint-last.pt"


def spread_check(counts: dict[str, list[int]]) -> dict[str, Any]:
    """Harness == bare per seed; ART within the torchattacks counts' range +- max(range, 3 sqrt(median))."""
    ta = counts["harness"] + counts["bare"]
    width = max(ta) - min(ta)
    slack = max(width, math.ceil(3 * math.sqrt(statistics.median(ta))))
    lo, hi = min(ta) - slack, max(ta) + slack
    art_ok = all(lo <= c <= hi for c in counts["art"])
    return {
        "harness_equals_bare": counts["harness"] == counts["bare"],
        "art_range_allowed": [lo, hi],
        "art_within_spread": art_ok,
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="default: train a 1-epoch vanilla WINN here")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--attacks", default="fgsm,pgd40,apgd-ce,square", help="comma-separated subset")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (best-of, median)")
    ap.add_argument("--limit", type=int, default=None, help="test images (default: all)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the harness's default")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--square-images", type=int, default=1000)
    ap.add_argument("--square-queries", type=int, default=1000)
    ap.add_argument(
        "--batch-sweep",
        default=None,
        help="e.g. 100,250,500,1000,2000: instead of the peers, time the harness's FGSM job per batch size",
    )
    ap.add_argument(
        "--synth-max-steps", type=int, default=200, help="synthesis cap of the trained checkpoint"
    )
    ap.add_argument("--work-dir", default="runs/peers")
    ap.add_argument("--results", default=None, help="default results/speed.json (none with --smoke)")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny checkpoint, 100 images, 1 repetition; Square 20 images x 20 queries",
    )
    args = ap.parse_args()
    if args.smoke:
        args.limit, args.reps = args.limit or 100, 1
        args.square_images, args.square_queries = min(args.square_images, 20), min(args.square_queries, 20)
    args.results = args.results or (None if args.smoke else "results/speed.json")
    return args


def time_peers(
    args: argparse.Namespace, model: nn.Module, test: ImageSet, batch: int
) -> dict[str, dict[str, dict[str, list[Any]]]]:
    """Every chosen attack through every tool, ``--reps`` interleaved times: seconds and counts."""
    all_peers = peers(args)
    chosen = [all_peers[a] for a in args.attacks.split(",")]

    def inputs(p: Peer) -> tuple[ImageSet, tuple[np.ndarray, np.ndarray]]:
        sub = test.subset(slice(0, p.images)) if p.images else test
        x = torch.cat([xb for xb, _ in sub.batches(4096)]) * 0.5 + 0.5  # [0, 1], as torchattacks maps it
        return sub, (x.numpy(), sub.labels.numpy())

    warm = replace(all_peers["fgsm"], name="warm-up", images=min(200, len(test)))
    data = {p.name: inputs(p) for p in [*chosen, warm]}
    jobs: dict[str, Callable[[Peer, int], tuple[int, int]]] = {
        "harness": lambda p, seed: harness_job(model, data[p.name][0], p, batch, seed),
        "art": lambda p, seed: art_job(model, data[p.name][1], p, batch, seed),
        "bare": lambda p, seed: bare_job(model, data[p.name][0], p, batch, seed),
    }
    for tool in TOOLS:  # warm-up: first-call costs (allocator, oneDNN primitives, imports)
        jobs[tool](warm, 0)
    out = {p.name: {t: {"s": [], "cpu_s": [], "counts": []} for t in TOOLS} for p in chosen}
    for rep in range(args.reps):
        order = TOOLS[rep % 3 :] + TOOLS[: rep % 3]
        for p in chosen:
            for tool in order:
                t0, c0 = time.perf_counter(), time.process_time()
                counts = jobs[tool](p, rep)
                secs, cpu = time.perf_counter() - t0, time.process_time() - c0
                out[p.name][tool]["s"].append(secs)
                out[p.name][tool]["cpu_s"].append(cpu)
                out[p.name][tool]["counts"].append(counts)
                print(
                    f"rep {rep} {p.name:8s} {tool:8s} {secs:8.2f} s ({cpu:7.2f} s CPU)  "
                    f"clean/adv errors {counts}",
                    flush=True,
                )
    return out


def summarise(
    args: argparse.Namespace, runs: dict[str, Any], batch: int, n_test: int
) -> tuple[dict[str, Any], bool]:
    """One entry per attack (times, ratios, counts, checks); whether the FGSM counts differ."""
    all_peers = peers(args)
    common = {
        "command": "python " + " ".join(sys.argv),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "reps": args.reps,
    }
    entries: dict[str, Any] = {}
    failed = False
    for name, by_tool in runs.items():
        p = all_peers[name]
        images = min(p.images or n_test, n_test)
        entry: dict[str, Any] = {"spec": p.spec, "images": images, **common}
        for tool in TOOLS:
            ts, cpu = by_tool[tool]["s"], by_tool[tool]["cpu_s"]
            entry[tool] = {
                "best_s": round(min(ts), 3),
                "median_s": round(statistics.median(ts), 3),
                "runs_s": [round(t, 3) for t in ts],
                "cpu_best_s": round(min(cpu), 3),  # process CPU time: steadier on a busy machine
                "cpu_runs_s": [round(t, 3) for t in cpu],
                "clean_errors": [c for c, _ in by_tool[tool]["counts"]],
                "adv_errors": [a for _, a in by_tool[tool]["counts"]],
            }
        for other in ("bare", "art"):
            for stat in ("best", "median", "cpu_best"):
                ratio = entry["harness"][f"{stat}_s"] / entry[other][f"{stat}_s"]
                entry[f"harness_over_{other}_{stat}"] = round(ratio, 3)
        adv = {t: entry[t]["adv_errors"] for t in TOOLS}
        if p.random:
            entry["check"] = spread_check(adv)
        else:
            same = adv["harness"] == adv["art"] == adv["bare"]
            entry["check"] = {"identical_counts": same}
            failed |= not same
        entries[name] = entry
    return entries, failed


def batch_sweep(args: argparse.Namespace, model: nn.Module, test: ImageSet) -> dict[str, Any]:
    """The harness's FGSM job (clean + attack + scoring) per batch size, interleaved, best-of."""
    sizes = [int(b) for b in args.batch_sweep.split(",")]
    fgsm = peers(args)["fgsm"]
    harness_job(model, test.subset(slice(0, 200)), fgsm, 100, 0)  # warm-up
    secs: dict[int, list[float]] = {b: [] for b in sizes}
    cpu: dict[int, list[float]] = {b: [] for b in sizes}
    for rep in range(args.reps):
        for b in sizes if rep % 2 == 0 else sizes[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            harness_job(model, test, fgsm, b, 0)
            secs[b].append(time.perf_counter() - t0)
            cpu[b].append(time.process_time() - c0)
            print(f"rep {rep} batch {b:5d} {secs[b][-1]:8.2f} s ({cpu[b][-1]:7.2f} s CPU)", flush=True)
    return {
        "command": "python " + " ".join(sys.argv),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "threads": torch.get_num_threads(),
        "images": len(test),
        "reps": args.reps,
        "best_s": {str(b): round(min(v), 3) for b, v in secs.items()},
        "median_s": {str(b): round(statistics.median(v), 3) for b, v in secs.items()},
        "images_per_s_best": {str(b): round(len(test) / min(v), 1) for b, v in secs.items()},
        "cpu_best_s": {str(b): round(min(v), 3) for b, v in cpu.items()},  # steadier on a busy machine
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch_size or inspect.signature(evaluate).parameters["batch_size"].default
    ckpt = checkpoint(args)
    model, _ = load_classifier(ckpt)
    model.eval().requires_grad_(False)  # the same frozen model for every tool
    test = load_dataset(args.dataset, data_dir=args.data_dir).test
    test = test.subset(slice(0, args.limit)) if args.limit else test
    meta = {
        "command": "python " + " ".join(sys.argv),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {**versions(), "adversarial-robustness-toolbox": _art_version()},
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cores": _cores(),
        "checkpoint": str(ckpt) if args.checkpoint else f"1-epoch vanilla WINN trained here ({ckpt})",
        "dataset": args.dataset,
        "eps": EPS,
        "job": "clean error + attack + scoring of the adversarial examples, same frozen model and batches",
    }
    update: dict[str, Any] = {}
    failed = False
    if args.batch_sweep:
        update["batch_sweep"] = sweep = batch_sweep(args, model, test)
        for b, s in sweep["best_s"].items():
            rate, cpu = sweep["images_per_s_best"][b], sweep["cpu_best_s"][b]
            print(f"batch {b:>5s}: best {s:.2f} s, {rate:.0f} images/s; CPU time best {cpu:.2f} s")
    else:
        entries, failed = summarise(args, time_peers(args, model, test, batch), batch, len(test))
        for entry in entries.values():
            entry["checkpoint"] = meta["checkpoint"]  # entries of other runs are kept beside it
        update["attacks"] = entries
        print(_table(entries, meta))
    if args.results:
        path = Path(args.results)
        old = json.loads(path.read_text()) if path.exists() else {}
        before = old.get("peers", {})
        attacks = {**before.get("attacks", {}), **update.pop("attacks", {})}
        old["peers"] = {**before, **meta, **update, "attacks": attacks}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(old, indent=2, sort_keys=True))
        print(f"wrote peers into {path}")
    if failed:
        sys.exit("FGSM error counts differ between the tools")


def _table(entries: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"eps {meta['eps']}, {meta['threads']} threads, best of the repetitions (median in brackets), "
        f"seconds for the whole job",
        "",
        "| attack | images | harness s | ART s | bare torchattacks s | harness/bare | harness/ART "
        "| same, CPU time | adv errors h/a/b | check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in entries.items():
        cell = {t: f"{e[t]['best_s']:.2f} ({e[t]['median_s']:.2f})" for t in TOOLS}
        errs = "/".join(str(e[t]["adv_errors"][0]) for t in TOOLS)
        check = ", ".join(f"{k}={v}" for k, v in e["check"].items() if isinstance(v, bool))
        lines.append(
            f"| {name} | {e['images']} | {cell['harness']} | {cell['art']} | {cell['bare']} | "
            f"{e['harness_over_bare_best']:.2f} | {e['harness_over_art_best']:.2f} | "
            f"{e['harness_over_bare_cpu_best']:.2f} / {e['harness_over_art_cpu_best']:.2f} | "
            f"{errs} | {check} |"
        )
    return "\n".join(lines)


def _art_version() -> str:
    import art

    return str(art.__version__)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    main()
