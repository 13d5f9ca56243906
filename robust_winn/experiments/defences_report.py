"""The defence comparison's tables (issue 13 §2): the rows of :mod:`.defences`, rendered and written.

defences.md puts mean ± sample std per cell beside the budget, the ladder, the subset marks (†)
and the published anchors; the csv/json files keep every number. All four files are written
whole or not at all (:func:`..runtime.atomic.write_files_atomically`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..runtime.atomic import write_files_atomically

__all__ = ["write_defences"]


def _missing(x: Any) -> bool:
    return x is None or bool(pd.isna(x))


def _fmt(m: Any, s: Any) -> str:
    """``mean ± std``; the mean alone where there is no std (anchors), ``-`` where no mean."""
    if _missing(m):
        return "-"
    return f"{m:.2f}" if _missing(s) else f"{m:.2f} ± {s:.2f}"


def _num(x: Any, spec: str) -> str:
    return "-" if _missing(x) else format(x, spec)


def write_defences(df: pd.DataFrame, seeds: pd.DataFrame, meta: dict[str, Any], out: Path) -> None:
    """defences.{csv,md,json} and defences-seeds.csv, rendered in full first, then written atomically.

    ``df``: one row per (method, eps) with ``<cell>_mean``/``_std`` columns; ``seeds``: one row per
    (method, seed, eps); ``meta``: the run header and settings of :func:`.defences.reproduce_defences`.
    """
    ladder = meta["ladder"]
    cells = ["clean_error", *(a["name"] for a in ladder), "worst_case", "worst_case_full_set"]
    mark = {a["name"]: " †" for a in ladder if a["subset"] and meta["subset_size"]}
    if meta["subset_size"]:
        mark["worst_case"] = " †"
    lines = [
        "# WINN against the standard defences: test error (%) under the attack ladder",
        "",
        f"Command: `{meta['command']}`  ",
        f"Budget: {meta['budget']}; seeds: {meta['seeds']}; epochs: {meta['epochs']}; "
        f"synthesis cap {meta['synth_max_steps']}; "
        f"training attack of pgd-at/trades/winn-at: {meta['training_attack']}; test images: "
        f"{meta['n_test'] or '-'}; subset († cells): "
        f"{meta['subset_size'] or 'none (every attack on every image)'} (seed {meta['subset_seed']}); "
        f"device: {meta['device']} ({meta['torch_threads']} threads); training wall time (sum over "
        f"runs, reused runs included): {meta['train_wall_time_s'] / 60:.1f} min; wall time of this "
        f"command: {meta['wall_time_s'] / 60:.1f} min; date: {meta['date']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        "",
        "| eps | method | source | arch | "
        + " | ".join(c.replace("_", " ") + mark.get(c, "") for c in cells)
        + " | train min / run | image-passes / run (x baseline) | status |",
        "|" + "---|" * (len(cells) + 7),
    ]
    for r in df.sort_values("eps", kind="stable").to_dict("records"):
        nums = " | ".join(_fmt(r[f"{c}_mean"], r[f"{c}_std"]) for c in cells)
        passes = (
            "-"
            if _missing(r["image_passes"])
            else (f"{r['image_passes']:,.0f} (x{_num(r['passes_vs_baseline'], '.1f')})")
        )
        train = _fmt(r["train_min_mean"], r["train_min_std"])
        lines.append(
            f"| {r['eps']:g} | {r['method']} | {r['source']} | {r['arch']} | {nums} | {train} | "
            f"{passes} | {r['status']} |"
        )
    lines += [
        "",
        "Mean ± sample std over seeds; each seed's best-validation checkpoint is attacked. Attacks: "
        + "; ".join(f"{a['name']} = `{a['attack']}`" for a in ladder)
        + ". Worst case: RobustBench's "
        "convention, an image is broken if its clean prediction is wrong or any attack breaks it; "
        "'worst case full set' takes only the attacks that saw every test image. † = computed on the "
        "fixed subset (indices in defences.json); the `subset_cells` column of defences.csv names them. "
        "Image-passes: forward-backward passes of training images, synthesis steps and training-attack "
        "steps per run (record `cost`). Anchor rows are published results on other architectures, "
        "not ours: their worst case is AutoAttack standard on all 10,000 images.",
    ]
    if meta["warnings"]:
        lines += ["", "Sanity warnings (Carlini et al. 2019):", ""] + [f"- {w}" for w in meta["warnings"]]
    write_files_atomically(
        {
            out / "defences.csv": df.to_csv(index=False),
            out / "defences-seeds.csv": seeds.to_csv(index=False),
            out / "defences.json": json.dumps(
                {**meta, "rows": df.to_dict("records"), "per_seed": seeds.to_dict("records")},
                indent=2,
                default=str,
            ),
            out / "defences.md": "\n".join(lines) + "\n",
        }
    )
