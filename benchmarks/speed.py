"""Speed benchmark (issue 2 §9, issue 3 §7): measured in one run, same model and batch size.

Prints and merges into results/speed.json (name -> value):
  (a) winn_epoch_over_baseline_epoch: one real epoch of each method, with where WINN's time goes
      (classifier steps vs synthesis);
  (b) synthesis_over_raw_throughput: synthesis image-steps per second over the model's raw
      forward + backward-to-input throughput at the synthesis batch size (the ceiling);
  (c) fgsm_over_raw_throughput and fgsm_mnist_test_seconds: the harness's FGSM images per second
      over the same raw throughput, and the time to attack the 10,000 MNIST test images.

Usage: python benchmarks/speed.py [--data-dir ../shared/data] [--arch vanilla] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from robust_winn.attacks.harness import evaluate
from robust_winn.attacks.registry import build_attack, parse_attack
from robust_winn.config import Method, SynthesisConfig, TrainConfig
from robust_winn.data.datasets import load_dataset
from robust_winn.models import Introspective, build_classifier, create_model
from robust_winn.runtime.checkpoint import versions
from robust_winn.runtime.device import resolve_device
from robust_winn.synthesis import PseudoNegativeSampler
from robust_winn.synthesis.ascent import AscentSampler
from robust_winn.training import train


def raw_input_grad_throughput(model: Introspective, x: torch.Tensor, reps: int) -> float:
    """Images per second of forward + backward to the input (no parameter grads): the ceiling."""
    model.eval().requires_grad_(False)

    def once() -> None:
        xi = x.detach().requires_grad_(True)
        logits, f = model.logits_and_critic(xi)
        torch.autograd.grad(f.sum() + logits.logsumexp(1).sum(), xi)

    once()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    if x.is_cuda:
        torch.cuda.synchronize()
    return reps * x.shape[0] / (time.perf_counter() - t0)


def synthesis_throughput(model: Introspective, x0: torch.Tensor, steps: int) -> float:
    """Image-steps per second of the real sampler run for ``steps`` steps without early stop."""
    k = 10
    targets = torch.arange(x0.shape[0], device=x0.device) % k
    sampler = PseudoNegativeSampler(max_steps=steps, tol=-1.0)  # tol < 0: never stops early
    sampler.synthesize(model, x0, targets, targets.cpu(), torch.zeros(k))  # warm-up
    t0 = time.perf_counter()
    _, stats = sampler.synthesize(model, x0, targets, targets.cpu(), torch.zeros(k))
    if x0.is_cuda:
        torch.cuda.synchronize()
    return stats.image_steps / (time.perf_counter() - t0)


def raw_classifier_grad_throughput(clf: torch.nn.Module, x: torch.Tensor, reps: int) -> float:
    """Images per second of the classifier's forward + backward of CE to the input."""
    clf.eval().requires_grad_(False)
    y = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)

    def once() -> None:
        xi = x.detach().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(clf(xi), y), xi)

    once()
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    if x.is_cuda:
        torch.cuda.synchronize()
    return reps * x.shape[0] / (time.perf_counter() - t0)


def fgsm_figures(clf: torch.nn.Module, data: Any, batch: int, device: torch.device) -> dict[str, float]:
    """FGSM speed: the attack step alone, and the whole harness over the full test set."""
    spec = parse_attack("fgsm")
    x, y = next(data.test.batches(batch))  # (B, C, H, W) in [-1, 1], (B,)
    x, y = x.to(device), y.to(device)
    clf.eval().requires_grad_(False)  # as evaluate() runs every attack: no weight gradients
    atk = build_attack(spec, clf, eps=0.125, num_classes=data.num_classes, image_channels=x.shape[1], seed=0)
    atk.set_device(device)
    atk(x, y)  # warm-up
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        atk(x, y)
    if x.is_cuda:
        torch.cuda.synchronize()
    step = reps * batch / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    rec = evaluate(
        {"model": clf}, dataset=data, attacks=["fgsm"], eps=[0.125], batch_size=batch, device=device
    )
    secs = time.perf_counter() - t0
    return {
        "fgsm_attack_step_images_per_s": step,
        "fgsm_harness_images_per_s": rec["n"] / secs,
        "fgsm_test_seconds": secs,
        "fgsm_test_images": float(rec["n"]),
    }


def critic64_figures(device: torch.device, batch: int = 100, steps: int = 20) -> dict[str, float]:
    """Unsupervised synthesis (issue 4 §9): the 64x64 critic's ascent over its raw throughput."""
    torch.manual_seed(0)
    critic = create_model("critic64", in_channels=3, num_classes=1).to(device).eval()
    x = torch.rand(batch, 3, 64, 64, device=device) * 2 - 1

    def once() -> None:
        xi = x.detach().requires_grad_(True)
        torch.autograd.grad(critic(xi).sum(), xi)

    critic.requires_grad_(False)
    once()
    t0 = time.perf_counter()
    for _ in range(3):
        once()
    if x.is_cuda:
        torch.cuda.synchronize()
    raw = 3 * batch / (time.perf_counter() - t0)
    sampler = AscentSampler(max_steps=steps, batch_size=batch)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    _, stats = sampler.synthesize(critic, x, tau_min=1e9, tau_max=1e9, generator=gen)  # never stops
    if x.is_cuda:
        torch.cuda.synchronize()
    syn = batch * stats.mean_steps / (time.perf_counter() - t0)
    return {
        "critic64_raw_fwd_bwd_input_images_per_s": raw,
        "critic64_synthesis_image_steps_per_s": syn,
        "critic64_synthesis_over_raw_throughput": syn / raw,
    }


