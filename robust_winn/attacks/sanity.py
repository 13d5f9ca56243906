"""Sanity checks on attack results (Carlini et al. 2019, "On Evaluating Adversarial Robustness").

Each check reads the flat result rows the harness produces and returns human-readable warnings.
A warning is not an error: it says that an evaluation *looks* broken (gradient masking, an
attack bug, too few steps) and should be looked at before its numbers are trusted.

Rows are dicts with keys ``source`` (model the examples were made on), ``scorer`` (model that
classified them), ``attack`` (label), ``kind`` (:class:`AttackKind` value), ``eps`` and
``error``. White-box rows have ``source == scorer``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .registry import AttackKind

__all__ = ["run_sanity_checks", "zero_gradient_warnings"]

Row = dict[str, Any]

_GRADIENT_KINDS = (AttackKind.SINGLE_STEP, AttackKind.ITERATIVE, AttackKind.ENSEMBLE)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _monotone_in_eps(rows: Sequence[Row], tol: float) -> list[str]:
    """Error must not fall as eps grows (Carlini et al. 2019 §5.2, 'accuracy vs distortion')."""
    out = []
    curves: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if r["source"] == r["scorer"]:
            curves[(r["source"], r["attack"])].append((r["eps"], r["error"]))
    for (src, atk), pts in curves.items():
        pts.sort()
        for (e0, err0), (e1, err1) in zip(pts, pts[1:], strict=False):
            if err1 < err0 - tol:
                out.append(
                    f"{atk} on {src}: error falls from {_pct(err0)} at eps={e0} to {_pct(err1)} "
                    f"at eps={e1}; a larger budget must not weaken an attack (bug or gradient "
                    f"masking; Carlini et al. 2019 §5.2)"
                )
    return out


def _iterative_vs_single_step(rows: Sequence[Row], tol: float) -> list[str]:
    """An iterative attack weaker than FGSM points at gradient masking or too few steps."""
    out = []
    fgsm: dict[tuple[str, float], float] = {}
    for r in rows:
        if r["source"] == r["scorer"] and r["kind"] == AttackKind.SINGLE_STEP.value:
            key = (r["source"], r["eps"])
            fgsm[key] = max(fgsm.get(key, 0.0), r["error"])
    for r in rows:
        key = (r["source"], r["eps"])
        if (
            r["source"] == r["scorer"]
            and key in fgsm
            and r["eps"] > 0
            and r["kind"] in (AttackKind.ITERATIVE.value, AttackKind.ENSEMBLE.value)
            and r["error"] < fgsm[key] - tol
        ):
            out.append(
                f"{r['attack']} on {r['source']} at eps={r['eps']}: error {_pct(r['error'])} "
                f"below single-step FGSM's {_pct(fgsm[key])}; an iterative attack should be at "
                f"least as strong (more steps or restarts? Carlini et al. 2019 §5.4)"
            )
    return out


def _unbounded_reaches_full_error(rows: Sequence[Row], tol: float) -> list[str]:
    """At eps = 1 any image is reachable, so a working iterative attack reaches ~100% error.

    Single-step FGSM is exempt: one signed step need not find the other class.
    """
    out = []
    for r in rows:
        if (
            r["source"] == r["scorer"]
            and r["eps"] >= 1.0
            and r["kind"] != AttackKind.SINGLE_STEP.value
            and r["error"] < 1.0 - tol
        ):
            out.append(
                f"{r['attack']} on {r['source']} at eps=1 reaches only {_pct(r['error'])} error; "
                f"an unbounded attack should reach ~100% (Carlini et al. 2019 §5.2)"
            )
    return out


def _weaker_access_beats_white_box(rows: Sequence[Row], tol: float) -> list[str]:
    """Transfer or gradient-free attacks beating white-box gradient attacks suggest masking."""
    out = []
    white: dict[tuple[str, str, float], float] = {}
    best_grad: dict[tuple[str, float], float] = {}
    for r in rows:
        if r["source"] == r["scorer"]:
            white[(r["scorer"], r["attack"], r["eps"])] = r["error"]
            if r["kind"] in (k.value for k in _GRADIENT_KINDS):
                key = (r["source"], r["eps"])
                best_grad[key] = max(best_grad.get(key, 0.0), r["error"])
    for r in rows:
        own = white.get((r["scorer"], r["attack"], r["eps"]))
        if r["source"] != r["scorer"] and own is not None and r["error"] > own + tol:
            out.append(
                f"{r['attack']} at eps={r['eps']}: examples made on {r['source']} fool "
                f"{r['scorer']} more ({_pct(r['error'])}) than examples made on {r['scorer']} "
                f"itself ({_pct(own)}); transfer beating white-box suggests gradient masking "
                f"(Carlini et al. 2019 §5.5)"
            )
        key = (r["source"], r["eps"])
        if (
            r["source"] == r["scorer"]
            and r["kind"] == AttackKind.GRADIENT_FREE.value
            and key in best_grad
            and r["error"] > best_grad[key] + tol
        ):
            out.append(
                f"{r['attack']} (gradient-free) on {r['source']} at eps={r['eps']}: error "
                f"{_pct(r['error'])} above the best gradient attack's {_pct(best_grad[key])}; "
                f"suggests gradient masking (Carlini et al. 2019 §5.5)"
            )
    return out


def run_sanity_checks(rows: Sequence[Row], *, tolerance: float) -> list[str]:
    """All result-level checks; ``tolerance`` is the absolute error slack (e.g. 0.01 = 1 point)."""
    return [
        *_monotone_in_eps(rows, tolerance),
        *_iterative_vs_single_step(rows, tolerance),
        *_unbounded_reaches_full_error(rows, tolerance),
        *_weaker_access_beats_white_box(rows, tolerance),
    ]


def zero_gradient_warnings(
    name: str, *, image_fraction: float, entry_fraction: float, threshold: float = 0.5
) -> list[str]:
    """Warn when many input gradients are exactly zero (Carlini et al. 2019 §5.3, masking).

    Args:
        name: model name for the message.
        image_fraction: share of test images whose whole input gradient of CE is zero.
        entry_fraction: share of all gradient entries (pixels) that are exactly zero.
        threshold: share above which the warning fires.
    """
    if image_fraction > threshold or entry_fraction > threshold:
        return [
            f"{name}: {_pct(image_fraction)} of test images (and {_pct(entry_fraction)} of "
            f"pixels) have an exactly zero input gradient; sign-gradient attacks cannot move "
            f"them, so gradient-based errors understate the risk (gradient masking, e.g. a "
            f"saturated softmax; Carlini et al. 2019 §5.3)"
        ]
    return []
