"""Reliability of training runs (issue 19, round two): damaged checkpoints are refused, a batch
larger than the training split, methods missing what they need and a teacher a method would
ignore are refused before anything trains, and a run without a validation split keeps its last
epoch and says so instead of reporting NaN."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from dihkit.cli.main import main
from dihkit.data.datasets import load_dataset
from dihkit.errors import CheckpointError, ConfigError
from dihkit.methods.ce import CrossEntropy
from dihkit.models import build_model
from dihkit.teachers.bundled import bundled_path
from dihkit.training.checkpoint import (
    DIGEST_KEY,
    load_checkpoint,
    load_model,
    model_entry,
    save_checkpoint,
)
from dihkit.training.config import TrainConfig
from dihkit.training.fits import NO_VALIDATION
from dihkit.training.loop import fit

TINY = ["--epochs", "1", "--train-per-class", "10", "--device", "cpu", "--quiet"]
KD = ["distill", "--method", "kd", "--teacher", "resnet14", "--student", "resnet8"]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dihkit: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


def _flip_tensor_byte(path: Path) -> str:
    """Flip one bit in the middle of the largest tensor's storage (``archive/data/N``, stored
    uncompressed); returns the entry's name."""
    with zipfile.ZipFile(path) as archive:
        entries = [i for i in archive.infolist() if "/data/" in i.filename]
        entry = max(entries, key=lambda i: i.file_size)
    assert entry.compress_type == zipfile.ZIP_STORED
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack(
        "<HH", raw[entry.header_offset + 26 : entry.header_offset + 30]
    )
    start = entry.header_offset + 30 + name_len + extra_len
    raw[start + entry.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    return entry.filename


# --- 1. a flipped bit in tensor data ------------------------------------------------------


def test_a_flipped_bit_in_tensor_data_is_refused(tmp_path, capsys):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": model_entry(build_model("resnet8", 10, 1)), "epoch": 1})
    load_model(path)  # intact: loads
    _flip_tensor_byte(path)
    torch.load(path, weights_only=True)  # torch reads it without noticing: only the digest does
    with pytest.raises(CheckpointError, match="is damaged.*--overwrite"):
        load_checkpoint(path)
    code, out, err = _cli(capsys, "eval", str(path), "--device", "cpu")
    assert code == 2 and out == ""
    _one_line(err, str(path), "damaged", "re-run", "--overwrite")


def test_the_digest_covers_plain_values_and_is_not_returned(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"epoch": 3, "history": [{"val_acc": 0.5}], "opt": {0: {"lr": 0.1}}})
    payload = load_checkpoint(path)
    assert DIGEST_KEY not in payload and payload["epoch"] == 3
    save_checkpoint(path, {**payload, "epoch": 4})  # a payload read back is saved afresh
    assert load_checkpoint(path)["epoch"] == 4
    tampered = torch.load(path, weights_only=True)
    tampered["epoch"] = 5  # an edit that keeps the old digest
    torch.save(tampered, path)
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(path)


def test_checkpoints_without_a_digest_are_refused_except_bundled_teachers(tmp_path):
    old = tmp_path / "old.pt"
    entry = model_entry(build_model("resnet8", 10, 1))
    torch.save({"format": "dihkit-checkpoint", "version": 1, "model": entry}, old)
    with pytest.raises(CheckpointError, match="older dihkit.*--overwrite"):
        load_checkpoint(old)
    copy = tmp_path / "resnet14.pt"  # a byte-identical copy of a bundled teacher still loads
    shutil.copyfile(bundled_path("resnet14"), copy)
    assert load_model(copy)[0].arch == "resnet14"


# --- 2. a batch larger than the training split ---------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--model", "resnet8"],
        KD,
        ["distill", "--method", "takd", "--assistant", "resnet8", "--teacher", "resnet14",
         "--student", "resnet8"],
        ["compare", "--methods", "ce", "kd", "--seeds", "0", "--teacher", "resnet14",
         "--student", "resnet8"],
    ],
    ids=["train", "distill", "takd", "compare"],
)  # fmt: skip
def test_a_batch_larger_than_the_training_split_is_refused_before_training(
    capsys, tmp_path, command
):
    out = tmp_path / "run"
    code, stdout, err = _cli(capsys, *command, *TINY, "--batch-size", "100000", "--out", str(out))
    assert code == 2 and stdout == ""
    _one_line(err, "100000", "100 images", "--batch-size 100 or less")
    assert not out.exists()  # nothing trained, no folder left behind


