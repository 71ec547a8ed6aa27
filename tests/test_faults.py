"""Faults with real subprocesses: SIGKILL at a random step, SIGTERM, a kill during a checkpoint
write, and two runs started on one folder. A killed run resumed with ``--resume`` ends with
exactly the weights of an uninterrupted run (CPU)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dihkit.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "fault_driver.py"
STEPS_PER_EPOCH, EPOCHS = 10, 2  # 100 images in batches of 10
TRAIN = [
    "train", "--model", "resnet8", "--epochs", str(EPOCHS), "--train-per-class", "10",
    "--batch-size", "10", "--val-fraction", "0.02", "--device", "cpu", "--quiet",
]  # fmt: skip


def run_dihkit(mode: str, arg: object, argv: list[str], cwd: Path, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(DRIVER), mode, str(arg), "--", *argv]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, **kwargs
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    result = run_dihkit("none", 0, [*TRAIN, "--out", "run"], root)
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_sigkill_at_a_random_step_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    seed = time.time_ns()
    step = random.Random(seed).randint(2, STEPS_PER_EPOCH * EPOCHS - 1)
    killed = run_dihkit("kill-at-step", step, [*TRAIN, "--out", "run"], tmp_path)
    assert killed.returncode == -9, (seed, step, killed.stderr)
    resumed = run_dihkit("none", 0, [*TRAIN, "--out", "run", "--resume"], tmp_path)
    assert resumed.returncode == 0, (seed, step, resumed.stderr)
    assert "Traceback" not in resumed.stderr
    assert_same_weights(reference / "last.pt", tmp_path / "run" / "last.pt")
    assert_same_weights(reference / "best.pt", tmp_path / "run" / "best.pt")


def test_sigterm_stops_with_one_line_and_keeps_last_pt(tmp_path):
    step = STEPS_PER_EPOCH + 3  # in the second epoch: the first one is saved
    result = run_dihkit("term-at-step", step, [*TRAIN, "--out", "run"], tmp_path)
    assert result.returncode == 143
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SIGTERM" in lines[0] and "--resume" in lines[0] and "last.pt" in lines[0]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_kill_during_a_checkpoint_write_leaves_a_tmp_the_next_start_cleans(reference, tmp_path):
    # Writes per epoch: best.pt then last.pt; the 4th write is epoch 2's last.pt.
    killed = run_dihkit("kill-in-save", 4, [*TRAIN, "--out", "run"], tmp_path)
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "run"
    assert list(run.glob(".last.pt.*.tmp")), sorted(p.name for p in run.iterdir())
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the old file is intact
    resumed = run_dihkit("none", 0, [*TRAIN, "--out", "run", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run.rglob("*.tmp"))
    assert_same_weights(reference / "last.pt", run / "last.pt")


def test_a_second_run_on_a_folder_in_use_is_refused_with_the_owner(tmp_path):
    stem = str(tmp_path / "first")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, str(DRIVER), "hold", stem, "--", *TRAIN, "--out", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not Path(stem + ".ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        second = run_dihkit("none", 0, [*TRAIN, "--out", "run"], tmp_path)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert str(tmp_path / "run") in lines[0] and f"pid {first.pid}" in lines[0]
        Path(stem + ".go").write_text("")
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == EPOCHS
