"""Runs ``dihkit`` in a subprocess with one fault injected (used by test_faults.py).

``python fault_driver.py MODE N -- ARGV...``: MODE is ``none``, ``kill-at-step`` (SIGKILL before
the N-th optimiser step), ``term-at-step`` (SIGTERM before the N-th step), ``kill-in-save``
(SIGKILL halfway through the N-th checkpoint write) or ``hold`` (N is ``STEM,STEP``: before
step STEP, create ``STEM.ready`` and wait, holding the run folder, until ``STEM.go`` exists or a
signal arrives).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch

from dihkit.cli.main import main


def _patch_step(on_step) -> None:
    real = torch.optim.SGD.step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        on_step(count["n"])
        return real(self, *args, **kwargs)

    torch.optim.SGD.step = step


def _kill_in_save(n: int) -> None:
    real = torch.save
    count = {"n": 0}

    def save(obj, handle, *args, **kwargs):
        count["n"] += 1
        if count["n"] == n:
            handle.write(b"PK\x03\x04 half a checkpoint")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(obj, handle, *args, **kwargs)

    torch.save = save


def _hold(stem: str, at: int) -> None:
    def wait(step: int) -> None:
        if step == at:
            Path(stem + ".ready").write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while not Path(stem + ".go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    _patch_step(wait)


def _signal_at(n: int, signum: int) -> None:
    def send(step: int) -> None:
        if step == n:
            os.kill(os.getpid(), signum)

    _patch_step(send)


if __name__ == "__main__":
    mode, arg, separator, *argv = sys.argv[1:]
    assert separator == "--"
    if mode == "kill-at-step":
        _signal_at(int(arg), signal.SIGKILL)
    elif mode == "term-at-step":
        _signal_at(int(arg), signal.SIGTERM)
    elif mode == "kill-in-save":
        _kill_in_save(int(arg))
    elif mode == "hold":
        stem, at = arg.rsplit(",", 1)
        _hold(stem, int(at))
    sys.exit(main(argv))
