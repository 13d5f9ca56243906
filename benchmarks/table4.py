"""Paper Table 4: same as `robust-winn reproduce table4` (`--help` lists every option).

Usage: python benchmarks/table4.py --data-dir ../shared/data [--seeds 0,1,2] [--epochs 15] ...
Training runs are shared with Table 2 (--runs-dir, default runs/table2) and reused when present.
"""

import sys

from robust_winn.cli.main import main

if __name__ == "__main__":
    main(["reproduce", "table4", *sys.argv[1:]], prog_name="robust-winn")
