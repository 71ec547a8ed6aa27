"""Checkpoints: atomic writes, safe loading (``weights_only=True``), a digest of the contents
verified on every load, and clear errors on mismatch.

Every checkpoint :func:`save_checkpoint` writes carries ``state_sha256``, a sha256 over all it
holds (every tensor's dtype, shape and bytes, and the plain values, in a fixed key order), so a
flipped bit anywhere in the file, tensor data included, is refused on load. Files written before
the digest existed (version 1) are refused too, except the bundled teachers, which are verified
by their file's sha256 in ``data/teachers/manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dihkit.errors import CheckpointError
from dihkit.files import sha256_of, write_atomic
from dihkit.models import MODEL_NAMES, build_model
from dihkit.resources import bundled

FORMAT = "dihkit-checkpoint"
VERSION = 2  # 2: carries DIGEST_KEY; 1: no digest (only the bundled teachers are read)
LEGACY_VERSION = 1
DIGEST_KEY = "state_sha256"
_RERUN = "re-run the command that wrote it (with --overwrite) or point to another checkpoint"


def model_entry(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint stores about a zoo model: enough to rebuild it."""
    for attr in ("arch", "num_classes", "in_channels"):
        if not hasattr(model, attr):
            raise CheckpointError(f"model has no {attr!r}; only dihkit.models models can be saved")
    return {
        "arch": model.arch,
        "num_classes": int(model.num_classes),
        "in_channels": int(model.in_channels),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest`` in a form that does not depend on how it was stored: mappings
    in sorted key order, lists and tuples alike, tensors as dtype, shape and bytes."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}:".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, float):
        digest.update(f"float:{value.hex()};".encode())
    else:  # None, bool, int, str, bytes and the few torch values weights_only reads
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def state_sha256(payload: Mapping[str, Any]) -> str:
    """The digest a checkpoint stores of its contents (everything but the digest itself)."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != DIGEST_KEY})
    return digest.hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with ``torch.save`` through the one atomic writer
    (:func:`dihkit.files.write_atomic`): an interruption leaves either the old checkpoint or the
    new one, never half a file. The file records :func:`state_sha256` of its contents."""
    payload = {**payload, "format": FORMAT, "version": VERSION}
    payload.pop(DIGEST_KEY, None)  # a payload read back from another checkpoint
    payload[DIGEST_KEY] = state_sha256(payload)
    return write_atomic(path, lambda handle: torch.save(payload, handle))


def _bundled_teacher_digests() -> set[str]:
    """The file sha256s of the bundled teachers (their manifest), which vouch for them."""
    try:
        manifest = json.loads((bundled("data") / "teachers" / "manifest.json").read_text())
        return {str(entry["sha256"]) for entry in manifest["teachers"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def _verify(path: Path, payload: dict[str, Any]) -> None:
    """Refuse a checkpoint whose contents do not match the digest stored in it."""
    if payload.get("version") == LEGACY_VERSION and DIGEST_KEY not in payload:
        if sha256_of(path) in _bundled_teacher_digests():  # a bundled teacher, byte for byte
            return
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by an older dihkit, without the digest that "
            f"detects damage, so it cannot be verified; {_RERUN}"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint version {payload.get('version')!r}; "
            f"this dihkit reads version {VERSION}"
        )
    stored = payload.pop(DIGEST_KEY, None)
    if not isinstance(stored, str) or stored != state_sha256(payload):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged: its contents do not match the digest stored "
            f"when it was written (a flipped bit, a bad copy or an edit); {_RERUN}"
        )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a dihkit checkpoint with ``torch.load(..., weights_only=True)`` and verify its
    digest (:func:`state_sha256`); the payload comes back without the digest."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist (a folder or a typo?)")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a foreign pickle protocol
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load fails on garbage in many ways (pickle, zip, index, ...)
        if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds objects other than tensors and plain values; "
                "refused without running any of it (a crafted or foreign file?)"
            ) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or not a PyTorch file ({type(exc).__name__}); "
            f"{_RERUN}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a dihkit checkpoint (written by `dihkit train`, "
            "`dihkit train-heads` or `dihkit distill`)"
        )
    _verify(path, payload)
    return payload


