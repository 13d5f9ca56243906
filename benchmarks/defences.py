"""WINN against the standard defences (issue 13 §2): `robust-winn reproduce defences`.

Prints the command it runs, then the table (`--help` lists every option). The full comparison:

    python benchmarks/defences.py --data-dir ../shared/data --device cpu

trains baseline, WINN (alpha 0.01 and 0.1), PGD-AT, TRADES and WINN+AT for seeds 0, 1, 2 (15
epochs; Table 2's and the alpha ablation's runs are reused when their settings match), attacks
every best-validation checkpoint at eps 0.125 and 0.3 with FGSM, PGD-40 x 5 restarts, APGD-CE,
APGD-DLR (targeted) and Square, and writes results/defences.{csv,md,json} and defences-seeds.csv:
35-70 h on 2 CPU cores, minutes on a GPU. What 2 cores do in about 3 h (the committed table):

    python benchmarks/defences.py --preset cpu --data-dir ../shared/data --device cpu --no-progress

(3 seeds, 2 epochs, PGD-10 training attack, all but FGSM on a 1,000-image subset with APGD-T on 3
targets and Square at 1,000 queries; experiments/presets.py says why each cut).
"""

import shlex
import sys

from robust_winn.cli.main import main

if __name__ == "__main__":
    args = ["reproduce", "defences", *sys.argv[1:]]
    sys.argv = ["robust-winn", *args]  # the records store the command as a user would type it
    print("$ robust-winn " + shlex.join(args), flush=True)
    main(args, prog_name="robust-winn")
