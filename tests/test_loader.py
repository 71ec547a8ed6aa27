"""Tests for dihkit.data.loader: batching, determinism, augmentation and normalisation."""

from __future__ import annotations

import pytest
import torch

from dihkit.data.datasets import Split
from dihkit.data.loader import BatchLoader, random_crop_flip

MEAN, STD = (0.5,), (0.25,)


def _split(n: int = 50, channels: int = 1, size: int = 8, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    return Split(images, torch.arange(n) % 10)


def _batches(loader: BatchLoader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t.clone() for t in batch) for batch in loader]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        all(torch.equal(x, y) for x, y in zip(p, q, strict=True)) for p, q in zip(a, b, strict=True)
    )


@pytest.fixture
def split() -> Split:
    return _split()


def test_len_and_drop_last(split):
    assert len(BatchLoader(split, 16, mean=MEAN, std=STD)) == 4
    assert len(BatchLoader(split, 16, mean=MEAN, std=STD, drop_last=True)) == 3
    sizes = [len(y) for _, y in BatchLoader(split, 16, mean=MEAN, std=STD)]
    assert sizes == [16, 16, 16, 2]
    sizes = [len(y) for _, y in BatchLoader(split, 16, mean=MEAN, std=STD, drop_last=True)]
    assert sizes == [16, 16, 16]
    assert len(BatchLoader(split, 50, mean=MEAN, std=STD, drop_last=True)) == 1


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_batch_size(split, bad):
    with pytest.raises(ValueError, match=str(bad)):
        BatchLoader(split, bad, mean=MEAN, std=STD)


