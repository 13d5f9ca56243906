"""Harness records -> tables (CSV / Markdown), accuracy-vs-eps curves and calibration (CSV / PNG).

Tables are rendered from the record with pandas, never typed by hand (DESIGN §2). One table row
per referee model, attack and eps, in the layout of paper Table 3: the referee's clean and
adversarial error, and for every other model B its correction rate on the referee's errors
(REFERENCE §2) and its error on the referee's examples (transfer). Calibration (issue 14): one row
per model on the clean set and per scored example set, and a reliability diagram of each model on
the clean set and under each white-box attack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from ..evaluation.calibration import reliability_diagram_png
from ..runtime.atomic import figure_png, write_files_atomically
from .harness import Outcomes

__all__ = [
    "attack_table",
    "calibration_table",
    "curve_table",
    "examples_frame",
    "write_attack_outputs",
    "write_examples",
]


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * x, 2)


def attack_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per (referee, attack, eps) plus a worst-case row per (referee, eps); % units."""
    clean = {k: v["clean_error"] for k, v in record["models"].items()}
    rows: dict[tuple[str, str, float], dict[str, Any]] = {}
    for r in record["results"]:
        key = (r["source"], r["attack"], r["eps"])
        row = rows.setdefault(
            key,
            {
                "referee": r["source"],
                "attack": r["attack"],
                "eps": r["eps"],
                "n": r["n"],
                "clean_error_%": _pct(clean[r["source"]]),
            },
        )
        if r["type"] == "white-box":
            row["adversarial_error_%"] = _pct(r["error"])
            row["N_A"] = r["errors"]
        else:
            row[f"transfer_error_{r['scorer']}_%"] = _pct(r["error"])
    for c in record["correction"]:
        row = rows[(c["referee"], c["attack"], c["eps"])]
        row[f"correction_by_{c['other']}_%"] = _pct(c["correction_rate"])
        row[f"N_AB_{c['other']}"] = c["n_ab"]
    table = list(rows.values())
    if len(record["attacks"]) > 1:
        for w in record["worst_case"]:
            if w["source"] == w["scorer"]:
                table.append(
                    {
                        "referee": w["source"],
                        "attack": "worst case (clean or any attack)",
                        "eps": w["eps"],
                        "n": record["n"],
                        "clean_error_%": _pct(clean[w["source"]]),
                        "adversarial_error_%": _pct(w["error"]),
                    }
                )
    return pd.DataFrame(table)


def curve_table(record: dict[str, Any]) -> pd.DataFrame:
    """Long format: source, scorer, attack, type, eps, error, accuracy (eps 0 = clean)."""
    rows = []
    for c in record["curves"]:
        for e, err in zip(c["eps"], c["error"], strict=True):
            rows.append(
                {
                    "source": c["source"],
                    "scorer": c["scorer"],
                    "attack": c["attack"],
                    "type": "white-box" if c["source"] == c["scorer"] else "transfer",
                    "eps": e,
                    "error": err,
                    "accuracy": 1.0 - err,
                }
            )
    return pd.DataFrame(rows)


def _calibration_row(cal: dict[str, Any]) -> dict[str, Any]:
    return {
        "ece_%": _pct(cal["ece"]),
        "nll": round(cal["nll"], 4),
        "brier": round(cal["brier"], 4),
        "accuracy_%": _pct(cal["accuracy"]),
        "confidence_%": _pct(cal["confidence"]),
    }


def calibration_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per model on the clean set, then per (source, attack, eps > 0, scorer); % units.

    ECE over the record's equal-width bins (15), NLL and Brier score of the scorer's softmax
    (evaluation/calibration.py); ``type`` says whether the scorer made the examples (white-box).
    """
    rows = [
        {"scorer": name, "source": "-", "attack": "clean", "eps": 0.0, "type": "clean", "n": record["n"]}
        | _calibration_row(m["calibration"])
        for name, m in record["models"].items()
    ]
    rows += [
        {
            "scorer": r["scorer"],
            "source": r["source"],
            "attack": r["attack"],
            "eps": r["eps"],
            "type": r["type"],
            "n": r["n"],
        }
        | _calibration_row(r["calibration"])
        for r in record["results"]
        if r["eps"] > 0
    ]
    return pd.DataFrame(rows)


def _reliability_curves(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model clean and under each white-box (attack, eps > 0), for the diagram."""

    def curve(cal: dict[str, Any]) -> dict[str, Any]:
        rel = cal["reliability"]
        bins = rel["bins"]
        return {**rel, "edges": [b / bins for b in range(bins + 1)], "ece": cal["ece"]}

    curves = {f"{name} clean": curve(m["calibration"]) for name, m in record["models"].items()}
    for r in record["results"]:
        if r["type"] == "white-box" and r["eps"] > 0:
            curves[f"{r['source']} {r['attack']} {r['eps']:g}"] = curve(r["calibration"])
    return curves


