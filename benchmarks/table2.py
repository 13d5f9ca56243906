"""Paper Table 2 (test errors, baseline vs WINN): same as `robust-winn reproduce table2`.

Usage: python benchmarks/table2.py --data-dir ../shared/data [--seeds 0,1,2] [--epochs 15] ...
(`--help` lists every option).
"""

import sys

from robust_winn.cli.main import main

if __name__ == "__main__":
    main(["reproduce", "table2", *sys.argv[1:]], prog_name="robust-winn")
