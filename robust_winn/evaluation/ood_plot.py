"""The energy picture (issue 14 §3): histograms of f(x) and of the energy score, one row per model.

Each row is one model; its left panel shows the critic f(x) (REFERENCE §1.3), its right panel the
energy score logsumexp of the logits (JEM's -E(x)), for the in-distribution test images, the
model's own freshly synthesised pseudo-negatives (paper §4.1), every OOD set and the adversarial
examples, as overlaid density histograms. A model whose critic head was never trained gets the
reason in place of its f(x) histogram. The first set of a panel (the in-distribution images) is
drawn filled. Bins span the 0.5th to 99.5th percentile of all values in a panel; values beyond
are counted in the edge bins, so a far outlier set still shows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import BadValueError
from ..runtime.atomic import figure_png

__all__ = ["energy_histograms_png"]

BINS = 50
_PANELS = (("critic", "critic f(x)"), ("energy", "energy score logsumexp(logits)"))

Panel = Mapping[str, np.ndarray] | str  # set name -> values, or why the panel is empty


def _edges(values: Mapping[str, np.ndarray]) -> np.ndarray:
    pooled = np.concatenate([np.asarray(v, dtype=np.float64) for v in values.values()])
    lo, hi = np.percentile(pooled, [0.5, 99.5])
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, BINS + 1)


def energy_histograms_png(panels: Mapping[str, Mapping[str, Panel]]) -> bytes:
    """The energy picture as PNG bytes.

    Args:
        panels: ``{model: {"critic": panel, "energy": panel}}`` where a panel maps each image
            set (in legend order) to its (N,) values, or is a string saying why it is empty
            (e.g. the critic head of a cross-entropy baseline was never trained).
    """
    if not panels:
        raise BadValueError("no model to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for row, (model, per_score) in zip(axes, panels.items(), strict=True):
        for ax, (key, label) in zip(row, _PANELS, strict=True):
            panel = per_score.get(key, "not computed")
            ax.set_title(f"{model}: {label}", fontsize=9)
            if isinstance(panel, str):
                ax.text(
                    0.5, 0.5, panel, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes
                )
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            edges = _edges(panel)
            for i, (name, values) in enumerate(panel.items()):
                clipped = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
                style = {"histtype": "stepfilled", "alpha": 0.3, "color": "grey"} if i == 0 else {}
                ax.hist(
                    clipped,
                    bins=edges,
                    density=True,
                    linewidth=1.2,
                    label=name,
                    **{"histtype": "step", **style},
                )
            ax.set_xlabel(f"{label} (higher = more in-distribution)", fontsize=8)
            ax.set_ylabel("density", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return figure_png(fig, dpi=110)