def epoch_times(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One epoch of baseline and of WINN on the same data, model and batch size."""
    res: dict[str, float] = {}
    for method in (Method.BASELINE, Method.WINN):
        cfg = TrainConfig(
            dataset=args.dataset,
            data_dir=args.data_dir,
            arch=args.arch,
            method=method,
            epochs=1,
            limit_train=args.limit_train,
            device=args.device,
            seed=0,
            out=str(out / method.value),
            progress=False,
            synthesis=SynthesisConfig(max_steps=args.synth_max_steps),
        )
        rec = train(cfg, overwrite=True)  # a scratch run, retrained on every benchmark
        h = rec["history"][0]
        res[f"{method.value}_epoch_s"] = h["train_time_s"]
        if method is Method.WINN:
            res["winn_synthesis_s"] = h["synth_time_s"]
            res["winn_classifier_steps_s"] = h["train_time_s"] - h["synth_time_s"]
            res["winn_synth_steps"] = h["synth_steps"]
    res["winn_epoch_over_baseline_epoch"] = res["winn_epoch_s"] / res["baseline_epoch_s"]
    res["winn_classifier_steps_over_baseline_epoch"] = (
        res["winn_classifier_steps_s"] / res["baseline_epoch_s"]
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--arch", default="vanilla")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--limit-train", type=int, default=None, help="default: the whole 45k split")
    ap.add_argument("--synth-max-steps", type=int, default=200, help="synthesis cap for (a)")
    ap.add_argument("--synth-batch", type=int, default=1000, help="batch for (b), = 10 x 100")
    ap.add_argument("--work-dir", default="runs/speed")
    ap.add_argument("--results", default="results/speed.json")
    args = ap.parse_args()

    torch.manual_seed(0)
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    clf = build_classifier(args.arch, image_shape=data.image_shape, num_classes=data.num_classes)
    model = Introspective(clf, data.num_classes).to(device)
    x = torch.rand(args.synth_batch, *data.image_shape, device=device) * 2 - 1

    figures: dict[str, float] = {}
    raw = raw_input_grad_throughput(model, x, reps=5)
    syn = synthesis_throughput(model, x, steps=20)
    figures.update(
        {
            "raw_fwd_bwd_input_images_per_s": raw,
            "synthesis_image_steps_per_s": syn,
            "synthesis_over_raw_throughput": syn / raw,
        }
    )
    print(
        f"(b) raw fwd+bwd-to-input: {raw:,.0f} img/s; synthesis: {syn:,.0f} image-steps/s; "
        f"ratio {syn / raw:.3f} (target >= 0.8)"
    )

    fg = fgsm_figures(model.classifier, data, batch=args.synth_batch, device=device)
    raw_clf = raw_classifier_grad_throughput(model.classifier, x, reps=5)
    figures.update(fg)
    figures["raw_classifier_fwd_bwd_input_images_per_s"] = raw_clf
    figures["fgsm_over_raw_throughput"] = fg["fgsm_attack_step_images_per_s"] / raw_clf
    figures["fgsm_harness_over_raw_throughput"] = fg["fgsm_harness_images_per_s"] / raw_clf
    print(
        f"(c) FGSM attack step (torchattacks through the harness's builder): "
        f"{fg['fgsm_attack_step_images_per_s']:,.0f} img/s over raw classifier fwd+bwd-to-input "
        f"{raw_clf:,.0f} img/s = {figures['fgsm_over_raw_throughput']:.3f} (target >= 0.9); "
        f"whole harness (clean pass with gradient statistics + attack + scoring): "
        f"{fg['fgsm_harness_images_per_s']:,.0f} img/s = "
        f"{figures['fgsm_harness_over_raw_throughput']:.3f}; "
        f"{fg['fgsm_test_images']:.0f} test images in {fg['fgsm_test_seconds']:.1f}s"
    )

    c64 = critic64_figures(device)
    figures.update(c64)
    print(
        f"(d) critic64 (64x64x3, batch 100): raw {c64['critic64_raw_fwd_bwd_input_images_per_s']:,.0f} "
        f"img/s; ascent {c64['critic64_synthesis_image_steps_per_s']:,.0f} image-steps/s; ratio "
        f"{c64['critic64_synthesis_over_raw_throughput']:.3f} (target >= 0.8)"
    )

    ep = epoch_times(args, Path(args.work_dir))
    figures.update(ep)
    print(
        f"(a) baseline epoch {ep['baseline_epoch_s']:.1f}s; WINN epoch {ep['winn_epoch_s']:.1f}s "
        f"= {ep['winn_classifier_steps_s']:.1f}s classifier steps "
        f"({ep['winn_classifier_steps_over_baseline_epoch']:.2f}x baseline) + "
        f"{ep['winn_synthesis_s']:.1f}s synthesis ({ep['winn_synth_steps']:.0f} steps, cap "
        f"{args.synth_max_steps}); ratio {ep['winn_epoch_over_baseline_epoch']:.2f}"
    )

    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({k: round(float(v), 4) for k, v in figures.items()})
    old["_meta"] = {
        "command": "python benchmarks/speed.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "arch": args.arch,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path.write_text(json.dumps(old, indent=2, sort_keys=True))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
