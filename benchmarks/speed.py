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

import torch

from robust_winn.checkpoint import versions
from robust_winn.config import Method, SynthesisConfig, TrainConfig
from robust_winn.data import load_dataset
from robust_winn.models import Introspective, build_classifier
from robust_winn.synthesis import PseudoNegativeSampler
from robust_winn.training import resolve_device, train


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


def epoch_times(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One epoch of baseline and of WINN on the same data, model and batch size."""
    res: dict[str, float] = {}
    for method in (Method.BASELINE, Method.WINN):
        cfg = TrainConfig(
            dataset=args.dataset, data_dir=args.data_dir, arch=args.arch, method=method,
            epochs=1, limit_train=args.limit_train, device=args.device, seed=0,
            out=str(out / method.value), progress=False,
            synthesis=SynthesisConfig(max_steps=args.synth_max_steps),
        )
        rec = train(cfg)
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
    figures.update({
        "raw_fwd_bwd_input_images_per_s": raw,
        "synthesis_image_steps_per_s": syn,
        "synthesis_over_raw_throughput": syn / raw,
    })
    print(f"(b) raw fwd+bwd-to-input: {raw:,.0f} img/s; synthesis: {syn:,.0f} image-steps/s; "
          f"ratio {syn / raw:.3f} (target >= 0.8)")

    try:
        from robust_winn.attacks.harness import fgsm_throughput
    except ImportError:
        fgsm_throughput = None
    if fgsm_throughput is not None:
        fig = fgsm_throughput(model, data.test, batch_size=args.synth_batch, device=device)
        figures["fgsm_images_per_s"] = fig["images_per_s"]
        figures["fgsm_over_raw_throughput"] = fig["images_per_s"] / raw
        figures["fgsm_mnist_test_seconds"] = fig["seconds"]
        print(f"(c) FGSM: {fig['images_per_s']:,.0f} img/s, ratio {fig['images_per_s'] / raw:.3f} "
              f"(target >= 0.9); {len(data.test)} test images in {fig['seconds']:.1f}s")

    ep = epoch_times(args, Path(args.work_dir))
    figures.update(ep)
    print(f"(a) baseline epoch {ep['baseline_epoch_s']:.1f}s; WINN epoch {ep['winn_epoch_s']:.1f}s "
          f"= {ep['winn_classifier_steps_s']:.1f}s classifier steps "
          f"({ep['winn_classifier_steps_over_baseline_epoch']:.2f}x baseline) + "
          f"{ep['winn_synthesis_s']:.1f}s synthesis ({ep['winn_synth_steps']:.0f} steps, cap "
          f"{args.synth_max_steps}); ratio {ep['winn_epoch_over_baseline_epoch']:.2f}")

    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({k: round(float(v), 4) for k, v in figures.items()})
    old["_meta"] = {
        "command": "python benchmarks/speed.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "device": str(device), "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "versions": versions(), "arch": args.arch,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path.write_text(json.dumps(old, indent=2, sort_keys=True))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