def check_model_entry(entry: Any, source: str = "checkpoint") -> dict[str, Any]:
    """``entry`` if it is a well-formed :func:`model_entry`, else a :class:`CheckpointError`
    saying which field is wrong (a damaged file, or one not written by dihkit)."""
    hint = "the file is damaged or was not written by dihkit"
    if not isinstance(entry, Mapping):
        raise CheckpointError(
            f"{source}: its model entry is a {type(entry).__name__}, not a mapping of arch, "
            f"num_classes, in_channels and state_dict; {hint}"
        )
    missing = [k for k in ("arch", "num_classes", "in_channels", "state_dict") if k not in entry]
    if missing:
        raise CheckpointError(f"{source} lacks the model field(s) {', '.join(missing)}; {hint}")
    if entry["arch"] not in MODEL_NAMES:
        raise CheckpointError(f"{source} holds an unknown architecture {entry['arch']!r}; {hint}")
    for attr in ("num_classes", "in_channels"):
        value = entry[attr]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(
                f"{source} holds {attr}={value!r}, not a positive integer; {hint}"
            )
    state = entry["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{source}: its state_dict is not a mapping of tensors; {hint}")
    return dict(entry)


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def architecture_of(state: Mapping[str, Any], num_classes: int, in_channels: int) -> str | None:
    """The zoo architecture whose parameter names and shapes ``state`` has, or None."""
    wanted = _shapes(state)
    for arch in MODEL_NAMES:  # smallest first within each family: a match usually comes early
        if _shapes(build_model(arch, num_classes, in_channels).state_dict()) == wanted:
            return arch
    return None


def check_entry_matches(
    entry: dict[str, Any], model: nn.Module, source: str = "checkpoint"
) -> None:
    """Raise a :class:`CheckpointError` if ``entry`` came from another architecture or shape."""
    entry = check_model_entry(entry, source)
    for attr in ("arch", "num_classes", "in_channels"):
        saved, wanted = entry.get(attr), getattr(model, attr, None)
        if saved != wanted:
            raise CheckpointError(
                f"{source} holds {attr}={saved!r} but the model has {attr}={wanted!r}; "
                f"build the model with {attr}={saved!r} or load a matching checkpoint"
            )


def load_model_state(model: nn.Module, entry: dict[str, Any], source: str = "checkpoint") -> None:
    """Load a :func:`model_entry` into ``model`` after checking arch, classes and channels."""
    check_entry_matches(entry, model, source)
    try:
        model.load_state_dict(entry["state_dict"])
    except RuntimeError:
        raise CheckpointError(_misfit(entry, model, source)) from None


def _misfit(entry: Mapping[str, Any], model: nn.Module, source: str) -> str:
    """One line on weights that do not fit the architecture their entry names."""
    saved, wanted = _shapes(entry["state_dict"]), _shapes(model.state_dict())
    missing = [k for k in wanted if k not in saved]
    unexpected = [k for k in saved if k not in wanted]
    reshaped = [k for k in wanted if k in saved and saved[k] != wanted[k]]
    found = architecture_of(entry["state_dict"], entry["num_classes"], entry["in_channels"])
    found_text = f"those of {found}" if found else "of no architecture in the zoo"
    return (
        f"{source} is labelled {entry['arch']} but its weights are {found_text} "
        f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped "
        f"tensors, e.g. {(missing + unexpected + reshaped)[:1]}); the file is damaged or was "
        "relabelled: re-export it or load a matching checkpoint"
    )


def model_from_entry(entry: dict[str, Any], source: str = "checkpoint") -> nn.Module:
    """Rebuild the zoo model an entry describes and load its weights."""
    entry = check_model_entry(entry, source)
    model = build_model(entry["arch"], entry["num_classes"], entry["in_channels"])
    load_model_state(model, entry, source)
    return model


def load_model(
    path: str | Path,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load the model a checkpoint holds, optionally insisting on its arch and shape."""
    payload = load_checkpoint(path)
    if "model" not in payload:
        raise CheckpointError(f"{str(path)!r} holds no model")
    entry = check_model_entry(payload["model"], repr(str(path)))
    wanted = {"arch": arch, "num_classes": num_classes, "in_channels": in_channels}
    for attr, value in wanted.items():
        if value is not None and entry.get(attr) != value:
            raise CheckpointError(
                f"{str(path)!r} holds {attr}={entry.get(attr)!r}, not the requested {value!r}"
            )
    return model_from_entry(entry, source=repr(str(path))), payload
