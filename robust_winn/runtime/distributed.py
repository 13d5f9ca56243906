"""Data-parallel helpers on torch.distributed for the supervised trainer and the harness.

DESIGN §4 ("scale-out uses torch.distributed; synthesis is sharded across ranks"). A run
launched by ``torchrun --nproc-per-node N -m robust_winn train ...`` (WORLD_SIZE > 1) joins a
process group here: gloo on CPU, nccl on CUDA, the same code. A process group the caller
initialised beforehand (tests, notebooks) is used as it is and left open.

Each global batch of ``batch_size`` positives (the paper's 100, REFERENCE §1.4) is split into
contiguous per-rank slices; every rank draws the epoch's order from the same seeded generator,
so the slices are disjoint and cover the epoch. Gradients are all-reduced by hand, weighted by
each rank's share of the batch, rather than through ``DistributedDataParallel``: the WINN step
runs ``logits_and_critic`` and a double-backward gradient penalty (REFERENCE §1.4), neither of
which passes through DDP's ``forward`` hooks. Without a process group every helper is the
identity, so a single-process run is unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..data.datasets import ImageSet, to_model_range

log = logging.getLogger(__name__)

__all__ = [
    "DistContext",
    "all_gather_cat",
    "all_gather_objects",
    "all_reduce_",
    "all_reduce_grads_",
    "broadcast_module_",
    "current",
    "launched_by_torchrun",
    "process_group",
    "shard_bounds",
    "sharded_batches",
]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the process group (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints and records."""
        return self.rank == 0


def current() -> DistContext:
    """The initialised default process group's rank and size, or a single-process context."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process launch (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[DistContext, torch.device]]:
    """Join the torchrun process group if there is one; yield (context, this rank's device).

    Under torchrun a CUDA device becomes ``cuda:LOCAL_RANK`` and the backend nccl; otherwise
    gloo. A group initialised by the caller is used and not destroyed; one made here is
    destroyed on exit.
    """
    made = False
    if launched_by_torchrun() and not (dist.is_available() and dist.is_initialized()):
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        made = True
    ctx = current()
    if ctx.enabled:
        log.info("rank %d of %d on %s (%s)", ctx.rank, ctx.world_size, device, dist.get_backend())
    try:
        yield ctx, device
    finally:
        if made:
            dist.destroy_process_group()


def shard_bounds(n: int, ctx: DistContext) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous share of n items (sizes differ by at most 1)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return start, start + base + (1 if ctx.rank < extra else 0)


def sharded_batches(
    data: ImageSet, batch_size: int, *, generator: torch.Generator, ctx: DistContext
) -> Iterator[tuple[Tensor, Tensor, float]]:
    """Shuffled global batches, each cut into per-rank slices: yield (x, y, share of the batch).

    With one process this is ``data.batches(batch_size, shuffle=True, generator=generator)``
    exactly (same draws), with share 1.
    """
    order = torch.randperm(len(data), generator=generator)
    for s in range(0, len(data), batch_size):
        idx = order[s : s + batch_size]
        lo, hi = shard_bounds(idx.numel(), ctx)
        local = idx[lo:hi]
        yield to_model_range(data.images[local]), data.labels[local], local.numel() / idx.numel()


def _comm_device() -> torch.device:
    """nccl moves CUDA tensors only; gloo takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_(t: Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    """In-place all-reduce of ``t`` (identity without a process group); returns ``t``."""
    if not current().enabled:
        return t
    buf = t.to(_comm_device())
    dist.all_reduce(buf, op=op)
    t.copy_(buf)
    return t


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenate every rank's ``t`` along dim 0 in rank order (first dims may differ)."""
    if not current().enabled:
        return t
    dev = _comm_device()
    n = torch.tensor([t.shape[0]], device=dev)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    most = int(max(int(s) for s in sizes))
    pad = torch.zeros(most, *t.shape[1:], dtype=t.dtype, device=dev)
    pad[: t.shape[0]] = t.to(dev)
    parts = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(parts, pad)
    return torch.cat([p[: int(s)] for p, s in zip(parts, sizes, strict=True)]).to(t.device)


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` without a process group)."""
    if not current().enabled:
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_module_(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (identity without a group)."""
    if not current().enabled:
        return
    dev = _comm_device()
    for t in [*module.parameters(), *module.buffers()]:
        buf = t.detach().to(dev)
        dist.broadcast(buf, src=0)
        t.data.copy_(buf)


def all_reduce_grads_(params: Sequence[nn.Parameter], share: float, means: Tensor) -> Tensor:
    """Make every rank's gradients those of the global batch mean; average ``means`` along.

    Each rank's gradient is that of its local mean loss, so weighting it by the rank's share
    of the global batch (n_r / N) and summing over ranks gives the gradient of the global
    mean, whatever the slice sizes. ``means`` (1-D local means, e.g. the loss terms) ride in
    the same buffer and come back as global means. A parameter that has no gradient on any
    rank keeps ``grad = None``.

    Returns:
        The global ``means`` (``means`` itself without a process group: nothing to reduce).
    """
    if not current().enabled:
        return means
    dev = params[0].device
    grads = [p.grad for p in params]
    n_grad = sum(p.numel() for p in params)
    flat = torch.cat(
        [
            torch.zeros(p.numel(), device=dev) if g is None else g.reshape(-1) * share
            for p, g in zip(params, grads, strict=True)
        ]
        + [
            torch.tensor([float(g is not None) for g in grads], device=dev),
            means.to(dev, torch.float32) * share,
        ]
    )  # (n_grad + len(params) + len(means),)
    all_reduce_(flat)
    present = flat[n_grad : n_grad + len(params)]
    offset = 0
    for p, have in zip(params, present.tolist(), strict=True):
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone() if have > 0 else None
        offset += p.numel()
    return flat[n_grad + len(params) :]
