"""The introspective wrapper: any classifier plus the critic head f(x) (REFERENCE §1.3).

In the released code f_W(x) is one class-agnostic scalar, a learned affine map of the K
logits (weight ~ N(0, 0.02^2), bias 0). Wrapping the user's classifier this way makes every
classifier trainable by WINN without touching its code.
"""

from __future__ import annotations

from torch import Tensor, nn


class Introspective(nn.Module):
    """``classifier`` (images -> (N, K) logits) plus ``critic_head`` Linear(K -> 1).

    ``forward`` returns the logits, so the wrapped module is still a plain classifier (the
    harness attacks it as such); :meth:`logits_and_critic` returns both.
    """

    def __init__(self, classifier: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.critic_head = nn.Linear(num_classes, 1)
        nn.init.normal_(self.critic_head.weight, std=0.02)
        nn.init.zeros_(self.critic_head.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x)  # (N, K)

    def logits_and_critic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (logits (N, K), f(x) (N,))."""
        logits = self.classifier(x)  # (N, K)
        return logits, self.critic_head(logits).squeeze(1)  # (N,)

    def critic(self, x: Tensor) -> Tensor:
        """f(x), one scalar per image (N,)."""
        return self.logits_and_critic(x)[1]
