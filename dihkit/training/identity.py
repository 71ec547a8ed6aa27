"""A run's identity: every setting that changes its result, as plain JSON values.

A run folder's checkpoints and ``summary.json`` carry the identity of the run that wrote them;
resuming, and reusing a finished run in ``compare``, require the same identity, and a mismatch is
reported as every setting that differs, in one message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dihkit.data.datasets import Dataset

# training settings that do not alter the run (compile changes how, not what, is computed)
RESUME_MAY_CHANGE = ("device", "eval_batch_size", "compile")
NOT_IDENTITY = ("teacher",)  # meta entries that do not change a run (a path; its sha256 does)


def _plain(value: Any) -> Any:
    """JSON round trip: tuples become lists, keys strings, so stored and fresh values compare."""
    return json.loads(json.dumps(value, default=str))


def data_identity(data: Dataset) -> dict[str, Any]:
    """The dataset's name, the options it was loaded with, split sizes and a content digest."""
    digest = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        for tensor in (split.images, split.labels):
            digest.update(tensor.contiguous().cpu().numpy().tobytes())
    return {
        "dataset": data.spec.name,
        **dict(getattr(data, "options", None) or {}),
        "train_images": len(data.train),
        "val_images": len(data.val),
        "test_images": len(data.test),
        "sha256": digest.hexdigest()[:16],
    }


def teacher_sha256(source: str | Path | None) -> str | None:
    """sha256 of a teacher checkpoint (a path or a bundled name), or None without a teacher."""
    if source is None:
        return None
    from dihkit.teachers.bundled import resolve_checkpoint, sha256_of

    return sha256_of(resolve_checkpoint(source))


def run_identity(
    method: str,
    student: str,
    data: Dataset,
    config: Any,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The identity of a run of ``method`` training ``student`` on ``data`` with ``config`` (a
    :class:`dihkit.training.loop.TrainConfig`); ``meta`` adds method-specific settings (the method's
    options, the teacher's sha256, head settings), except a teacher's path."""
    train = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUME_MAY_CHANGE}
    extra = {k: v for k, v in (meta or {}).items() if k not in NOT_IDENTITY}
    return _plain(
        {"method": method, "student": student, "train": train, "data": data_identity(data), **extra}
    )


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
