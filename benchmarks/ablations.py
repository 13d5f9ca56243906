"""Ablations (issue 3): same as `robust-winn reproduce ablations` (`--help` lists every option).

Usage: python benchmarks/ablations.py --data-dir ../shared/data [--variant alpha0.1] [--seeds 0,1]
"""

import sys

from robust_winn.cli.main import main

if __name__ == "__main__":
    main(["reproduce", "ablations", *sys.argv[1:]], prog_name="robust-winn")
