"""Peak tensor memory of a piece of work, on any device.

On CUDA this is the allocator's own peak. On the CPU, where torch keeps no such statistic, a
dispatch mode counts the bytes of every storage an operator creates until that storage is freed
(weak references on the storages), and keeps the maximum: the peak of tensor memory allocated
during the work, beyond what existed before it (parameters, data and caches not included).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["peak_tensor_bytes"]


class _StorageCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def _release(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if not isinstance(value, torch.Tensor) or value.device.type != "cpu":
                continue
            storage = value.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self._sizes:
                continue
            self._sizes[key] = size
            self.live += size
            weakref.finalize(storage, self._release, key)
            self.peak = max(self.peak, self.live)
        return out


def peak_tensor_bytes(work: Callable[[], object], device: torch.device) -> int:
    """Run ``work()`` once and return the peak bytes of tensor memory it allocated."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        work()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    with _StorageCounter() as counter:
        work()
    return counter.peak
