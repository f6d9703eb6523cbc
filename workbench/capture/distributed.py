"""Data-parallel capture on torch.distributed: which rank am I, and the few collective steps needed.

Launch the same command under ``torchrun --nproc_per_node N``: every rank plans the same batches
(:mod:`workbench.capture.plan`), takes every N-th one and writes its own shards; the store opens all
ranks' shards as one. The only collectives are rank 0 telling the others whether creating the store worked
(:func:`share_outcome`, so a refused store stops every rank instead of leaving them waiting) and a barrier
before rank 0 refreshes the manifest; gloo on CPU and nccl on GPU both work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "dist_info", "init_from_env", "barrier", "share_outcome"]


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """This process's place in a data-parallel run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    """Rank on this machine: picks the GPU (``cuda:{local_rank}``)."""


def dist_info() -> DistInfo:
    """The current process group's rank and size (rank 0 of 1 when torch.distributed is not initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        )
    return DistInfo()


def init_from_env() -> DistInfo:
    """Initialise the default process group when launched by torchrun (``WORLD_SIZE > 1``); else a no-op.

    Backend: nccl when CUDA is present, gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist_info()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def share_outcome(error: BaseException | None) -> None:
    """Rank 0 passes ``error`` (or None) to every rank; all ranks raise if rank 0 failed."""
    if not (dist.is_available() and dist.is_initialized()):
        if error is not None:
            raise error
        return
    box = [None if error is None else f"{type(error).__name__}: {error}"]
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0] is not None:
        raise RuntimeError(f"rank 0 could not prepare the store: {box[0]}")