def test_empty_split():
    empty = Split(torch.zeros(0, 1, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        BatchLoader(empty, 4, mean=MEAN, std=STD)


def test_sequential_order_and_dtypes(split):
    loader = BatchLoader(split, 16, mean=MEAN, std=STD, return_indices=True)
    x, y, idx = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape == (16, 1, 8, 8)
    assert y.dtype == torch.int64 and idx.dtype == torch.int64
    assert idx.tolist() == list(range(16))
    assert torch.equal(y, split.labels[:16])


def test_same_seed_and_epoch_is_deterministic(split):
    kwargs = dict(mean=MEAN, std=STD, shuffle=True, augment=True, seed=7, return_indices=True)
    a, b = BatchLoader(split, 16, **kwargs), BatchLoader(split, 16, **kwargs)
    a.set_epoch(3)
    b.set_epoch(3)
    first = _batches(a)
    assert _same(first, _batches(b))
    assert _same(first, _batches(a))  # iterating again repeats the epoch
    a.set_epoch(4)
    a.set_epoch(3)
    assert _same(first, _batches(a))  # only (seed, epoch) matters, not the history


def test_epochs_and_seeds_differ(split):
    loader = BatchLoader(split, 64, mean=MEAN, std=STD, shuffle=True, return_indices=True)
    orders = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        (_, _, idx) = next(iter(loader))
        assert sorted(idx.tolist()) == list(range(50))  # a permutation
        orders.append(idx.tolist())
    assert orders[0] != orders[1] and orders[1] != orders[2]
    other = BatchLoader(split, 64, mean=MEAN, std=STD, shuffle=True, seed=1, return_indices=True)
    assert next(iter(other))[2].tolist() != orders[0]


def test_indices_map_back_to_split(split):
    loader = BatchLoader(
        split, 8, mean=MEAN, std=STD, shuffle=True, augment=True, return_indices=True
    )
    seen = []
    for _x, y, idx in loader:
        assert torch.equal(y, split.labels[idx])
        seen += idx.tolist()
    assert sorted(seen) == list(range(len(split)))


def test_unaugmented_batches_are_normalised_images(split):
    loader = BatchLoader(split, 50, mean=MEAN, std=STD, shuffle=True, return_indices=True)
    x, _, idx = next(iter(loader))
    expected = (split.images[idx].float() / 255 - MEAN[0]) / STD[0]
    torch.testing.assert_close(x, expected)


def test_normalisation_of_constant_image():
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    images = torch.full((4, 3, 6, 6), 200, dtype=torch.uint8)
    loader = BatchLoader(Split(images, torch.zeros(4, dtype=torch.long)), 4, mean=mean, std=std)
    x, _ = next(iter(loader))
    for c in range(3):
        torch.testing.assert_close(x[:, c], torch.full((4, 6, 6), (200 / 255 - mean[c]) / std[c]))


def test_bad_mean_std_length(split):
    with pytest.raises(ValueError, match="mean"):
        BatchLoader(split, 4, mean=(0.1, 0.2), std=STD)


def test_augmentation_changes_images_but_keeps_shapes(split):
    plain = BatchLoader(split, 50, mean=MEAN, std=STD, return_indices=True)
    aug = BatchLoader(split, 50, mean=MEAN, std=STD, augment=True, return_indices=True)
    xp, yp, ip = next(iter(plain))
    xa, ya, ia = next(iter(aug))
    assert xa.shape == xp.shape and xa.dtype == xp.dtype
    assert torch.equal(yp, ya) and torch.equal(ip, ia)
    changed = (xa != xp).flatten(1).any(1)
    assert changed.float().mean() > 0.5
    aug.set_epoch(1)
    assert not torch.equal(next(iter(aug))[0], xa)


def test_channels_last():
    x, _ = next(iter(BatchLoader(_split(channels=3), 4, mean=0.5, std=0.25, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------ random_crop_flip


def test_crop_flip_identity_with_zero_offset():
    images = _split(6, channels=3).images
    offsets = torch.zeros(6, 2, dtype=torch.long)
    flips = torch.zeros(6, dtype=torch.bool)
    out = random_crop_flip(images, None, 4, offsets=offsets, flips=flips)
    assert torch.equal(out, images)


def test_crop_flip_known_shift_and_flip():
    images = _split(3, channels=2, size=6).images
    offsets = torch.tensor([[1, 0], [0, -2], [0, 0]])
    flips = torch.tensor([False, False, True])
    out = random_crop_flip(images, None, 2, offsets=offsets, flips=flips)
    # dy = +1: image moves up one row, zero row enters at the bottom.
    assert torch.equal(out[0, :, :-1], images[0, :, 1:]) and not out[0, :, -1].any()
    # dx = -2: image moves right two columns, zero columns enter on the left.
    assert torch.equal(out[1, :, :, 2:], images[1, :, :, :-2]) and not out[1, :, :, :2].any()
    assert torch.equal(out[2], images[2].flip(-1))


def test_crop_flip_random_draws_are_seeded_and_bounded():
    images = torch.ones(64, 1, 8, 8, dtype=torch.uint8)
    a = random_crop_flip(images, torch.Generator().manual_seed(5), 3)
    b = random_crop_flip(images, torch.Generator().manual_seed(5), 3)
    assert torch.equal(a, b) and a.shape == images.shape and a.dtype == torch.uint8
    # At most 3 zero rows/columns come in from the padding, so the centre is never empty.
    assert a[:, :, 3:5, 3:5].all()
    zero_rows = (a.sum(dim=3) == 0).sum(dim=2)
    assert zero_rows.max() <= 3 and zero_rows.float().mean() > 0.5
    # Flips alone (no padding) on a left-right asymmetric image: about half are mirrored.
    ramp = torch.arange(8, dtype=torch.uint8).expand(64, 1, 8, 8)
    flipped = random_crop_flip(ramp, torch.Generator().manual_seed(0), 0)
    mirrored = (flipped[:, 0, 0, 0] == 7).float().mean()
    assert 0.2 < mirrored < 0.8


def test_the_loader_reports_the_augmentation_it_drew(tiny):
    kwargs = dict(mean=0.5, std=0.25, shuffle=True, augment=True, seed=4)
    plain = BatchLoader(tiny.train, 32, **kwargs)
    reporting = BatchLoader(tiny.train, 32, return_indices=True, return_augmentation=True, **kwargs)
    for loader in (plain, reporting):
        loader.set_epoch(3)
    for (x, y), (x2, y2, idx, offsets, flips) in zip(plain, reporting, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)  # reporting changes nothing
        assert offsets.shape == (len(idx), 2) and flips.shape == (len(idx),)
        # Re-applying the reported parameters to the raw images gives the same batch.
        again = random_crop_flip(tiny.train.images[idx], None, 4, offsets=offsets, flips=flips)
        assert torch.allclose(((again.float() / 255) - 0.5) / 0.25, x2, atol=1e-5)
