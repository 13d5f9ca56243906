"""GPU fast paths of the supervised trainer: bf16 autocast, channels_last, torch.compile, pinning.

DESIGN §4 ("GPU paths: bf16 autocast, channels_last, optional torch.compile; CPU stays
float32"). Each path is one field of :class:`~robust_winn.config.FastPathConfig` (CLI
``--precision``, ``--channels-last``, ``--compile``, ``--pin-memory``). :class:`FastPaths`
turns the request into what this device allows and says both in the record's
``fast_paths`` entry. With every option at its default nothing here touches the run: the
model is used as it is and batches are copied with a plain ``.to(device)``, so float32 results
are bit-identical to a trainer without fast paths.

bf16 (``--precision bf16``, CUDA only), and what stays float32 (REFERENCE §1.4-1.6):

- Classification step (§1.4): the classifier's forward on the 2N images (positives, then
  their pseudo-negatives) runs under ``torch.autocast("cuda", torch.bfloat16)``. Its logits
  are cast to float32 *before* the critic head f = Linear(K -> 1) (§1.3), so f, the
  cross-entropy, the Wasserstein term and the total loss are float32 sums.
- Gradient penalty (§1.4): entirely outside autocast. The trainer hands
  :func:`~robust_winn.objectives.losses.gradient_penalty` the plain model, so the interpolates
  x_hat = e x+ + (1 - e) x-, the critic value f(x_hat) and the double-backward norm
  ||grad f(x_hat)||_2 are float32.
- Thresholds (§1.6 step 2): the per-batch means of f on positives are taken from the float32
  f above; their min and max and the draws tau ~ U[min, max] are float32 as before.
- Synthesis (§1.6 steps 3-6): each step's classifier forward runs under autocast; the gap
  |mean f - tau| and the CE term come from float32 logits and f; the images, their Adam
  moments and the clipping to [-1, 1] stay float32.
- Validation and test error (§1.8) are float32.

Off CUDA, or on a GPU without bf16, the run is float32 with one logged warning.

torch.compile (``--compile``): only the classifier's forward is compiled. It serves the
classification step's forward and its ordinary backward, and synthesis's forward and its
first-order gradient to the images. The gradient penalty is *not* compiled: it needs a double
backward (``create_graph=True``), which compiled (AOTAutograd) graphs do not support, so its
critic calls go through the eager model. If ``torch.compile`` is missing or raises, when the
model is wrapped or at a call, the run goes on in eager mode with one warning and the record
says ``compile_used: false``. A genuine model error still surfaces: the eager retry raises it.

channels_last (``--channels-last``): the model and every 4-D image batch (positives, pool
draws, synthesis starts) use ``torch.channels_last``; allowed on CPU too.

Pinned memory (``--pin-memory``, default on for CUDA): CPU batches are copied to pinned host
memory and sent with ``non_blocking=True``. Ignored on CPU (recorded as not used).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..config import FastPathConfig, Precision
from ..models import Introspective

log = logging.getLogger(__name__)

__all__ = ["FastIntrospective", "FastPaths"]


class FastIntrospective(Introspective):
    """A view of an :class:`Introspective` model whose classifier forward takes the fast paths.

    It shares the model's modules (same parameters, no copy), so training the model trains
    the view and synthesis may switch the view to eval and back. Logits and f come back float32.
    """

    def __init__(
        self,
        model: Introspective,
        *,
        bf16: bool,
        compiled: Callable[[Tensor], Tensor] | None,
        on_compile_error: Callable[[Exception], None],
    ) -> None:
        nn.Module.__init__(self)  # not Introspective.__init__: the critic head is shared, not new
        self.classifier = model.classifier
        self.critic_head = model.critic_head
        self.bf16 = bf16
        self.compiled = compiled  # a function, so not registered as a submodule
        self._on_compile_error = on_compile_error

    def _classify(self, x: Tensor) -> Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as exc:  # any compiler failure: go on in eager mode
                self.compiled = None
                self._on_compile_error(exc)
        return self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, K) in float32, the classifier run under bf16 autocast if enabled."""
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with ctx:
            logits = self._classify(x)  # (N, K)
        return logits.float()

    def logits_and_critic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (logits (N, K), f(x) (N,)); the critic head runs in float32, outside autocast."""
        logits = self.forward(x)  # (N, K) float32
        return logits, self.critic_head(logits).squeeze(1)  # (N,)


class FastPaths:
    """What one run asked for and what this device gives; moves batches and wraps the model.

    Args:
        cfg: the requested fast paths.
        device: the run's device.
        announce: log fallbacks as warnings (rank 0); other ranks log them at debug level.
    """

    def __init__(self, cfg: FastPathConfig, device: torch.device, *, announce: bool = True) -> None:
        self.requested = cfg
        self.device = device
        self._level = logging.WARNING if announce else logging.DEBUG
        self.notes: list[str] = []
        cuda = device.type == "cuda"
        self.bf16 = Precision(cfg.precision) is Precision.BF16
        if self.bf16 and not (cuda and torch.cuda.is_bf16_supported()):
            self.bf16 = False
            self._fall_back(
                f"--precision bf16 needs a CUDA device with bf16 support; this run on {device} "
                "uses float32 instead"
            )
        self.channels_last = bool(cfg.channels_last)
        self.pin_memory = cuda if cfg.pin_memory is None else bool(cfg.pin_memory) and cuda
        if cfg.pin_memory and not cuda:
            self._fall_back(f"--pin-memory only applies to CUDA; ignored on {device}")
        self.compile = bool(cfg.compile)
        self._view: FastIntrospective | None = None

    def _fall_back(self, message: str) -> None:
        self.notes.append(message)
        log.log(self._level, "%s", message)

    def _compile_failed(self, exc: Exception) -> None:
        self.compile = False
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self._fall_back(f"torch.compile failed ({type(exc).__name__}: {first}); running eager")

    def prepare(self, model: Introspective) -> Introspective:
        """Convert ``model`` to channels_last if asked; return the module forward passes use.

        Without bf16 or compile that is ``model`` itself (the default path, unchanged).
        """
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        compiled = None
        if self.compile:
            clf = model.classifier

            def classify(x: Tensor) -> Tensor:
                return clf(x)  # (N, K)

            try:
                compiled = torch.compile(classify)
            except Exception as exc:  # torch.compile missing or refusing this platform
                self._compile_failed(exc)
        if not (self.bf16 or compiled is not None):
            return model
        self._view = FastIntrospective(
            model, bf16=self.bf16, compiled=compiled, on_compile_error=self._compile_failed
        )
        return self._view

    def batch(self, t: Tensor) -> Tensor:
        """``t`` on the run's device: pinned and non-blocking, channels_last for images, if asked."""
        if self.pin_memory and t.device.type == "cpu":
            t = t.pin_memory().to(self.device, non_blocking=True)
        else:
            t = t.to(self.device)
        if self.channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def record(self) -> dict[str, Any]:
        """The record's ``fast_paths`` entry: what was requested and what was used."""
        req = self.requested
        return {
            "requested": {
                "precision": Precision(req.precision).value,
                "channels_last": req.channels_last,
                "compile": req.compile,
                "pin_memory": req.pin_memory,
            },
            "precision_used": (Precision.BF16 if self.bf16 else Precision.FLOAT32).value,
            "channels_last_used": self.channels_last,
            "compile_used": self.compile,
            "pin_memory_used": self.pin_memory,
            "notes": list(self.notes),
        }
