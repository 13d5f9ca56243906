"""Paper Table 3 (MNIST FGSM adversarial error and correction rates): baseline vs WINN.

Trains (or reuses, from --runs-dir) baseline and WINN per seed, attacks each seed's
best-validation checkpoints with FGSM eps 0.125 and PGD (40 steps of 0.01), and writes
OUT/table3.{csv,md,json} and OUT/table3-seeds.csv with the paper's numbers beside ours.

Usage: python benchmarks/table3.py --data-dir ../shared/data [--seeds 0,1,2] [--epochs 15] ...
Quick smoke run: python benchmarks/table3.py --dataset sample --epochs 1 --seeds 0
    --limit-train 300 --limit-test 100 --synth-max-steps 5 --runs-dir /tmp/t3runs --out /tmp/t3
"""

from __future__ import annotations

import logging
import shlex
import sys

import click

from robust_winn.cli_attack import reproduce_table3


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True,
              help="Epochs per training run (paper/code: 200).")
@click.option("--arch", "archs", multiple=True, default=("vanilla",), show_default=True,
              help="Architecture(s) to run: vanilla, resnet32 (ResNet needs a GPU or "
                   "--allow-cpu-resnet); rows not run keep the paper's numbers.")
@click.option("--dataset", default="mnist", show_default=True,
              help="mnist (paper); 'sample' for a quick offline smoke run.")
@click.option("--data-dir", default="data", show_default=True, help="Dataset root.")
@click.option("--runs-dir", default="runs/table2", show_default=True,
              help="Training runs, shared with Table 2; reused or resumed when present.")
@click.option("--out", "out_dir", default="results", show_default=True, help="Table folder.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@click.option("--synth-max-steps", type=click.IntRange(min=0), default=200, show_default=True,
              help="Synthesis cap per pass (code: 2000).")
@click.option("--limit-train", type=click.IntRange(min=1), default=None,
              help="Train on the first N images only (smoke runs).")
@click.option("--limit-test", type=click.IntRange(min=1), default=None,
              help="Attack the first N test images only (smoke runs).")
@click.option("--allow-cpu-resnet", is_flag=True, help="Run ResNet rows on the CPU (hours).")
@click.option("--no-progress", is_flag=True, help="Hide training progress bars.")
def main(seeds: str, epochs: int, archs: tuple[str, ...], dataset: str, data_dir: str,
         runs_dir: str, out_dir: str, device: str, synth_max_steps: int,
         limit_train: int | None, limit_test: int | None, allow_cpu_resnet: bool,
         no_progress: bool) -> None:
    """Reproduce paper Table 3 and print the Markdown table."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("comma-separated integers, e.g. 0,1,2",
                                 param_hint="--seeds") from None
    extra = {"limit_train": limit_train, "limit_test": limit_test} if limit_train or limit_test \
        else None
    reproduce_table3(
        out_dir, seeds=seed_list, epochs=epochs, data_dir=data_dir, arch=archs, dataset=dataset,
        runs_dir=runs_dir, device=device, synth_max_steps=synth_max_steps,
        allow_cpu_resnet=allow_cpu_resnet, limit_test=limit_test, progress=not no_progress,
        extra=extra, command="python benchmarks/table3.py " + shlex.join(sys.argv[1:]),
    )
    click.echo(open(f"{out_dir}/table3.md").read())


if __name__ == "__main__":
    main()
