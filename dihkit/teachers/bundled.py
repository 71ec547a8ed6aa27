"""Bundled teachers: small teachers with trained heads, shipped in ``data/teachers/``.

Each file is listed in ``manifest.json`` with its sha256, the exact commands that produced it,
and its accuracies. Loading by name verifies the sha256 before reading the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dihkit.errors import ConfigError
from dihkit.files import read_json, sha256_of, write_text_atomic
from dihkit.resources import bundled
from dihkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

TEACHER_DIR = bundled("data") / "teachers"
MANIFEST = TEACHER_DIR / "manifest.json"


def read_manifest(manifest: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    """Name -> manifest entry; empty if nothing is bundled. A damaged manifest is a
    :class:`~dihkit.files.UnreadableFileError` (or a :class:`ConfigError`) naming it."""
    if not manifest.is_file():
        return {}
    entries = read_json(manifest)
    if not isinstance(entries, dict) or not isinstance(entries.get("teachers"), dict):
        raise ConfigError(
            f"{manifest} has no 'teachers' table; restore it with `git checkout data/teachers`"
        )
    return entries["teachers"]


def teacher_names() -> list[str]:
    """Names of the bundled teachers."""
    return sorted(read_manifest())


def bundled_path(name: str, *, verify: bool = True) -> Path:
    """Path of a bundled teacher, after checking its sha256 against the manifest."""
    manifest = read_manifest()
    if name not in manifest:
        raise ConfigError(
            f"no bundled teacher {name!r}; bundled: {', '.join(sorted(manifest)) or 'none'} "
            "(or pass the path of a checkpoint)"
        )
    path = TEACHER_DIR / manifest[name]["file"]
    if not path.is_file():
        raise CheckpointError(f"bundled teacher file {str(path)!r} is missing; restore it with git")
    if verify and sha256_of(path) != manifest[name]["sha256"]:
        raise CheckpointError(
            f"bundled teacher {str(path)!r} does not match its sha256 in the manifest; "
            "the file is corrupted or was changed: restore it with `git checkout data/teachers`"
        )
    return path


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint path, or the name of a bundled teacher (sha256-verified)."""
    path = Path(source)
    if path.is_file():
        return path
    if str(source) in read_manifest():
        return bundled_path(str(source))
    raise CheckpointError(
        f"teacher {str(source)!r} is neither a checkpoint file nor a bundled teacher; "
        f"bundled teachers: {', '.join(teacher_names()) or 'none'}"
    )


def teacher_sha256(source: str | Path | None) -> str | None:
    """sha256 of a teacher checkpoint (a path or a bundled name, verified), or None without a
    teacher: the teacher's part of a run's identity."""
    if source is None:
        return None
    return sha256_of(resolve_checkpoint(source))


def check_teacher_name(name: str) -> str:
    """``name`` if it can name a bundled teacher file, else a :class:`ConfigError`."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith(".pt"):
        raise ConfigError(
            f"teacher name {name!r} must be letters, digits, '_', '-' or '.' (no path, no "
            "extension), e.g. resnet20"
        )
    return name


def export_teacher(
    checkpoint: str | Path,
    name: str,
    *,
    command: str,
    accuracies: dict[str, Any],
    teacher_dir: Path = TEACHER_DIR,
) -> dict[str, Any]:
    """Copy a trained checkpoint into the bundle, keeping only what inference needs (no optimiser
    or RNG state), and record it in the manifest with its sha256, command and accuracies (both
    written atomically)."""
    check_teacher_name(name)
    payload = load_checkpoint(checkpoint)
    keep = ("method", "dataset", "image_size", "config", "meta", "model", "heads", "head_sets")
    keep += ("epoch", "best")
    slim = {k: payload[k] for k in keep if k in payload}
    target = teacher_dir / f"{name}.pt"
    save_checkpoint(target, slim)
    manifest_path = teacher_dir / "manifest.json"
    entries = read_manifest(manifest_path)
    entries[name] = {
        "file": target.name,
        "sha256": sha256_of(target),
        "arch": payload["model"]["arch"],
        "dataset": payload.get("dataset"),
        "command": command,
        **accuracies,
    }
    text = json.dumps({"teachers": entries}, indent=2, sort_keys=True) + "\n"
    write_text_atomic(manifest_path, text)  # a kill mid-write leaves the old manifest whole
    return entries[name]
