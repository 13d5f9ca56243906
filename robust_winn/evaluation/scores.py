"""Sample-quality scores: the Inception score and a "digit score" (paper §5.5; REFERENCE §3.10).

Inception score (Salimans et al. 2016), as in the OpenAI implementation the paper used:
split the N class-probability vectors p(y|x) into ``splits`` (10) equal parts; for each part
IS = exp(mean_x KL(p(y|x) || p(y))) with p(y) the part's mean; report mean and std over parts.

- :func:`inception_score` feeds torchvision's Inception-v3 (ImageNet weights, 1000 classes).
  Its weights are *not* the 2015 TF graph the paper used, so absolute values differ somewhat
  from published ones; compare runs scored the same way. The weights are read from a local file
  (``weights=``) or the torch hub cache; nothing is downloaded. Images in [-1, 1] are resized
  bilinearly to 299x299 and fed as is (torchvision's Inception expects [-1, 1] when
  ``transform_input=False``).
- :func:`digit_score` is the same formula with a robust_winn classifier checkpoint (e.g. an
  MNIST or SVHN classifier) instead of Inception: useful where Inception means little.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import BadValueError, UserError
from ..runtime.checkpoint import load_classifier

log = logging.getLogger(__name__)

__all__ = [
    "InceptionWeightsMissing",
    "score_from_probs",
    "inception_weights_path",
    "load_inception",
    "classifier_probs",
    "inception_score",
    "digit_score",
    "INCEPTION_FILE",
    "INCEPTION_URL",
]

INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
INCEPTION_URL = f"https://download.pytorch.org/models/{INCEPTION_FILE}"


class InceptionWeightsMissing(UserError, FileNotFoundError):
    """The Inception-v3 weight file is not on this machine."""


def score_from_probs(probs: Tensor, *, splits: int = 10) -> tuple[float, float]:
    """Inception-score formula on class probabilities (N, K): (mean, std) over ``splits`` parts.

    Uniform predictions give 1; confident predictions spread evenly over K classes give K.
    """
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must be a non-empty (N, K) tensor, got {tuple(probs.shape)}")
    if not 1 <= splits <= probs.shape[0]:
        raise BadValueError(f"splits must be in 1..N={probs.shape[0]}, got {splits}")
    p = probs.double()
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]  # (n_i, K)
        py = part.mean(dim=0, keepdim=True)  # (1, K)
        kl = torch.special.xlogy(part, part) - torch.special.xlogy(part, py)  # (n_i, K); 0 log 0 = 0
        scores.append(float(torch.exp(kl.sum(dim=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def inception_weights_path(weights: str | Path | None = None) -> Path:
    """The Inception-v3 weight file to use: ``weights`` if given, else the torch hub cache's.

    Raises:
        InceptionWeightsMissing: with the exact place to put the file.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InceptionWeightsMissing(f"Inception weights file {path} does not exist")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        raise InceptionWeightsMissing(
            f"Inception-v3 weights not found: download {INCEPTION_URL} and put it at {path}, "
            f"or pass --inception-weights FILE"
        )
    return path


def load_inception(weights: str | Path | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """torchvision Inception-v3 with local ImageNet weights, eval mode, input [-1, 1]."""
    from torchvision.models import inception_v3

    path = inception_weights_path(weights)
    model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises several types for wrong or corrupt files
        raise InceptionWeightsMissing(f"cannot load Inception-v3 weights from {path}: {exc}") from exc
    return model.to(device).eval()


@torch.no_grad()
def classifier_probs(
    model: nn.Module,
    images: Tensor,
    *,
    image_shape: tuple[int, int, int],
    batch_size: int = 100,
    device: str | torch.device = "cpu",
) -> Tensor:
    """softmax(model(x)) for [-1, 1] images adapted to ``image_shape`` (channels, bilinear resize)."""
    c, h, w = image_shape
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device).float()
        if x.shape[1] != c:
            if c == 1:
                x = x.mean(dim=1, keepdim=True)
            elif x.shape[1] == 1:
                x = x.expand(-1, c, -1, -1)
            else:
                raise BadValueError(f"cannot feed {x.shape[1]}-channel images to a {c}-channel classifier")
        if tuple(x.shape[2:]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        out.append(F.softmax(model(x).float(), dim=1).cpu())
    return torch.cat(out)


def inception_score(
    images: Tensor,
    *,
    weights: str | Path | None = None,
    splits: int = 10,
    batch_size: int = 100,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Inception score (mean, std over ``splits``) of [-1, 1] images (N, C, H, W) (paper §5.5)."""
    model = load_inception(weights, device=device)
    probs = classifier_probs(model, images, image_shape=(3, 299, 299), batch_size=batch_size, device=device)
    return score_from_probs(probs, splits=splits)


def digit_score(
    images: Tensor,
    classifier: str | Path | tuple[nn.Module, dict[str, Any]],
    *,
    splits: int = 10,
    batch_size: int = 100,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """The Inception-score formula with a robust_winn classifier checkpoint's p(y|x).

    ``classifier`` is a checkpoint path or what :func:`load_classifier` returned for one.
    """
    if isinstance(classifier, tuple):
        model, state = classifier
    else:
        model, state = load_classifier(classifier, map_location=device)
    shape = tuple(int(s) for s in state["model"]["image_shape"])
    probs = classifier_probs(model, images, image_shape=shape, batch_size=batch_size, device=device)
    return score_from_probs(probs, splits=splits)
