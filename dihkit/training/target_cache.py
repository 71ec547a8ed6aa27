"""Cached cohort targets: the frozen teacher's (and its heads') logits for V augmented views of
every training image, computed once and reused by every run that distils from them.

A frozen network's output for one view of one image never changes, yet live distillation
recomputes it every epoch, and on a CPU that forward pass is most of a KD step. Here each view
``v`` of the training split is drawn once (crop offsets and flips, from a generator seeded by
``(seed, v)``), the frozen members' logits are stored in float16 beside the view's parameters,
and training picks one stored view per image each epoch (:class:`CachedTargetLoader`), so the
student sees exactly the pixels the targets were computed for.

A cache lives in ``ROOT/<digest>/`` where the digest covers everything its contents depend on
(:func:`cache_key`): the frozen network's weights, the training split's pixels and labels, the
augmentation settings, V, the seed, the device type and the storage dtype. ``targets.pt`` is
written atomically (:mod:`dihkit.files`) and ``manifest.json`` (the key and the file's sha256)
after it; a cache whose manifest or checksum does not match is rebuilt, never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dihkit.data.datasets import Dataset, Split
from dihkit.data.loader import BatchLoader, epoch_seed, random_crop_flip
from dihkit.errors import ConfigError
from dihkit.files import (
    UnreadableFileError,
    read_json,
    sha256_of,
    stray_temporaries,
    write_atomic,
    write_json_atomic,
)
from dihkit.training.config import EVAL_BATCH_SIZE
from dihkit.training.runtime import autocast
from dihkit.training.trainable import TargetSource

__all__ = [
    "CACHE_FORMAT",
    "CachedTargetLoader",
    "TargetCache",
    "build_targets",
    "cache_key",
    "default_cache_root",
    "load_or_build",
    "state_digest",
    "split_digest",
]

CACHE_FORMAT = 1
PAD = 4  # the loader's crop padding; part of the key
STORAGE_DTYPE = torch.float16
TARGETS_FILE = "targets.pt"
MANIFEST_FILE = "manifest.json"


def default_cache_root() -> Path:
    """``$DIHKIT_TARGET_CACHE`` if set, else ``runs/cache/targets`` under the working folder."""
    return Path(os.environ.get("DIHKIT_TARGET_CACHE", "runs/cache/targets"))


@dataclass
class TargetCache:
    """The cached views of one training split.

    ``targets`` is ``(V, N, M, C)`` float16: member ``m``'s logits for view ``v`` of image ``n``
    (members in the order the distiller's ``frozen_targets`` returns them; a method may pack
    more per member, as DSKD appends the teacher's flattened feature map to its logits); ``offsets``
    ``(V, N, 2)`` int8 and ``flips`` ``(V, N)`` bool are the views' crop offsets and mirrors.
    """

    targets: Tensor
    offsets: Tensor
    flips: Tensor
    key: dict[str, Any]
    folder: Path | None = None
    built: bool = False  # True when this call computed it, False when it was loaded
    seconds: float = 0.0  # time spent building (0 when loaded)

    @property
    def views(self) -> int:
        return int(self.targets.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.targets, self.offsets, self.flips))

    def to(self, device: torch.device) -> TargetCache:
        """The same cache with its tensors on ``device``."""
        return TargetCache(
            self.targets.to(device),
            self.offsets.to(device),
            self.flips.to(device),
            self.key,
            self.folder,
            self.built,
            self.seconds,
        )


def state_digest(module: nn.Module) -> str:
    """sha256 of a module's state dict (every parameter and buffer: names, dtypes, shapes and
    values, in name order). Equal digests mean bit-identical weights and BatchNorm statistics."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_SPLIT_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def split_digest(split: Split) -> str:
    """sha256 of a split's pixels and labels (remembered for the last split hashed, keyed by
    the tensors' identities and version counters, so a run that resumes, checks and builds its
    cache hashes the training split once)."""
    images, labels = split.images, split.labels
    key = (id(images), images._version, id(labels), labels._version)
    if key not in _SPLIT_DIGESTS:
        digest = hashlib.sha256()
        digest.update(str(tuple(images.shape)).encode())
        digest.update(images.contiguous().numpy().tobytes())
        digest.update(labels.contiguous().numpy().tobytes())
        _SPLIT_DIGESTS.clear()
        _SPLIT_DIGESTS[key] = digest.hexdigest()
    return _SPLIT_DIGESTS[key]


