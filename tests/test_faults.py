"""Faults with real subprocesses: SIGKILL at a random step, SIGTERM, a kill during a checkpoint
write, and two runs started on one folder. The faults hit a real ``dihkit`` process; what comes
next (the uninterrupted reference run, ``--resume``, the second run) runs in this process with
one compute thread, like the subprocesses, so that weights compare bit for bit on a CPU."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dihkit.cli.main import main
from dihkit.training.checkpoint import load_checkpoint

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


def run_here(argv: list[str], cwd: Path) -> int:
    """``dihkit ARGV`` in this process, in ``cwd``, with one compute thread."""
    threads, here = torch.get_num_threads(), Path.cwd()
    torch.set_num_threads(1)
    os.chdir(cwd)
    try:
        return main(argv)
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    assert run_here([*TRAIN, "--out", "run"], root) == 0
    return root / "run"


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    seed = time.time_ns()
    step = random.Random(seed).randint(2, STEPS_PER_EPOCH * EPOCHS - 1)
    killed = run_dihkit("kill-at-step", step, [*TRAIN, "--out", "run"], tmp_path)
    assert killed.returncode == -9, (seed, step, killed.stderr)
    assert run_here([*TRAIN, "--out", "run", "--resume"], tmp_path) == 0, (seed, step)
    assert_same_weights(reference / "last.pt", tmp_path / "run" / "last.pt")
    assert_same_weights(reference / "best.pt", tmp_path / "run" / "best.pt")


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_leaves_a_tmp_the_next_start_cleans(reference, tmp_path):
    # Writes per epoch: best.pt then last.pt; the 4th write is epoch 2's last.pt.
    killed = run_dihkit("kill-in-save", 4, [*TRAIN, "--out", "run"], tmp_path)
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "run"
    assert list(run.glob(".last.pt.*.tmp")), sorted(p.name for p in run.iterdir())
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the old file is intact
    assert run_here([*TRAIN, "--out", "run", "--resume"], tmp_path) == 0
    assert not list(run.rglob("*.tmp"))
    assert_same_weights(reference / "last.pt", run / "last.pt")


def test_a_folder_in_use_is_refused_and_sigterm_stops_its_owner_cleanly(tmp_path, capsys):
    stem = str(tmp_path / "first")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    hold = f"{stem},{STEPS_PER_EPOCH + 3}"  # in the second epoch: the first one is saved
    first = subprocess.Popen(
        [sys.executable, str(DRIVER), "hold", hold, "--", *TRAIN, "--out", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not Path(stem + ".ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        assert run_here([*TRAIN, "--out", "run"], tmp_path) == 2  # a second run, meanwhile
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert str(tmp_path / "run") in lines[0] and f"pid {first.pid}" in lines[0]

        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "SIGTERM" in lines[0] and "--resume" in lines[0] and "last.pt" in lines[0]
    run = tmp_path / "run"
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert not list(run.glob(".*.tmp")) and not (run / ".dihkit-owner").exists()
