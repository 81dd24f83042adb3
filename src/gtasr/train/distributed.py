"""One process or many: torchrun's environment -> process group, device, rank helpers.

``torchrun --nproc-per-node K -m gtasr train ...`` sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous address; multi-node runs use torchrun's usual
``--nnodes/--rdzv-*`` flags. Without those variables the same command runs as a
single process and nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gtasr.devices import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and validation."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1


def setup(requested_device: str = "auto") -> DistEnv:
    """Join torchrun's process group when launched by it (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank, allow_mps=world_size == 1)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.debug("rank %d/%d joined the %s process group", rank, world_size, backend)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_max(value: float, env: DistEnv) -> float:
    """The maximum of ``value`` over all ranks (so every rank takes the same branch)."""
    if not env.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def all_reduce_mean(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of a tensor over ranks (for logging; a detached copy)."""
    out = tensor.detach().clone()
    if env.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= env.world_size
    return out


def barrier(env: DistEnv) -> None:
    """Wait for every rank."""
    if env.distributed:
        dist.barrier()
