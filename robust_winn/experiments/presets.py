"""The experiments' budgets and defaults, declared once (issue 12 §2).

Tables 2-4 (:mod:`.table2`, :mod:`.tables34`), the ablations (:mod:`.ablations`), the
quickstart (:mod:`.quickstart`) and their ``robust-winn reproduce`` / ``quickstart`` options all
read their numbers here, so a budget changed here changes every command and its ``--help``.

The table budget is the CPU budget of README "Results" and "Deviations": 15 epochs instead of
the paper's 200 (REFERENCE §1.4) and at most 200 synthesis steps instead of the code's 2,000
(REFERENCE §1.6), at the paper's WINN weight alpha (the :class:`TrainConfig` default). This module
imports nothing heavy: the command line reads it to build its options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig

__all__ = [
    "ATTACK_BATCH_SIZE", "Budget", "DATA_DIR", "MNIST_EPS", "PGD_MNIST", "QUICK", "QUICKSTART_DIR",
    "RESULTS_DIR", "RUNS_DIR", "RUNS_ROOT", "SVHN_EPS", "TABLE2_ROWS", "TABLE3_ARCHS", "TABLE3_ATTACKS",
    "TABLE3_DATASET", "TABLE4_ATTACKS", "TABLE4_ROWS", "TABLE_BUDGET",
]


@dataclass(frozen=True)
class Budget:
    """How long every run of a table trains: the numbers a GPU run would raise to the paper's."""

    epochs: int  # passes over the training split (paper/code: 200)
    synth_max_steps: int  # cap on Adam steps per synthesis pass (code: 2000)
    alpha: float  # weight of the WINN term
    seeds: tuple[int, ...]  # one run per seed and method; tables give mean ± std over them

    @property
    def seeds_text(self) -> str:
        """The seeds as ``--seeds`` takes them (``0,1,2``)."""
        return ",".join(map(str, self.seeds))


TABLE_BUDGET = Budget(epochs=15, synth_max_steps=200, alpha=TrainConfig().alpha, seeds=(0, 1, 2))

TABLE2_ROWS: tuple[tuple[str, str], ...] = (("mnist", "vanilla"), ("mnist", "resnet32"), ("svhn", "resnet32"))
TABLE3_DATASET = "mnist"
TABLE3_ARCHS: tuple[str, ...] = ("vanilla", "resnet32")  # paper Table 3's rows
TABLE4_ROWS: tuple[tuple[str, str], ...] = (("svhn", "resnet32"),)  # paper Table 4's row

MNIST_EPS = 0.125  # paper Table 3, in [0, 1] pixel units (= the code's 0.25 on [-1, 1])
SVHN_EPS = 0.005  # paper Table 4; units not given, taken in [0, 1] (DESIGN §2)
PGD_MNIST = "pgd:steps=40,alpha=0.01"  # Madry et al. 2018's MNIST step count and size
TABLE3_ATTACKS: tuple[str, ...] = ("fgsm", PGD_MNIST)  # the paper's FGSM, PGD as a stronger check
TABLE4_ATTACKS: tuple[str, ...] = ("fgsm",)
ATTACK_BATCH_SIZE = 500  # images per attack batch

DATA_DIR = TrainConfig().data_dir  # dataset root (torchvision layout)
RUNS_ROOT = "runs"  # ROOT/table2 (Tables 2-4) and ROOT/ablations/<variant>
RUNS_DIR = f"{RUNS_ROOT}/table2"  # training runs shared by Tables 2-4 and the ablations
RESULTS_DIR = "results"  # table files
QUICKSTART_DIR = "runs/quickstart"  # the quickstart's two runs, attack record and summary

# The quickstart's budget: minutes on 2 CPU cores on the bundled 2,500-image sample. A dict so
# that tests can shrink it (monkeypatch.setitem).
QUICK: dict[str, Any] = {"epochs": 8, "synth_max_steps": 100, "synth_per_class": 50, "eps": MNIST_EPS,
                         "attacks": ("fgsm", "pgd")}
