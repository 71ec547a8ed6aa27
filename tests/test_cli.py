"""The command line: each command works, and each bad input gets one clear message."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from dihkit.cli.main import main
from dihkit.models import build_model
from dihkit.training.checkpoint import model_entry, save_checkpoint


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "dihkit.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in (
        "train",
        "eval",
        "train-heads",
        "distill",
        "teachers",
        "tour",
        "quickstart",
        "notebooks",
    ):
        assert command in result.stdout


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"dihkit {version('dihkit')}"


@pytest.mark.parametrize(("command", "flag"), [("train", "--model"), ("distill", "--student")])
def test_help_names_every_architecture(capsys, command, flag):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    words = capsys.readouterr().out.replace(",", " ").split()
    assert flag in words
    for name in ("resnet8", "resnet32x4", "wrn_40_2", "vgg13", "mobilenetv2", "shufflenetv2"):
        assert name in words, f"{command} --help does not name {name}"


def test_train_then_eval_prints_the_same_test_accuracy(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, _ = run(
        capsys, "train", "--model", "resnet8", "--epochs", "1", "--out", str(out_dir), "--quiet"
    )
    assert code == 0
    summary = [line for line in out.splitlines() if line.startswith("resnet8 on fmnist-mini")][0]
    best_test = summary.split("test ")[1].split("%")[0]
    code, out, _ = run(capsys, "eval", str(out_dir / "best.pt"))
    assert code == 0
    assert f"resnet8 on fmnist-mini test: {best_test}%" in out


def test_unknown_model_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "resnet9", "--out", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "resnet9" in err and "resnet8" in err and "wrn_40_2" in err


def test_unknown_dataset_lists_the_valid_ones(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--model", "resnet8", "--dataset", "mnist", "--out", str(tmp_path)
    )
    assert code == 2
    assert "mnist" in err and "fmnist-mini" in err and "cifar100" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_non_positive_epochs_or_batch_size_are_rejected(capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "resnet8", flag, value, "--out", "x"])
    assert exit_info.value.code == 2
    assert f"must be a positive integer, got {value}" in capsys.readouterr().err


def test_in_channels_that_do_not_match_the_data_are_rejected(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--model", "resnet8", "--in-channels", "3", "--out", str(tmp_path)
    )
    assert code == 2
    assert "--in-channels 3" in err and "1 channel" in err


def test_missing_data_directory_names_the_path_and_the_fix(capsys, tmp_path):
    missing = tmp_path / "no-such-dir"
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "resnet8",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(missing),
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 2
    assert str(missing) in err and "--download" in err


def test_corrupted_checkpoint_gives_one_line_error(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    code, _, err = run(capsys, "eval", str(bad))
    assert code == 2
    assert str(bad) in err and "corrupted" in err
    assert len(err.strip().splitlines()) == 1


def test_checkpoint_for_other_data_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "rgb.pt"
    save_checkpoint(path, {"model": model_entry(build_model("resnet8", 100, 3))})
    code, _, err = run(capsys, "eval", str(path), "--dataset", "fmnist-mini")
    assert code == 2
    assert "3-channel" in err and "100 classes" in err and "fmnist-mini" in err


def test_unknown_device_lists_the_choices(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--model", "resnet8", "--device", "tpu", "--out", str(tmp_path)
    )
    assert code == 2
    assert "tpu" in err and "cuda" in err and "cpu" in err


def test_teachers_lists_the_bundle(capsys):
    code, out, _ = run(capsys, "teachers")
    assert code == 0
    for name in ("resnet14", "resnet20", "resnet56"):
        assert name in out


def test_quickstart_shows_the_cohorts_and_trains_a_small_model(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "quickstart",
        "--model",
        "resnet8",
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0
    assert "bundled teacher resnet56" in out and "head3 (layer3)" in out
    assert "resnet8: best epoch 1" in out


def test_train_heads_reports_head_sizes_and_every_members_accuracy(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "train-heads",
        "--teacher",
        "resnet14",
        "--head",
        "pooled",
        "--epochs",
        "1",
        "--train-per-class",
        "10",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0
    assert "head1 (layer1): 170 parameters" in out  # (16 + 1) * 10
    assert "head3 (layer3): 650 parameters" in out  # (64 + 1) * 10
    assert "teacher" in out and "last epoch test" in out
    assert (tmp_path / "cohort.json").is_file()
    code, out, _ = run(capsys, "eval", str(tmp_path / "best.pt"))
    assert code == 0
    assert out.splitlines()[0].split() == ["member", "val%", "test%"]
    assert len(out.splitlines()) == 5  # header, three heads, teacher
