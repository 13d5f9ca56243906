"""The quickstart: baseline vs WINN on the bundled real MNIST sample, offline, in minutes.

Trains both methods with the paper's objective and settings (smaller budgets: few epochs and a
short synthesis cap: :data:`robust_winn.experiments.presets.QUICK`), attacks both with FGSM and
PGD at paper Table 3's MNIST radius and renders a Table 2/3 style summary from the records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Method, SynthesisConfig, TrainConfig
from ..errors import RunDirError
from ..runtime.checkpoint import load_classifier
from ..runtime.rundir import claim, existing_results
from ..training import train
from ..training.resume import RUN_FILES
from .presets import QUICK, QUICKSTART_DIR

__all__ = ["QUICK", "quickstart", "summary_table"]

QUICK_FILES = ("summary.md", "attack-record.json")  # the quickstart's own results in --out


def summary_table(train_records: dict[str, dict[str, Any]], attack_record: dict[str, Any]) -> pd.DataFrame:
    """One row per model: clean test error (Table 2) and adversarial errors and correction
    rates (Table 3), in percent, all read from the records."""
    rows = []
    for name, rec in train_records.items():
        row: dict[str, Any] = {
            "model": name,
            "epochs": rec["epochs_run"],
            "test_error_%": round(100 * rec["test_error_at_best_val"], 2),
        }
        for r in attack_record["results"]:
            if r["source"] == name and r["scorer"] == name:
                row[f"{r['attack']}_adv_error_%"] = round(100 * r["error"], 2)
        for c in attack_record["correction"]:
            if c["referee"] == name and c["attack"].startswith("fgsm"):
                rate = c["correction_rate"]
                row["fgsm_errors_corrected_by"] = c["other"]
                row["correction_rate_%"] = None if rate is None else round(100 * rate, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def quickstart(
    out: str | Path = QUICKSTART_DIR,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
    command: str | None = None,
) -> pd.DataFrame:
    """Train baseline and WINN on the bundled sample, attack both, write OUT/summary.{md,json}.

    As in paper Table 3, a model's row gives its own FGSM adversarial error and the correction
    rate *by the other model* on its mistakes (REFERENCE §2): the baseline row holds the
    correction rate by WINN (higher is better for WINN), the WINN row the correction rate by
    the baseline (lower is better for WINN).

    A folder that already holds a quickstart is refused unless ``overwrite`` is set.
    """
    from ..runtime.device import resolve_device

    dev = resolve_device(device)
    with claim(out, results=QUICK_FILES, overwrite=overwrite, resumable=False) as out:
        for method in (Method.BASELINE, Method.WINN):  # refuse before any training, not halfway
            found = existing_results(out / method.value, RUN_FILES) if (out / method.value).is_dir() else []
            if found and not overwrite:
                raise RunDirError(
                    f"--out {out} already holds a quickstart ({method.value}/{found[0]}); "
                    f"pass --overwrite to replace it, or choose another --out"
                )
        return _quickstart(out, dev, seed, progress, overwrite, command)


def _quickstart(
    out: Path, dev: Any, seed: int, progress: bool, overwrite: bool, command: str | None
) -> pd.DataFrame:
    from ..attacks.harness import evaluate

    records: dict[str, dict[str, Any]] = {}
    models = {}
    for method in (Method.BASELINE, Method.WINN):
        cfg = TrainConfig(
            dataset="sample",
            method=method,
            epochs=QUICK["epochs"],
            seed=seed,
            device=str(dev),
            out=str(out / method.value),
            progress=progress,
            synthesis=SynthesisConfig(max_steps=QUICK["synth_max_steps"], per_class=QUICK["synth_per_class"]),
        )
        records[method.value] = train(cfg, overwrite=overwrite, command=command)
        models[method.value], _ = load_classifier(out / method.value / "checkpoint-best.pt", dev)
    attack = evaluate(
        models, dataset="sample", attacks=list(QUICK["attacks"]), eps=[QUICK["eps"]], device=dev, seed=seed
    )
    table = summary_table(records, attack)
    (out / "attack-record.json").write_text(json.dumps(attack, indent=2, default=str))
    (out / "summary.md").write_text(table.to_markdown(index=False) + "\n")
    return table