def cache_key(
    source: nn.Module,
    data: Dataset,
    *,
    views: int,
    seed: int,
    augment: bool,
    device: torch.device,
    contents: str = "logits",
) -> dict[str, Any]:
    """Everything a cache's contents depend on, as plain JSON values (``contents``: what the
    distiller's ``frozen_targets`` returns, e.g. logits only or logits and a feature map)."""
    return {
        "format": CACHE_FORMAT,
        "contents": contents,
        "frozen_weights_sha256": state_digest(source),
        "dataset": data.spec.name,
        "train_split_sha256": split_digest(data.train),
        "train_images": len(data.train),
        "mean": list(map(float, torch.as_tensor(data.spec.mean).flatten())),
        "std": list(map(float, torch.as_tensor(data.spec.std).flatten())),
        "augment": bool(augment),
        "pad": PAD,
        "views": int(views),
        "seed": int(seed),
        "device_type": device.type,
        "dtype": str(STORAGE_DTYPE),
    }


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def build_targets(
    frozen_targets: Callable[[Tensor], Tensor],
    data: Dataset,
    *,
    views: int,
    seed: int,
    augment: bool,
    device: torch.device,
    batch_size: int = EVAL_BATCH_SIZE,
    channels_last: bool = False,
    progress: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``views`` augmented views of every training image and the frozen logits of each.

    View ``v`` is the augmentation the in-memory loader draws, in split order, for epoch ``v``
    of a loader seeded with ``seed``; the loader reports the parameters it drew. Returns
    ``(targets, offsets, flips)`` shaped as in :class:`TargetCache`, on the CPU.
    """
    loader = BatchLoader(
        data.train,
        batch_size,
        mean=data.spec.mean,
        std=data.spec.std,
        device=device,
        augment=augment,
        seed=seed,
        pad=PAD,
        channels_last=channels_last,
        return_augmentation=True,
    )
    all_targets, all_offsets, all_flips = [], [], []
    bar = tqdm(total=views * len(loader), desc="caching targets", disable=not progress)
    for view in range(views):
        loader.set_epoch(view)
        chunks, offsets, flips = [], [], []
        for images, _, batch_offsets, batch_flips in loader:
            with torch.inference_mode(), autocast(device):
                logits = frozen_targets(images)  # (M, B, C)
            chunks.append(logits.transpose(0, 1).to("cpu", STORAGE_DTYPE))
            offsets.append(batch_offsets.to("cpu", torch.int8))
            flips.append(batch_flips.to("cpu"))
            bar.update()
        all_targets.append(torch.cat(chunks))
        all_offsets.append(torch.cat(offsets))
        all_flips.append(torch.cat(flips))
    bar.close()
    return torch.stack(all_targets), torch.stack(all_offsets), torch.stack(all_flips)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so concurrent runs build one cache, not two."""
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_shapes(targets: Tensor, offsets: Tensor, flips: Tensor, key: dict[str, Any]) -> None:
    v, n = key["views"], key["train_images"]
    if (
        targets.dim() != 4
        or tuple(targets.shape[:2]) != (v, n)
        or targets.dtype != STORAGE_DTYPE
        or tuple(offsets.shape) != (v, n, 2)
        or offsets.dtype != torch.int8
        or tuple(flips.shape) != (v, n)
        or flips.dtype != torch.bool
    ):
        raise ValueError("tensor shapes or dtypes do not match the manifest")
    if not torch.isfinite(targets).all():
        raise ValueError("non-finite targets")


def read_cache(folder: Path, key: dict[str, Any]) -> TargetCache:
    """Load and verify a cache folder; raises ``ValueError`` saying what is wrong with it."""
    manifest_path, targets_path = folder / MANIFEST_FILE, folder / TARGETS_FILE
    if not manifest_path.is_file() or not targets_path.is_file():
        raise FileNotFoundError("no finished cache")
    try:
        manifest = read_json(manifest_path)
    except UnreadableFileError as exc:
        raise ValueError(f"unreadable manifest ({exc.problem})") from exc
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        raise ValueError("its key does not match these settings (stale)")
    if manifest.get("sha256") != sha256_of(targets_path):
        raise ValueError(f"{TARGETS_FILE} does not match its checksum (corrupted)")
    try:
        payload = torch.load(targets_path, map_location="cpu", weights_only=True)
        targets, offsets, flips = payload["targets"], payload["offsets"], payload["flips"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file means: rebuild
        raise ValueError(f"unreadable {TARGETS_FILE} ({type(exc).__name__})") from exc
    _check_shapes(targets, offsets, flips, key)
    return TargetCache(targets, offsets, flips, key, folder)


def write_cache(folder: Path, cache: TargetCache) -> None:
    """Write ``targets.pt`` then ``manifest.json`` (with the file's sha256), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).unlink(missing_ok=True)  # an old manifest must never vouch for it
    payload = {"targets": cache.targets, "offsets": cache.offsets, "flips": cache.flips}
    write_atomic(folder / TARGETS_FILE, lambda handle: torch.save(payload, handle))
    manifest = {
        "key": cache.key,
        "sha256": sha256_of(folder / TARGETS_FILE),
        "shape": list(cache.targets.shape),
        "build_seconds": round(cache.seconds, 3),
    }
    write_json_atomic(folder / MANIFEST_FILE, manifest)


def load_or_build(
    distiller: TargetSource,
    data: Dataset,
    *,
    views: int,
    seed: int = 0,
    augment: bool = True,
    device: torch.device | str = "cpu",
    root: str | Path | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    channels_last: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> TargetCache:
    """The distiller's cached targets for ``data.train``: loaded from ``root`` when a verified
    cache with the same key exists, built (and stored) otherwise.

    ``distiller`` must be able to cache (``distiller.cache_refusal()`` is None): its
    ``target_source()`` is the frozen network whose weights key the cache and its
    ``frozen_targets(images)`` the ``(M, B, C)`` logits stored.
    """
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ConfigError(f"cached targets need a positive number of views, got {views!r}")
    refusal = distiller.cache_refusal()
    if refusal is not None:
        raise ConfigError(refusal)
    device = torch.device(device)
    key = cache_key(
        distiller.target_source(),
        data,
        views=views,
        seed=seed,
        augment=augment,
        device=device,
        contents=distiller.cached_contents,
    )
    folder = Path(root if root is not None else default_cache_root()) / _digest(key)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        for stale in stray_temporaries(folder):  # left by a build killed mid-write
            stale.unlink(missing_ok=True)
        try:
            return read_cache(folder, key).to(device)
        except FileNotFoundError:
            pass
        except ValueError as problem:
            log(f"target cache {folder}: {problem}; rebuilding it")
        start = time.perf_counter()
        targets, offsets, flips = build_targets(
            distiller.frozen_targets,
            data,
            views=views,
            seed=seed,
            augment=augment,
            device=device,
            batch_size=batch_size,
            channels_last=channels_last,
            progress=progress,
        )
        cache = TargetCache(targets, offsets, flips, key, folder, True, time.perf_counter() - start)
        write_cache(folder, cache)
        log(
            f"target cache: {views} views of {len(data.train)} images built in "
            f"{cache.seconds:.1f} s ({cache.nbytes / 2**20:.1f} MiB) in {folder}"
        )
        return cache.to(device)


class CachedTargetLoader(BatchLoader):
    """A :class:`BatchLoader` that trains on cached views: each epoch every image gets one of
    its V stored views (chosen by a generator seeded from ``(seed, epoch)``), and each batch is
    ``(images, labels, targets)`` with ``targets`` the ``(M, B, C)`` float32 frozen logits of
    exactly those views. Shuffle order is the plain loader's for the same seed."""

    def __init__(self, split: Split, cache: TargetCache, batch_size: int, **kwargs: Any) -> None:
        kwargs.setdefault("shuffle", True)
        super().__init__(split, batch_size, augment=bool(cache.key["augment"]), **kwargs)
        if cache.targets.shape[1] != self.num_samples:
            raise ConfigError(
                f"the target cache holds {cache.targets.shape[1]} images but the split has "
                f"{self.num_samples}; it was built for other data"
            )
        self.cache = cache.to(self.device)
        self._choice: Tensor | None = None

    def _start_epoch(self) -> None:
        gen = torch.Generator(device="cpu").manual_seed(epoch_seed(self.seed, self.epoch) ^ 0x7A11)
        views = torch.randint(self.cache.views, (self.num_samples,), generator=gen)
        self._choice = views.to(self.device)

    def _view(
        self,
        images: Tensor,
        idx: Tensor,
        aug_gen: torch.Generator,
        part: slice | None = None,
        size: int | None = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        assert self._choice is not None
        view = self._choice[idx]
        offsets = self.cache.offsets[view, idx]
        flips = self.cache.flips[view, idx]
        if self.augment:
            images = random_crop_flip(images, None, self.pad, offsets=offsets, flips=flips)
        targets = self.cache.targets[view, idx].to(torch.float32).transpose(0, 1)
        extras: tuple[Tensor, ...] = (targets,)
        if self.return_indices:
            extras = (idx, *extras)
        return images, extras
