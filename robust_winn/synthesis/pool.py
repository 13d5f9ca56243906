"""NegativePool: a bounded, class-aware buffer of pseudo-negatives kept as tensors.

REFERENCE §1.5: the released code keeps every pseudo-negative (+1,000 per epoch, never
discarded) and, for each real image of class c, draws one negative of class c uniformly with
replacement. Here each class holds at most ``capacity`` images; past that, new images replace
the oldest (FIFO), so with the default capacity (25,000 per class) a 200-epoch MNIST run keeps
everything, as the original does, while memory stays bounded on longer runs. Images are stored
as float32 (exact) or uint8 (quantised, as the original's PNG round trip; 4x smaller).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["NegativePool"]


class NegativePool:
    """Per-class FIFO ring buffers of images in [-1, 1].

    Args:
        num_classes: K.
        capacity: maximum images kept per class.
        dtype: "float32" or "uint8" storage.
    """

    def __init__(self, num_classes: int, *, capacity: int, dtype: str = "float32") -> None:
        if capacity <= 0:
            raise ValueError("pool capacity must be positive")
        if dtype not in ("float32", "uint8"):
            raise ValueError("pool dtype must be 'float32' or 'uint8'")
        self.num_classes = num_classes
        self.capacity = capacity
        self.dtype = dtype
        self._bufs: list[Tensor | None] = [None] * num_classes
        self._count = [0] * num_classes  # images held per class
        self._next = [0] * num_classes  # next write slot once full

    def __len__(self) -> int:
        return sum(self._count)

    def count(self, c: int) -> int:
        """Images held for class ``c``."""
        return self._count[c]

    def _encode(self, x: Tensor) -> Tensor:
        if self.dtype == "uint8":
            return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.float()

    def _decode(self, x: Tensor) -> Tensor:
        return x.float().div(127.5).sub(1.0) if self.dtype == "uint8" else x

    def add(self, images: Tensor, labels: Tensor) -> None:
        """Append images (N, C, H, W) with class labels (N,), evicting the oldest when full."""
        images = self._encode(images.detach().cpu())
        labels = labels.cpu()
        for c in labels.unique().tolist():
            new = images[labels == c]
            buf = self._bufs[c]
            if buf is None:
                buf = torch.empty(0, *new.shape[1:], dtype=new.dtype)
            room = self.capacity - self._count[c]
            if room > 0:
                take = new[:room]
                buf = torch.cat([buf, take])
                self._count[c] += take.shape[0]
                new = new[room:]
            for img in new[-self.capacity :]:  # full: overwrite oldest slots in ring order
                buf[self._next[c]] = img
                self._next[c] = (self._next[c] + 1) % self.capacity
            self._bufs[c] = buf

    def sample(self, labels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One negative per label, of the same class, uniformly with replacement."""
        labels = labels.cpu()
        out: Tensor | None = None
        for c in labels.unique().tolist():
            if self._count[c] == 0:
                raise RuntimeError(f"pool has no pseudo-negatives of class {c}")
            mask = labels == c
            idx = torch.randint(self._count[c], (int(mask.sum()),), generator=generator)
            picked = self._decode(self._bufs[c][idx])
            if out is None:
                out = torch.empty(labels.shape[0], *picked.shape[1:])
            out[mask] = picked
        assert out is not None
        return out

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "num_classes": self.num_classes,
            "capacity": self.capacity,
            "dtype": self.dtype,
            "count": list(self._count),
            "next": list(self._next),
            "bufs": [b if b is not None else torch.empty(0) for b in self._bufs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly what :meth:`state_dict` saved."""
        if state["num_classes"] != self.num_classes:
            raise ValueError("pool state has a different number of classes")
        self.capacity = int(state["capacity"])
        self.dtype = state["dtype"]
        self._count = [int(c) for c in state["count"]]
        self._next = [int(n) for n in state["next"]]
        self._bufs = [b if c > 0 else None for b, c in zip(state["bufs"], self._count, strict=True)]
