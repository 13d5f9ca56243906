"""Out-of-distribution scores of a classifier and their detection metrics (issue 14 §1).

Every score follows one sign convention: **higher = more in-distribution**. The in-distribution
test images are the positives of the detection metrics, so AUROC 1 means every in-distribution
image scores above every OOD image.

- ``msp``: the maximum softmax probability max_k p(k|x) (Hendrycks & Gimpel 2017, the baseline).
- ``critic``: WINN's critic f(x), the learned affine map of the K logits (REFERENCE §1.3). WINN
  trains f high on real images and low on its own pseudo-negatives (the Wasserstein term
  mean f(x-) - mean f(x+) is minimised, paper §3.3), so f itself is the score.
- ``energy``: logsumexp_k logits_k = -E(x), the negative free energy of JEM (Grathwohl et al.
  2020) and of Liu et al. 2020's energy score.
- ``critic-grad``: -||grad_x f(x)||_2 (gradient in the model's [-1, 1] input units), JEM's
  "approximate mass" score with f in place of log p(x): flat regions of f score higher.

The critic scores mean something only for a model whose critic head was trained, i.e. by WINN
(paper §5.6) or WINN+AT; for any other checkpoint the head is the untrained Linear(K -> 1) of
:class:`~robust_winn.models.Introspective` and :func:`critic_status` says why no number is given.
Metrics are scikit-learn's: AUROC (``roc_auc_score``), AUPR with the in-distribution images as
positives (``average_precision_score``, "AUPR-In") and the FPR at 95% TPR (the share of OOD images
scoring at or above the threshold that keeps 95% of the in-distribution images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.introspective import Introspective
from ..runtime.frozen import frozen_eval

__all__ = [
    "CRITIC_SCORES",
    "CRITIC_TRAINED_METHODS",
    "DEFAULT_SCORES",
    "SCORE_MEANING",
    "Score",
    "critic_status",
    "ood_metrics",
    "score_images",
]


class Score(str, Enum):
    """The OOD scores; each is higher for inputs the model takes as in-distribution."""

    MSP = "msp"  # max_k softmax(logits)_k
    CRITIC = "critic"  # f(x)
    ENERGY = "energy"  # logsumexp_k logits_k = -E(x)
    CRITIC_GRAD = "critic-grad"  # -||grad_x f(x)||_2


SCORE_MEANING = {
    Score.MSP: "max softmax probability (higher = in-distribution)",
    Score.CRITIC: "critic f(x) (higher = in-distribution: WINN trains f up on real images)",
    Score.ENERGY: "logsumexp of the logits = -energy (higher = in-distribution)",
    Score.CRITIC_GRAD: "-||grad_x f(x)||_2 (higher = flatter f = in-distribution)",
}
DEFAULT_SCORES = (Score.MSP, Score.CRITIC, Score.ENERGY)
CRITIC_SCORES = frozenset({Score.CRITIC, Score.CRITIC_GRAD})
CRITIC_TRAINED_METHODS = frozenset({"winn", "winn-at"})  # objectives whose loss has the critic term
TPR_LEVEL = 0.95


def critic_status(checkpoint: Mapping[str, Any]) -> str | None:
    """``None`` when the checkpoint's critic head f was trained, else the reason it was not.

    The head is trained by the Wasserstein term of WINN and WINN+AT with weight alpha > 0
    (``config.alpha``); every other method leaves it at its random initialisation.
    """
    method = checkpoint.get("method")
    if method not in CRITIC_TRAINED_METHODS:
        return f"critic head not trained (method {method!r}; only WINN-trained checkpoints train f)"
    alpha = (checkpoint.get("config") or {}).get("alpha")
    if alpha is not None and not alpha > 0:
        return f"critic head not trained (method {method!r} with alpha {alpha})"
    return None


def ood_metrics(
    score_in: Sequence[float] | np.ndarray, score_out: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """AUROC, AUPR-In and FPR at 95% TPR of a score, in-distribution images as positives.

    Args:
        score_in: scores of the in-distribution images (higher = more in-distribution).
        score_out: scores of the OOD images.

    Returns:
        ``{"auroc", "aupr", "fpr95"}`` in [0, 1]: a perfect score gives 1, 1, 0; a constant
        score gives AUROC 0.5 and FPR95 1 (every OOD image ties with the threshold).

    Raises:
        ValueError: an empty side, or a non-finite score.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    s_in, s_out = np.asarray(score_in, dtype=np.float64), np.asarray(score_out, dtype=np.float64)
    if s_in.ndim != 1 or s_out.ndim != 1 or not s_in.size or not s_out.size:
        raise ValueError("ood_metrics needs two non-empty 1-D score arrays")
    if not (np.isfinite(s_in).all() and np.isfinite(s_out).all()):
        raise ValueError("ood_metrics: the scores hold NaN or infinite values")
    y = np.concatenate([np.ones_like(s_in), np.zeros_like(s_out)])  # in-distribution = positive
    s = np.concatenate([s_in, s_out])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    fpr95 = float(fpr[np.searchsorted(tpr, TPR_LEVEL, side="left")])  # first threshold with TPR >= 95%
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": fpr95,
    }


def _batch_scores(
    model: Introspective, x: Tensor, scores: frozenset[Score]
) -> tuple[Tensor, dict[Score, Tensor]]:
    """Logits (B, K) and every asked score (B,) of one batch in [-1, 1]."""
    grad_norm = None
    if Score.CRITIC_GRAD in scores:
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits, f = model.logits_and_critic(xg)  # (B, K), (B,)
            (grad,) = torch.autograd.grad(f.sum(), xg)  # per image: f_i depends on x_i only (eval)
        grad_norm = grad.flatten(1).norm(dim=1)  # (B,)
        logits, f = logits.detach(), f.detach()
    else:
        logits, f = model.logits_and_critic(x)
    out = {
        Score.MSP: F.softmax(logits.float(), dim=1).amax(dim=1),  # (B,)
        Score.CRITIC: f,  # (B,)
        Score.ENERGY: torch.logsumexp(logits.float(), dim=1),  # (B,)
    }
    if grad_norm is not None:
        out[Score.CRITIC_GRAD] = -grad_norm
    return logits, {k: v for k, v in out.items() if k in scores}


def score_images(
    model: Introspective,
    images: Tensor,
    *,
    scores: Sequence[Score] = DEFAULT_SCORES,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> tuple[dict[Score, np.ndarray], Tensor]:
    """Every score of ``scores`` for each image, and the logits (for calibration).

    Args:
        model: an introspective classifier (logits and critic f); put in eval mode with frozen
            parameters for the call and restored afterwards.
        images: (N, C, H, W), uint8 0..255 or float in the model's [-1, 1] range.
        scores: which scores to compute.
        batch_size: images per forward pass.
        device: where to compute.

    Returns:
        (``{score: (N,) float64 array}``, logits (N, K) float32 on the CPU).
    """
    asked = frozenset(Score(s) for s in scores)
    parts: dict[Score, list[Tensor]] = {s: [] for s in asked}
    logits_all: list[Tensor] = []
    with frozen_eval(model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x.float()  # [-1, 1]
            logits, batch = _batch_scores(model, x, asked)
            logits_all.append(logits.float().cpu())
            for s, v in batch.items():
                parts[s].append(v.double().cpu())
    return {s: torch.cat(v).numpy() for s, v in parts.items()}, torch.cat(logits_all)
