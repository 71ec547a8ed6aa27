"""The one atomic writer and JSON reader: a write cut short, by an error or by SIGKILL, leaves the
old file intact; the stray temporary file of a killed writer is removed when its run folder is
next claimed; a missing or damaged JSON file is one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dihkit.errors import DihkitError
from dihkit.files import (
    UnreadableFileError,
    is_temporary,
    read_json,
    sha256_of,
    stray_temporaries,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)
from dihkit.training.run_folder import claim

REPO = Path(__file__).resolve().parent.parent


def test_json_round_trips_with_a_final_newline(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "summary.json", {"acc": 0.5, "epochs": (1, 2)})
    assert path.read_text().endswith("}\n")
    assert read_json(path) == {"acc": 0.5, "epochs": [1, 2]}
    assert not stray_temporaries(tmp_path)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "history.json", "[1, 2, 3]")

    def half_then_fail(handle):
        handle.write(b"[1, 2")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, half_then_fail)
    assert read_json(path) == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_a_writer_killed_midway_leaves_the_old_file_and_a_temporary_the_next_claim_removes(
    tmp_path,
):
    path = write_json_atomic(tmp_path / "summary.json", {"done": True})
    before = sha256_of(path)
    child = (
        "import os, signal, sys\n"
        "from dihkit.files import write_atomic\n"
        "def half(handle):\n"
        "    handle.write(b'{\"do')\n"
        "    handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomic(sys.argv[1], half)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", child, str(path)], env=env, timeout=120)
    assert killed.returncode == -9
    assert sha256_of(path) == before  # the old file is intact
    (stray,) = stray_temporaries(tmp_path)
    assert stray.name.startswith(".summary.json.") and is_temporary(stray)
    with claim(tmp_path, resume=True):
        assert not stray.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_only_the_writers_own_temporaries_count_as_temporaries():
    assert is_temporary(".last.pt.k3j_x9a1.tmp")
    assert not is_temporary("notes.tmp") and not is_temporary(".tmp")
    assert not is_temporary(".last.pt")


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "results.md", "# results\n")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_missing_or_damaged_json_file_is_one_clear_error(tmp_path):
    with pytest.raises(UnreadableFileError, match="does not exist") as missing:
        read_json(tmp_path / "summary.json")
    assert missing.value.missing
    damaged = tmp_path / "history.json"
    damaged.write_text(json.dumps([{"epoch": 1, "seconds": 2.0}])[:9])
    with pytest.raises(UnreadableFileError, match="history.json is damaged") as info:
        read_json(damaged)
    assert not info.value.missing and isinstance(info.value, DihkitError)
    damaged.write_bytes(b"\xff\xfe[")
    with pytest.raises(UnreadableFileError, match="damaged"):
        read_json(damaged)
