"""``python -m robust_winn ...``: the CLI, so that ``torchrun -m robust_winn train ...`` works."""

from .cli.main import main

if __name__ == "__main__":
    main()