def _curve_png(curves: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (src, scorer, atk), g in curves.groupby(["source", "scorer", "attack"], sort=False):
        label = f"{atk} on {src}" + ("" if src == scorer else f", scored by {scorer}")
        ax.plot(
            g["eps"], 100 * g["accuracy"], marker="o", linestyle="-" if src == scorer else "--", label=label
        )
    ax.set_xlabel("eps (L-inf, [0, 1] pixel units)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig, dpi=120)


# An attack's files; prefixed so that they never collide with a training run's record.json.
ATTACK_FILES = (
    "attack-record.json",
    "attack-table.csv",
    "attack-table.md",
    "attack-curve.csv",
    "attack-curve.png",
    "attack-calibration.csv",
    "attack-reliability.png",
)


def write_attack_outputs(record: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write :data:`ATTACK_FILES` under ``out``; returns them keyed by the unprefixed name.

    Every file is rendered first, then all are written whole or not at all
    (:func:`~robust_winn.runtime.atomic.write_files_atomically`).
    """
    out = Path(out)
    paths = {k.removeprefix("attack-"): out / k for k in ATTACK_FILES}
    table = attack_table(record)
    header = f"Command: `{record.get('command', '')}`\n\n" if record.get("command") else ""
    notes = "".join(f"- warning: {w}\n" for w in record["warnings"])
    body = table.to_markdown(index=False, missingval="-")
    calib = calibration_table(record)
    calib_md = (
        "\n\nCalibration (ECE over 15 equal-width confidence bins, NLL, Brier; clean and on each "
        "example set, by its scorer):\n\n" + calib.to_markdown(index=False, missingval="-")
    )
    curves = curve_table(record)
    write_files_atomically(
        {
            paths["record.json"]: json.dumps(record, indent=2),
            paths["table.csv"]: table.to_csv(index=False),
            paths["table.md"]: header + body + calib_md + "\n" + ("\n" + notes if notes else ""),
            paths["curve.csv"]: curves.to_csv(index=False),
            paths["curve.png"]: _curve_png(curves),
            paths["calibration.csv"]: calib.to_csv(index=False),
            paths["reliability.png"]: reliability_diagram_png(_reliability_curves(record)),
        }
    )
    return paths


def _tag(attack: str, eps: float) -> str:
    return f"{attack}@{eps:g}"


def examples_frame(outcomes: Outcomes, record: dict[str, Any], model: str) -> pd.DataFrame:
    """One row per test image of ``model``: label, clean and white-box predictions, first break.

    ``broken_first`` is ``clean`` for a clean mistake, else the first (attack, eps), in the
    record's attack order and increasing eps, whose example the model misclassifies; empty when
    nothing broke the image (RobustBench's robust error counts the non-empty rows).
    """
    assert outcomes.labels is not None
    labels = outcomes.labels
    cols: dict[str, Any] = {
        "index": range(labels.numel()),
        "label": labels.numpy(),
        "clean_pred": outcomes.clean[model].numpy(),
    }
    first = ["clean" if wrong else "" for wrong in (outcomes.clean[model] != labels).tolist()]
    for a in record["attacks"]:
        for e in record["eps"]:
            if e == 0:
                continue
            pred = outcomes.adv[(model, a["label"], e, model)]
            cols[f"pred:{_tag(a['label'], e)}"] = pred.numpy()
            for i, wrong in enumerate((pred != labels).tolist()):
                if wrong and not first[i]:
                    first[i] = _tag(a["label"], e)
    cols["broken_first"] = first
    return pd.DataFrame(cols)


def _exact_uint8(x: Tensor) -> Tensor:
    """``x`` in [0, 1] as uint8 when that is exact (images on the 1/255 grid), else float32."""
    q = (x * 255.0).round()
    return q.to(torch.uint8) if torch.equal(q / 255.0, x) else x


def write_examples(outcomes: Outcomes, record: dict[str, Any], out: str | Path) -> list[Path]:
    """``attack --save-examples``: per model ``examples-MODEL.csv`` (and with images
    ``adversarial-MODEL.pt`` plus an ``examples-MODEL.png`` of clean / adversarial /
    perturbation for the first 8 test images)."""
    from torchvision.utils import save_image

    out = Path(out)
    written = []
    for model in outcomes.clean:
        path = out / f"examples-{model}.csv"
        examples_frame(outcomes, record, model).to_csv(path, index=False)
        written.append(path)
        mine = {k: v for k, v in outcomes.images.items() if k[0] == model}
        if not mine:
            continue
        pt = out / f"adversarial-{model}.pt"
        torch.save(
            {
                "labels": outcomes.labels,
                "examples": {_tag(a, e): _exact_uint8(x) for (_, a, e), x in mine.items()},
            },
            pt,
        )
        (_, _, eps), adv = max(mine.items(), key=lambda kv: kv[0][2])  # the largest eps
        clean = outcomes.clean_images
        assert clean is not None  # kept with the images
        delta = (adv[: len(clean)] - clean).abs() / max(eps, 1e-12)  # 1 = the whole eps budget
        png = out / f"examples-{model}.png"
        save_image(torch.cat([clean, adv[: len(clean)], delta.clamp(0, 1)]), str(png), nrow=len(clean))
        written += [pt, png]
    return written
