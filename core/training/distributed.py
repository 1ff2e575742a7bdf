"""DDP in one place, so the loop reads the same with one process or many: under torchrun
(WORLD_SIZE > 1) each rank joins a process group (gloo on CPU, nccl on CUDA), trainable modules are
wrapped in DistributedDataParallel, and only rank 0 writes files."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn

from core.model import resolve_device


def env_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun): usable before init_distributed."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device_arg: str) -> tuple[int, int, torch.device, bool]:
    """(world, rank, device, owns_group): join the process group if torchrun started several ranks."""
    device = resolve_device(device_arg)
    if env_world_size() <= 1:
        return 1, 0, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type == "mps":
        raise ValueError("distributed training supports cpu (gloo) and cuda (nccl), not mps")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size(), dist.get_rank(), device, owns


def close_distributed(owns_group: bool) -> None:
    if owns_group and dist.is_initialized():
        dist.destroy_process_group()


def ddp(module: nn.Module, world: int, device: torch.device) -> nn.Module:
    """The module itself with one process; else wrapped so gradients are averaged over ranks."""
    if world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None  # CPU (gloo): no device_ids
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank if it is true on any (so all ranks stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_rows(part: torch.Tensor, world: int) -> torch.Tensor:
    """Concatenate every rank's equally sized `part` in rank order."""
    if world == 1:
        return part
    parts = [torch.zeros_like(part) for _ in range(world)]
    dist.all_gather(parts, part)
    return torch.cat(parts)


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()
