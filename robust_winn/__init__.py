"""robust_winn: Wasserstein Introspective Neural Networks (Lee et al., CVPR 2018).

One CNN that is both a classifier and a generator, trained against pseudo-negatives it
synthesizes itself, and a harness that measures its adversarial robustness.

Public API: :func:`train` (supervised baseline / WINN), :func:`evaluate` (attack harness),
:func:`evaluate_ood` (OOD detection and calibration), :func:`load_classifier`,
:func:`create_model` / :func:`register_model`, :func:`load_dataset`, :func:`texture_swd`
(texture distance with its p0 and real brackets).
"""

__version__ = "0.1.0"

from .attacks.harness import evaluate  # noqa: E402
from .config import Method, StopRule, SynthesisConfig, TrainConfig  # noqa: E402
from .data.datasets import load_dataset  # noqa: E402
from .evaluation.ood import evaluate_ood  # noqa: E402
from .evaluation.swd import texture_swd  # noqa: E402
from .models import create_model, register_model  # noqa: E402
from .runtime.checkpoint import load_classifier  # noqa: E402
from .training import train  # noqa: E402

__all__ = [
    "Method",
    "StopRule",
    "SynthesisConfig",
    "TrainConfig",
    "__version__",
    "create_model",
    "evaluate",
    "evaluate_ood",
    "load_classifier",
    "load_dataset",
    "register_model",
    "texture_swd",
    "train",
]
