"""OOD records -> files: the record, a table (CSV / Markdown), the energy picture, a reliability diagram.

Issue 14 §1-3. Tables are rendered from the record with pandas, never typed (DESIGN §2); a critic
score that does not apply to a model is shown as ``n/a`` with its reason, never as a number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..runtime.atomic import write_files_atomically
from .calibration import reliability_diagram_png
from .ood import IN_DIST, PSEUDO, OODResult
from .ood_plot import energy_histograms_png
from .ood_scores import Score

__all__ = ["OOD_FILES", "energy_panels", "ood_markdown", "ood_table", "write_ood_outputs"]

OOD_FILES = ("ood-record.json", "ood-table.csv", "ood-table.md", "ood-energy.png", "ood-reliability.png")
COLUMNS = ("model", "ood", "score", "auroc", "aupr", "fpr95", "fooled", "auroc_fooled", "status")


def ood_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per model x OOD set x score (metrics as fractions; empty where not applicable)."""
    return pd.DataFrame(record["rows"]).reindex(columns=list(COLUMNS))


def _pct(x: Any) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.2f}"


def _note(rows: list[dict[str, Any]]) -> str:
    """How many adversarial examples fool each model, and the AUROC against those alone."""
    parts = []
    for r in rows:
        if r.get("fooled") is None or r["status"] != "measured":
            continue
        tail = f", AUROC {_pct(r['auroc_fooled'])} on those" if r.get("auroc_fooled") is not None else ""
        parts.append(f"{r['model']}: {100 * r['fooled']:.1f}% fool it{tail}")
    return "; ".join(parts)


def ood_markdown(record: dict[str, Any]) -> str:
    """The record as Markdown: calibration per model, then AUROC / AUPR-In / FPR95 (%) per set and score."""
    ind, models = record["in_distribution"], list(record["models"])
    lines = [
        "# Out-of-distribution detection and calibration",
        "",
        f"Command: `{record['command']}`  ",
        f"In-distribution: {ind['dataset']} test ({ind['n']} images); seed {record['seed']}; device "
        f"{record['device']} ({record['torch_threads']} threads); date {record['date']}; wall time "
        f"{record['wall_time_s'] / 60:.1f} min  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in record['versions'].items())}",
        "",
        "## Calibration (in-distribution test images, 15 bins)",
        "",
        "| model | method | critic f | accuracy % | ECE % | NLL | Brier |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in record["models"].items():
        c = m["calibration"]["clean"]
        critic = "trained" if m["critic"] == "trained" else "not trained"
        lines.append(
            f"| {name} | {m['method']} | {critic} | {100 * c['accuracy']:.2f} | {100 * c['ece']:.2f} | "
            f"{c['nll']:.4f} | {c['brier']:.4f} |"
        )
    lines += [
        "",
        "## Detection (in-distribution = positive): AUROC / AUPR-In / FPR@95%TPR, %",
        "",
        "| OOD set | score | " + " | ".join(models) + " | adversarial examples |",
        "|---|---|" + "---|" * len(models) + "---|",
    ]
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in record["rows"]:
        rows.setdefault((r["ood"], r["score"]), {})[r["model"]] = r
    for (ood, score), per in rows.items():
        cells = [
            "n/a"
            if per[m]["status"] != "measured"
            else " / ".join(_pct(per[m][k]) for k in ("auroc", "aupr", "fpr95"))
            for m in models
        ]
        lines.append(f"| {ood} | {score} | " + " | ".join(cells) + f" | {_note(list(per.values()))} |")
    lines += ["", "Scores (higher = more in-distribution):", ""]
    lines += [f"- `{k}`: {v}" for k, v in record["scores"].items()]
    lines += [
        f"- n/a for {k}: {m['critic']}" for k, m in record["models"].items() if m["critic"] != "trained"
    ]
    for name, m in record["models"].items():
        pn = m.get("pseudo_negatives")
        if pn:
            lines.append(
                f"- pseudo-negatives of {name} (energy picture only): {pn['images']} images, at most "
                f"{pn['max_steps']} Adam steps ({pn['steps']} run, {100 * pn['converged']:.0f}% converged)"
            )
    if record["warnings"]:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in record["warnings"]]
    return "\n".join(lines) + "\n"


def energy_panels(result: OODResult) -> dict[str, dict[str, Any]]:
    """The energy picture's panels: per model f(x) (or why not) and the energy score, per set."""
    panels: dict[str, dict[str, Any]] = {}
    for name, per in result.values.items():
        reason = result.record["models"][name]["critic"]
        order = [IN_DIST, PSEUDO, *(s["name"] for s in result.record["ood_sets"])]
        f = {k: per[Score.CRITIC][k] for k in order if k in per[Score.CRITIC]}
        panels[name] = {
            "critic": f if reason == "trained" else reason,
            "energy": {k: per[Score.ENERGY][k] for k in order if k in per[Score.ENERGY]},
        }
    return panels


def write_ood_outputs(result: OODResult, out: str | Path) -> dict[str, Path]:
    """Write :data:`OOD_FILES` into the folder ``out`` (claimed by the caller); return them by name.

    Every file is rendered first and then written whole or not at all
    (:func:`~robust_winn.runtime.atomic.write_files_atomically`): an interruption leaves the
    folder as it was.
    """
    out = Path(out)
    paths = {n: out / n for n in OOD_FILES}
    rec = result.record
    reliability = {f"{k} clean": v["reliability"] for k, v in rec["models"].items()}
    write_files_atomically(
        {
            paths["ood-energy.png"]: energy_histograms_png(energy_panels(result)),
            paths["ood-reliability.png"]: reliability_diagram_png(reliability),
            paths["ood-table.csv"]: ood_table(rec).to_csv(index=False),
            paths["ood-table.md"]: ood_markdown(rec),
            paths["ood-record.json"]: json.dumps(rec, indent=2, default=str),
        }
    )
    return paths
