"""What a reproduction ran on: package versions, device, the command line and the git commit."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dihkit.resources import checkout_root
from dihkit.training.runtime import numeric_environment

PACKAGES = ("dihkit", "torch", "torchvision", "numpy", "tqdm")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(root: Path | None = None) -> dict[str, Any] | None:
    """The checkout's commit and whether it had uncommitted changes; None for an installed
    package or outside git."""
    root = root or checkout_root()
    if root is None:
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def device_record(device: torch.device) -> dict[str, Any]:
    """The device, what decides its float trajectory (:func:`numeric_environment`: processor,
    vector instructions and threads on the CPU) and, on CUDA, its memory, count and the
    CUDA/cuDNN versions."""
    record: dict[str, Any] = {"type": device.type}
    record.update({k: v for k, v in numeric_environment(device).items() if k != "device"})
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        record.update(
            name=record.pop("gpu"),  # numeric_environment's device name, under its old key
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            count=torch.cuda.device_count(),
        )
    return record


def environment_record(
    device: torch.device,
    *,
    argv: Sequence[str] | None = None,
    seeds: Sequence[int] = (),
    world_size: int = 1,
) -> dict[str, Any]:
    """Everything needed to tell two reproductions apart."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv if argv is None else argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "device": device_record(device),
        "world_size": world_size,
        "seeds": list(seeds),
        "git": git_commit(),
    }
