"""A batched in-memory loader with on-device augmentation.

The whole split lives as one uint8 tensor on the target device. Each batch is gathered by
index, optionally augmented (zero-pad, random crop, random horizontal flip) with batched
tensor operations, then converted to normalised float32. There are no worker processes and no
per-image Python loops, which makes small datasets like ``fmnist-mini`` fast even on a CPU.

Randomness follows ``torch.utils.data.DistributedSampler``: the shuffle order and the
augmentation of an epoch depend only on ``(seed, epoch)``; call ``set_epoch`` before each
epoch to get a new order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from dihkit.data.datasets import Split
from dihkit.errors import ConfigError

__all__ = ["BatchLoader", "draw_crop_flip", "epoch_seed", "random_crop_flip"]


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of one epoch: ``seed * 1_000_003 + epoch`` folded into 63 bits."""
    return (int(seed) * 1_000_003 + int(epoch)) % (1 << 63)


def draw_crop_flip(
    batch: int,
    generator: torch.Generator | None,
    pad: int,
    *,
    flip: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's augmentation parameters: crop offsets ``(B, 2)`` (int64, ``(dy, dx)`` uniform
    in ``[-pad, pad]``) and horizontal flips ``(B,)`` (bool, probability 0.5 if ``flip``)."""
    offsets = torch.randint(-pad, pad + 1, (batch, 2), generator=generator, device=device)
    if flip:
        flips = torch.rand(batch, generator=generator, device=device) < 0.5
    else:
        flips = torch.zeros(batch, dtype=torch.bool, device=device)
    return offsets, flips


def random_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator | None,
    pad: int,
    *,
    flip: bool = True,
    offsets: torch.Tensor | None = None,
    flips: torch.Tensor | None = None,
) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels, crop back to ``H x W`` at random offsets, randomly mirror.

    ``images`` is a ``(B, C, H, W)`` tensor of any dtype; the result has the same shape, dtype
    and device. Each image gets its own crop offset ``(dy, dx)``, uniform in ``[-pad, pad]``
    along each axis (0 = the original position), and (if ``flip``) a horizontal flip with
    probability 0.5, all drawn from ``generator`` (which must live on the images' device).
    ``offsets`` (``(B, 2)``) and ``flips`` (``(B,)`` bool) override the random draws, e.g. for
    tests: offsets 0 and no flip return the input unchanged. The crop is a single gather.
    """
    if images.dim() != 4:
        raise ConfigError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    if pad < 0:
        raise ConfigError(f"pad must be >= 0, got {pad}")
    b, c, h, w = images.shape
    device = images.device
    if offsets is None or flips is None:
        drawn_offsets, drawn_flips = draw_crop_flip(b, generator, pad, flip=flip, device=device)
        offsets = drawn_offsets if offsets is None else offsets
        flips = drawn_flips if flips is None else flips
    offsets = offsets.to(device=device, dtype=torch.long).clamp(-pad, pad) + pad
    flips = flips.to(device=device, dtype=torch.bool)

    padded = F.pad(images, (pad, pad, pad, pad)) if pad > 0 else images
    rows = offsets[:, 0:1] + torch.arange(h, device=device)  # (B, H) rows in padded image
    cols = offsets[:, 1:2] + torch.arange(w, device=device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)  # mirroring = reversed columns
    batch = torch.arange(b, device=device)[:, None, None, None]
    chan = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def _per_channel(values: float | Sequence[float], channels: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise ConfigError(f"{what} needs 1 or {channels} values, got {t.numel()}")
    return t.clone()


class BatchLoader:
    """Whole split as a uint8 tensor on `device`; per-batch augmentation on that device.

    With ``world_size`` > 1 (one loader per rank under ``torchrun``), ``batch_size`` is the global
    batch: every rank draws the same order and augmentation and yields only its contiguous share
    of each batch (``torch.tensor_split`` sizes), so the ranks' shares together are exactly the
    one-process batch.

    Yields ``(images, labels)`` (float32 ``(B, C, H, W)`` normalised by ``mean``/``std``, int64
    ``(B,)``), followed by ``indices`` (positions into ``split``) with ``return_indices=True`` and
    by the augmentation each image got, ``offsets`` ``(B, 2)`` and ``flips`` ``(B,)`` (see
    :func:`random_crop_flip`), with ``return_augmentation=True``. ``shuffle`` and ``augment``
    are driven by generators seeded from ``(seed, epoch)`` only, so iterating twice after the
    same ``set_epoch`` repeats the same batches. The shuffle order is drawn on the CPU
    (identical on every device); the augmentation is drawn on ``device``.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        device: str | torch.device = "cpu",
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        pad: int = 4,
        channels_last: bool = False,
        return_indices: bool = False,
        return_augmentation: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(split) == 0:
            raise ConfigError("cannot build a BatchLoader over an empty split")
        if pad < 0:
            raise ConfigError(f"pad must be >= 0, got {pad}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.device = torch.device(device)
        channels = split.images.shape[1]
        mean_t = _per_channel(mean, channels, "mean")
        std_t = _per_channel(std, channels, "std")
        if (std_t <= 0).any():
            raise ConfigError(f"std must be positive, got {std_t.tolist()}")
        # (x / 255 - mean) / std  ==  x * scale + shift
        self._scale = (1.0 / (255.0 * std_t)).view(1, -1, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, -1, 1, 1).to(self.device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.pad = pad
        self.channels_last = channels_last
        self.return_indices = return_indices
        self.return_augmentation = return_augmentation
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        """Number of examples in the split."""
        return int(self.labels.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle order and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        # a last batch too small to give every rank an image is dropped (on every rank alike)
        return full + int(bool(rest) and not self.drop_last and rest >= self.world_size)

    def _part(self, size: int) -> slice:
        """This rank's contiguous share of a global batch of ``size`` (``torch.tensor_split``
        sizes: the first ``size % world_size`` ranks get one more)."""
        if self.world_size == 1:
            return slice(0, size)
        share, extra = divmod(size, self.world_size)
        start = self.rank * share + min(self.rank, extra)
        return slice(start, start + share + int(self.rank < extra))

    def _generators(self) -> tuple[torch.Generator, torch.Generator]:
        base = epoch_seed(self.seed, self.epoch)
        order_gen = torch.Generator(device="cpu").manual_seed(base)
        # A different seed for the augmentation stream, so it is not a copy of the order stream
        # when the device is the CPU.
        aug_gen = torch.Generator(device=self.device).manual_seed(base ^ 0x5DEECE66D)
        return order_gen, aug_gen

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n, bs = self.num_samples, self.batch_size
        order_gen, aug_gen = self._generators()
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=order_gen).to(self.device)
        self._start_epoch()
        for i in range(len(self)):
            start, stop = i * bs, min((i + 1) * bs, n)
            part = self._part(stop - start)
            if order is None:
                start, stop = start + part.start, start + part.stop
                idx = torch.arange(start, stop, device=self.device)
                x = self.images[start:stop]
                y = self.labels[start:stop]
            else:
                idx = order[start:stop][part]
                x = self.images[idx]
                y = self.labels[idx]
            x, extras = self._view(x, idx, aug_gen, part, stop - start)
            yield (self._normalise(x), y, *extras)

    def _start_epoch(self) -> None:
        """Hook run once per iteration, after the epoch's generators are seeded."""

    def _view(
        self,
        images: torch.Tensor,
        idx: torch.Tensor,
        aug_gen: torch.Generator,
        part: slice | None = None,
        size: int | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The (augmented) uint8 view of this rank's ``part`` of a global batch of ``size``
        (the whole batch in one process) and the extras yielded after the labels. The random
        draws are made for the global batch, so every rank consumes the same stream."""
        extras: tuple[torch.Tensor, ...] = (idx,) if self.return_indices else ()
        if not (self.augment or self.return_augmentation):
            return images, extras
        if self.augment:
            size = len(idx) if size is None else size
            offsets, flips = draw_crop_flip(size, aug_gen, self.pad, device=self.device)
            if part is not None:  # this rank's share of the global batch's draws
                offsets, flips = offsets[part], flips[part]
            images = random_crop_flip(images, None, self.pad, offsets=offsets, flips=flips)
        else:
            offsets = torch.zeros(len(idx), 2, dtype=torch.long, device=self.device)
            flips = torch.zeros(len(idx), dtype=torch.bool, device=self.device)
        if self.return_augmentation:
            extras = (*extras, offsets, flips)
        return images, extras

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32).mul_(self._scale).add_(self._shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
