"""Paper Table 4 (SVHN, ResNet-32, FGSM eps 0.005): adversarial error and correction rates.

Needs DATA_DIR/svhn/{train,test}_32x32.mat (not downloadable offline) and, in practice, a GPU.
Without the files the row is written as "not run here (data unavailable offline)" beside the
paper's numbers; eps 0.005 is taken in [0, 1] pixel units (the paper gives no units).

Usage: python benchmarks/table4.py --data-dir ../shared/data [--seeds 0,1,2] [--epochs 15] ...
"""

from __future__ import annotations

import logging
import shlex
import sys

import click

from robust_winn.cli_attack import reproduce_table4


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True,
              help="Epochs per training run (paper/code: 200).")
@click.option("--data-dir", default="data", show_default=True, help="Dataset root.")
@click.option("--runs-dir", default="runs/table2", show_default=True,
              help="Training runs, shared with Table 2; reused or resumed when present.")
@click.option("--out", "out_dir", default="results", show_default=True, help="Table folder.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N].")
@click.option("--synth-max-steps", type=click.IntRange(min=0), default=200, show_default=True,
              help="Synthesis cap per pass (code: 2000).")
@click.option("--limit-test", type=click.IntRange(min=1), default=None,
              help="Attack the first N test images only (smoke runs).")
@click.option("--allow-cpu-resnet", is_flag=True, help="Run ResNet-32 on the CPU (hours).")
@click.option("--no-progress", is_flag=True, help="Hide training progress bars.")
def main(seeds: str, epochs: int, data_dir: str, runs_dir: str, out_dir: str, device: str,
         synth_max_steps: int, limit_test: int | None, allow_cpu_resnet: bool,
         no_progress: bool) -> None:
    """Reproduce paper Table 4 and print the Markdown table."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("comma-separated integers, e.g. 0,1,2",
                                 param_hint="--seeds") from None
    reproduce_table4(
        out_dir, seeds=seed_list, epochs=epochs, data_dir=data_dir, runs_dir=runs_dir,
        device=device, synth_max_steps=synth_max_steps, allow_cpu_resnet=allow_cpu_resnet,
        limit_test=limit_test, progress=not no_progress,
        command="python benchmarks/table4.py " + shlex.join(sys.argv[1:]),
    )
    click.echo(open(f"{out_dir}/table4.md").read())


if __name__ == "__main__":
    main()
