"""Several processes, one run: the process group under ``torchrun``.

``torchrun`` starts one process per device and sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`init` joins the group (NCCL on GPUs, gloo on CPUs). Without ``torchrun``
(or with one process) nothing here does anything and training is exactly the one-process run.
The rank is read from the environment before the group exists, so rank 0 alone can claim run
folders and write files from the start.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dihkit.errors import ConfigError


def world_size() -> int:
    """Processes in this run (1 without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the one that evaluates, writes files and prints."""
    return rank() == 0


def active() -> bool:
    """True once this process has joined a group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: str | torch.device = "auto") -> bool:
    """Join the process group when started by torchrun with more than one process; returns
    whether the run is distributed. Safe to call again."""
    if world_size() <= 1:
        return False
    if not dist.is_available():
        raise ConfigError("torch.distributed is not available in this PyTorch build")
    if not dist.is_initialized():
        kind = str(device).split(":")[0]
        cuda = kind == "cuda" or (kind == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def local_device(device: torch.device) -> torch.device:
    """The CUDA device of this process (``cuda:LOCAL_RANK``) under torchrun; ``device`` else."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    """Wait for every rank (nothing in one process)."""
    if active():
        dist.barrier()


def broadcast(value: Any, source: int = 0) -> Any:
    """``value`` from rank ``source`` on every rank (a picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (in place; the tensor itself in one process)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def shutdown() -> None:
    """Leave the process group (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped for DistributedDataParallel: the gradients of its trainable
    parameters are averaged over the ranks. Frozen parameters (teachers, frozen heads) and all
    buffers are left out of DDP's synchronisation (every rank holds the same frozen weights;
    BatchNorm statistics stay per rank and rank 0's are the ones evaluated and saved)."""
    ignored = [name for name, p in module.named_parameters() if not p.requires_grad]
    ignored += [name for name, _ in module.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignored)
    # No buffer sync before each forward (the flag was renamed in newer PyTorch releases).
    names = inspect.signature(DistributedDataParallel).parameters
    no_sync = {
        "forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers": False
    }
    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None, **no_sync
    )


def split_batch(config: Any, world: int) -> int:
    """The per-rank batch of ``config.batch_size`` (the global batch) over ``world`` ranks."""
    if config.batch_size % world:
        low = config.batch_size - config.batch_size % world
        raise ConfigError(
            f"batch_size {config.batch_size} is the global batch and must divide evenly over "
            f"{world} ranks; use --batch-size {low or world} or {low + world}, or "
            "--per-rank-batch B"
        )
    return config.batch_size // world


def scale_for_world(config: Any, world: int, per_rank_batch: int | None) -> tuple[Any, str]:
    """``config`` with ``per_rank_batch`` per rank when asked for: the global batch becomes
    ``per_rank_batch * world`` and the learning rate scales with it (the linear scaling rule of
    Goyal et al., 2017). Returns the config and one line saying what was done."""
    if per_rank_batch is None:
        share = split_batch(config, world)
        return config, (
            f"{world} process(es): global batch {config.batch_size} = {world} x {share}, "
            f"lr {config.lr:g} as configured"
        )
    if (
        isinstance(per_rank_batch, bool)
        or not isinstance(per_rank_batch, int)
        or per_rank_batch < 1
    ):
        raise ConfigError(f"--per-rank-batch must be a positive integer, got {per_rank_batch!r}")
    batch = per_rank_batch * world
    lr = config.lr * batch / config.batch_size
    scaled = dataclasses.replace(config, batch_size=batch, lr=lr)
    return scaled, (
        f"{world} process(es): global batch {batch} = {world} x {per_rank_batch} (configured "
        f"{config.batch_size}), lr scaled linearly {config.lr:g} -> {lr:g}"
    )
