"""A run's identity: every setting that changes its result, as plain JSON values.

This is the one definition: a run folder's checkpoints and ``summary.json`` carry the identity
of the run that wrote them; resuming (:mod:`dihkit.training.resume`), reusing a finished run in
``compare``, the notebooks' run cache (whose folder names are a digest of it) and the markers
of ``dihkit reproduce`` (:func:`train_settings`) all compare identities built here, and a
mismatch is reported as every setting that differs, in one message
(:func:`identity_differences`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from dihkit.data.datasets import Dataset
from dihkit.training.config import TrainConfig

# Training settings that do not change a run's result (compile changes how, not what, is
# computed); the one list every identity leaves out, so they may change on a resume.
NEUTRAL_SETTINGS = ("device", "eval_batch_size", "compile")
NEUTRAL_META = ("teacher",)  # meta entries that do not change a run (a path; its sha256 does)


def _plain(value: Any) -> Any:
    """JSON round trip: tuples become lists, keys strings, so stored and fresh values compare."""
    return json.loads(json.dumps(value, default=str))


def without_neutral(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (a config's fields, e.g. as stored in an older file) without the
    :data:`NEUTRAL_SETTINGS`."""
    return {k: v for k, v in settings.items() if k not in NEUTRAL_SETTINGS}


def train_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings of ``config`` that are part of a run's identity, as plain JSON values.
    ``cache_seed`` only matters to a run that trains from cached targets: without them it is
    left out, so a different ``--cache-seed`` does not make a live run a different run."""
    settings = without_neutral(dataclasses.asdict(config))
    if not config.cached_targets:
        settings.pop("cache_seed", None)
    return _plain(settings)


# The content digest of the tensors last hashed, keyed by each tensor's identity and version
# counter (an in-place change bumps it), so the several identities built for one run (resume,
# the run cache, the target cache) hash the data once.
_DIGESTS: dict[tuple[tuple[int, int], ...], str] = {}


def _content_digest(data: Dataset) -> str:
    tensors = [
        t for split in (data.train, data.val, data.test) for t in (split.images, split.labels)
    ]
    key = tuple((id(t), t._version) for t in tensors)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        for tensor in tensors:
            digest.update(tensor.contiguous().cpu().numpy().tobytes())
        _DIGESTS.clear()  # one dataset at a time: ids of freed tensors may be reused
        _DIGESTS[key] = digest.hexdigest()[:16]
    return _DIGESTS[key]


def data_identity(data: Dataset) -> dict[str, Any]:
    """The dataset's name, the options it was loaded with, split sizes and a content digest."""
    return {
        "dataset": data.spec.name,
        **dict(getattr(data, "options", None) or {}),
        "train_images": len(data.train),
        "val_images": len(data.val),
        "test_images": len(data.test),
        "sha256": _content_digest(data),
    }


def run_identity(
    method: str,
    student: str,
    data: Dataset,
    config: TrainConfig,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The identity of a run of ``method`` training ``student`` on ``data`` with ``config``;
    ``meta`` adds method-specific settings (the method's options, the teacher's sha256, head
    settings), except a teacher's path."""
    extra = {k: v for k, v in (meta or {}).items() if k not in NEUTRAL_META}
    return _plain(
        {
            "method": method,
            "student": student,
            "train": train_settings(config),
            "data": data_identity(data),
            **extra,
        }
    )


def identity_digest(identity: Mapping[str, Any]) -> str:
    """A short stable hash of an identity (12 hex digits), e.g. for a folder name."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _short(value: Any) -> str:
    """``repr`` of a value, digests cut to 12 characters (enough to tell two apart)."""
    if isinstance(value, str) and len(value) > 16:
        return repr(value[:12] + "...")
    return repr(value)


def identity_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Every setting that differs, as ``name: old -> new`` (``unset`` where one side lacks it)."""
    a, b = _flatten(_plain(old)), _flatten(_plain(new))
    missing = object()
    lines = []
    for name in sorted(set(a) | set(b)):
        before, after = a.get(name, missing), b.get(name, missing)
        if before != after:
            shown = ["unset" if v is missing else _short(v) for v in (before, after)]
            lines.append(f"{name}: {shown[0]} -> {shown[1]}")
    return lines
