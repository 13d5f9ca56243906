"""Training objectives (paper §3-4, §5.6): named loss terms, per-epoch work, resumable state.

``losses`` holds the loss functions; ``base`` the :class:`Objective` type and its registry;
``baseline`` and ``winn`` the two supervised methods of the paper; ``adversarial`` the
defences WINN is compared with (``pgd-at``, ``trades``, ``winn-at``). Importing this package
registers them all.
"""

from . import adversarial, baseline, winn  # noqa: F401  (registration)
from .base import Objective, ObjectiveContext, create_objective, list_objectives, register_objective

__all__ = ["Objective", "ObjectiveContext", "create_objective", "list_objectives", "register_objective"]