def test_fit_refuses_a_batch_larger_than_the_training_split():
    data = load_dataset("fmnist-mini", train_per_class=10)
    with pytest.raises(ConfigError, match="batch size 5000 .*100 images"):
        fit(CrossEntropy(build_model("resnet8", 10, 1)), data, TrainConfig(batch_size=5000))


# --- 3. compare checks every method before the first run -----------------------------------


@pytest.mark.parametrize(
    ("methods", "teacher", "needle"),
    [
        (["ce", "takd"], ["--teacher", "resnet14"], "--assistant"),
        (["ce", "kd"], [], "needs a teacher"),
        (["ce", "dih"], ["--teacher", "{plain}"], "dih"),
    ],
    ids=["takd-without-assistant", "kd-without-teacher", "dih-teacher-without-heads"],
)
def test_compare_checks_every_method_before_training(capsys, tmp_path, methods, teacher, needle):
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, {"model": model_entry(build_model("resnet8", 10, 1))})
    teacher = [t.format(plain=plain) for t in teacher]
    out = tmp_path / "cmp"
    argv = ["compare", "--methods", *methods, "--seeds", "0", "--student", "resnet8", *teacher]
    code, stdout, err = _cli(capsys, *argv, *TINY, "--dataset", "fmnist-mini", "--out", str(out))
    assert code == 2
    _one_line(err, needle)
    assert not out.exists()  # no ce run, no empty takd/ folder


# --- 4. a teacher the method would ignore -----------------------------------------------------


@pytest.mark.parametrize("method", ["ce", "dsn"])
def test_distill_refuses_a_teacher_the_method_ignores(capsys, tmp_path, method):
    out = tmp_path / "run"
    argv = ["distill", "--method", method, "--teacher", "resnet14", "--student", "resnet8"]
    code, stdout, err = _cli(capsys, *argv, *TINY, "--out", str(out))
    assert code == 2 and stdout == ""
    _one_line(err, f"method {method!r} trains without a teacher", "drop --teacher")
    assert not out.exists()


def test_compare_ignores_the_teacher_for_teacher_free_methods(capsys, tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "--methods", "ce", "--seeds", "0", "--teacher", "resnet14"]
    code, stdout, err = _cli(capsys, *argv, "--student", "resnet8", *TINY, "--out", str(out))
    assert code == 0, err
    state = load_checkpoint(out / "ce" / "seed-0" / "last.pt")
    assert state["meta"]["teacher"] is None and state["meta"]["teacher_sha256"] is None
    assert "resnet14" not in stdout


# --- 5. no validation split ---------------------------------------------------------------------


def test_without_a_validation_split_the_last_epoch_is_kept_and_said(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet8", "--val-fraction", "0", *TINY, "--out", str(out)]
    code, stdout, err = _cli(capsys, *argv)
    assert code == 0, err
    assert NO_VALIDATION in err
    assert "no validation split, last epoch 1 kept: test " in stdout
    assert "nan" not in stdout.lower()
    text = (out / "summary.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)
    assert summary["best_val_acc"] is None and summary["best_epoch"] == 1
    assert load_checkpoint(out / "best.pt")["best"]["val_acc"] is None


def test_train_heads_without_a_validation_split_shows_no_nan(capsys, tmp_path):
    out = tmp_path / "heads"
    argv = ["train-heads", "--teacher", "resnet14", "--val-fraction", "0", *TINY]
    code, stdout, err = _cli(capsys, *argv, "--out", str(out))
    assert code == 0, err
    assert "nan" not in stdout.lower() and "last epoch 1 kept" in stdout


# --- 6. more values that trained silently ---------------------------------------------------------


def test_milestones_without_the_multistep_schedule_are_refused(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet8", "--milestones", "3", *TINY, "--out", str(out)]
    code, _, err = _cli(capsys, *argv)
    assert code == 2
    _one_line(err, "--milestones 3", "--schedule multistep", "drop --milestones")
