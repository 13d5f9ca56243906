"""The effect map (issue 13 §5): where does WINN's FGSM effect appear, in alpha and epochs?

WINN's loss is CE + alpha * (Wasserstein term + lambda * GP) (paper §4, Eq. 6; REFERENCE §1.6).
At the paper's alpha and our 15-epoch CPU budget, WINN's FGSM error is within the seed spread of
the baseline's; at 10x alpha it is not (results/ablations.md). The map runs the ablation grid
over the alpha sweep (1x, 3x, 10x, 30x, 100x the paper's alpha, 15 epochs) plus the paper's alpha
at 30 epochs, each seed paired with the baseline of the same seed and epochs, attacked with FGSM
and PGD-40 at eps 0.125, and draws clean, FGSM and PGD error against alpha.

Every run is the ablation driver's (:func:`.ablations.run_ablations`), so runs that Table 2/3 and
the ablations already trained are reused, never retrained; the files are ``effect-map.*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..runtime.atomic import figure_png, write_files_atomically
from .ablations import ALPHA_SWEEP, DEFAULT_VARIANTS, AblationSpec, Variant, run_ablations

__all__ = ["EFFECT_MAP_VARIANTS", "run_effect_map", "save_effect_map_plot"]

_EPOCHS_VARIANT = next(v for v in DEFAULT_VARIANTS if v.name.startswith("epochs"))
EFFECT_MAP_VARIANTS: tuple[Variant, ...] = ALPHA_SWEEP + (_EPOCHS_VARIANT,)
TITLE = "Effect map: WINN's error against alpha and epochs, FGSM and PGD (%), mean ± std over seeds"


def run_effect_map(
    spec: AblationSpec,
    *,
    out_dir: str | Path,
    command: str,
    replace_measured: bool = False,
) -> pd.DataFrame:
    """Train (or reuse) the map's variants, write ``effect-map.{csv,md,json,png}``.

    Args:
        spec: the grid; the map's own is ``AblationSpec(variants=EFFECT_MAP_VARIANTS)``.
        out_dir, command, replace_measured: as :func:`.ablations.run_ablations`.
    """
    df = run_ablations(
        spec,
        out_dir=out_dir,
        command=command,
        replace_measured=replace_measured,
        stem="effect-map",
        title=TITLE,
    )
    save_effect_map_plot(df, Path(out_dir) / "effect-map.png")
    return df


def _line(ax: Any, rows: pd.DataFrame, key: str, **style: Any) -> None:
    ax.errorbar(rows["alpha"], rows[f"{key}_mean"], yerr=rows[f"{key}_std"].fillna(0), capsize=3, **style)


def save_effect_map_plot(df: pd.DataFrame, path: str | Path) -> None:
    """One panel per attack: WINN's clean and adversarial error against alpha (log axis), and
    a last panel of the paired changes (each seed's WINN minus its own baseline).

    Points at the most common epoch count are joined by lines; other epoch counts are drawn as
    separate markers labelled with their epochs, beside a marker for their own baselines'
    adversarial error (a 30-epoch WINN is compared with 30-epoch baselines, not with the dashed
    lines); the main epoch count's baseline errors (same seeds, averaged over its rows) are dashed
    horizontal lines. Error bars: sample std over seeds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = list(dict.fromkeys(df["attack"]))
    main_epochs = int(df["epochs"].mode().iloc[0])
    fig, axes = plt.subplots(1, len(attacks) + 1, figsize=(5 * (len(attacks) + 1), 4), squeeze=False)
    _changes(axes[0][-1], df, attacks, main_epochs)
    for ax, attack in zip(axes[0][:-1], attacks, strict=True):
        rows = df[df["attack"] == attack].sort_values("alpha")
        main = rows[rows["epochs"] == main_epochs]
        _line(
            ax, main, "winn_adv_error", marker="o", color="C3", label=f"WINN adversarial ({main_epochs} ep.)"
        )
        _line(ax, main, "winn_clean_error", marker="s", color="C0", label=f"WINN clean ({main_epochs} ep.)")
        ax.axhline(
            main["baseline_adv_error_mean"].mean(), color="C3", linestyle="--", label="baseline adversarial"
        )
        ax.axhline(
            main["baseline_clean_error_mean"].mean(), color="C0", linestyle="--", label="baseline clean"
        )
        for epochs, other in rows[rows["epochs"] != main_epochs].groupby("epochs"):
            for key, marker, color, label in (
                ("winn_adv_error", "x", "C1", "WINN adversarial"),
                ("baseline_adv_error", "v", "C7", "baseline adversarial"),
                ("winn_clean_error", "+", "C2", "WINN clean"),
            ):
                _line(
                    ax,
                    other,
                    key,
                    marker=marker,
                    color=color,
                    linestyle="none",
                    label=f"{label} ({epochs} ep.)",
                )
        ax.set_xscale("log")
        ax.set_xlabel("alpha (WINN term weight)")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{attack}, eps {rows['eps'].iloc[0]:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    write_files_atomically({Path(path): figure_png(fig, dpi=110)})


def _changes(ax: Any, df: pd.DataFrame, attacks: list[str], main_epochs: int) -> None:
    """The paired changes against alpha: below zero WINN errs less than its baseline."""
    series = [
        (df[df["attack"] == a], "adv_error_change", f"C{i + 3}", "o", "x", a.split(":")[0])
        for i, a in enumerate(attacks)
    ]
    series.append((df.drop_duplicates(["variant"]), "clean_error_change", "C0", "s", "+", "clean"))
    for rows, key, color, main_marker, other_marker, name in series:
        for epochs, part in rows.sort_values("alpha").groupby("epochs"):
            main = epochs == main_epochs
            _line(
                ax,
                part,
                key,
                marker=main_marker if main else other_marker,
                linestyle="-" if main else "none",
                color=color,
                label=f"{name} ({epochs} ep.)",
            )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("alpha (WINN term weight)")
    ax.set_ylabel("WINN - baseline, paired (points)")
    ax.set_title("paired change (below 0: WINN errs less)")
    ax.legend(fontsize=7)
