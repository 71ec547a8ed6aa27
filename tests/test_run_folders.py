"""Run folders belong to one run: a finished run is never overwritten by accident, resuming
needs the same run identity (every difference is reported at once), compare reuses only runs
with matching settings, and a diverging run stops with its last finite checkpoint kept."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from dihkit.cli.main import main
from dihkit.errors import CheckpointError, DivergenceError
from dihkit.methods.ce import CrossEntropy
from dihkit.models import build_model
from dihkit.training.checkpoint import load_checkpoint, save_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.loop import fit
from dihkit.training.run_folder import claim

SMALL = ["--train-per-class", "10", "--batch-size", "50", "--val-fraction", "0.02",
         "--device", "cpu", "--quiet", "--epochs", "1"]  # fmt: skip


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_finished_run_is_kept_unless_resumed_or_overwritten(capsys, tmp_path):
    out = str(tmp_path / "run")
    code, err = cli(capsys, "train", "--model", "resnet8", *SMALL, "--out", out, "--resume")
    assert code == 0
    assert "does not exist; --resume starts from scratch" in err  # said in one line
    best = (tmp_path / "run" / "best.pt").read_bytes()

    code, err = cli(capsys, "train", "--model", "resnet8", *SMALL, "--out", out)
    assert code == 2 and "is not empty" in err and "--overwrite" in err
    assert (tmp_path / "run" / "best.pt").read_bytes() == best

    code, _ = cli(capsys, "train", "--model", "resnet8", *SMALL, "--epochs", "2",
                  "--out", out, "--overwrite")  # fmt: skip
    assert code == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
    assert not (tmp_path / "run" / ".dihkit-owner").exists()  # released


def test_resume_reports_every_changed_setting_in_one_message(capsys, tmp_path):
    out = str(tmp_path / "run")
    kd = ["distill", "--method", "kd", "--student", "resnet8", "--out", out]
    code, _ = cli(capsys, *kd, "--teacher", "resnet14", *SMALL)
    assert code == 0
    code, err = cli(
        capsys, *kd, "--teacher", "resnet20", *SMALL, "--tau", "3", "--train-per-class", "12",
        "--resume",
    )  # fmt: skip
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for change in ("options.tau: 5.0 -> 3.0", "data.train_per_class: 10 -> 12", "teacher_sha256"):
        assert change in lines[0], change


def test_compare_reuses_a_run_only_when_its_settings_match(capsys, tmp_path):
    out = tmp_path / "grid"
    compare = ["compare", "--methods", "ce", "--seeds", "0", "--student", "resnet8", *SMALL]
    assert cli(capsys, *compare, "--out", str(out))[0] == 0
    last = out / "ce" / "seed-0" / "last.pt"
    written = last.stat().st_mtime_ns

    assert cli(capsys, *compare, "--out", str(out))[0] == 0
    assert last.stat().st_mtime_ns == written  # reused, not trained again

    code, err = cli(capsys, *compare, "--lr", "0.05", "--out", str(out))
    assert code == 2 and "train.lr: 0.1 -> 0.05" in err and len(err.strip().splitlines()) == 1
    assert last.stat().st_mtime_ns == written

    assert cli(capsys, *compare, "--lr", "0.05", "--overwrite", "--out", str(out))[0] == 0
    assert load_checkpoint(last)["config"]["lr"] == 0.05


def test_compare_treats_a_damaged_summary_as_unfinished_never_a_traceback(capsys, tmp_path):
    out = tmp_path / "grid"
    compare = ["compare", "--methods", "ce", "--seeds", "0", "--student", "resnet8", *SMALL]
    assert cli(capsys, *compare, "--out", str(out))[0] == 0
    run = out / "ce" / "seed-0"
    summary = (run / "summary.json").read_text()
    written = (run / "last.pt").stat().st_mtime_ns

    (run / "summary.json").write_text(summary[: len(summary) // 2])  # a write cut short
    assert cli(capsys, *compare, "--out", str(out))[0] == 0  # resumed: no epoch left to train
    assert (run / "last.pt").stat().st_mtime_ns == written
    assert json.loads((run / "summary.json").read_text()) == json.loads(summary)

    (run / "history.json").write_text("[{")
    assert cli(capsys, *compare, "--overwrite", "--out", str(out))[0] == 0
    assert (
        json.loads((run / "summary.json").read_text())["identity"]
        == json.loads(summary)["identity"]
    )

    (run / "summary.json").write_text("{")
    (run / "last.pt").write_bytes(b"PK\x03\x04 half a checkpoint")
    code, err = cli(capsys, *compare, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot resume" in err and "--overwrite" in err


def test_a_checkpoint_without_a_run_identity_is_refused_with_the_fix(tiny, tmp_path):
    config = TrainConfig(epochs=1, batch_size=100, device="cpu")
    fit(CrossEntropy(build_model("resnet8", 10, 1)), tiny, config, out_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    del state["identity"]
    save_checkpoint(tmp_path / "last.pt", state)
    with pytest.raises(CheckpointError, match="records no run identity.*--overwrite"):
        fit(
            CrossEntropy(build_model("resnet8", 10, 1)), tiny, config, out_dir=tmp_path,
            resume=True, progress=False,
        )  # fmt: skip


class BlowsUp(CrossEntropy):
    """Cross-entropy whose loss turns into nan from the second epoch on."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def forward(self, images, labels):
        logits, losses = super().forward(images, labels)
        if self.epoch >= 1:
            losses = {**losses, "ce": losses["ce"] * math.nan}
        return logits, losses


def test_a_diverging_run_stops_at_the_first_nan_and_keeps_the_last_finite_epoch(tiny, tmp_path):
    model = build_model("resnet8", 10, 1)
    config = TrainConfig(epochs=3, batch_size=100, device="cpu")
    with pytest.raises(DivergenceError) as info:
        fit(BlowsUp(model), tiny, config, out_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "epoch 2, step 1 of 3" in message and "ce=nan" in message and "--lr" in message
    assert "keeps epoch 1" in message and "\n" not in message
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(tmp_path / name)
        assert state["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in state["model"]["state_dict"].values())


def test_a_huge_learning_rate_exits_2_with_one_line_and_saves_no_nan_weights(capsys, tmp_path):
    code, err = cli(capsys, "train", "--model", "resnet8", *SMALL, "--batch-size", "10",
                    "--lr", "1e6", "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "training diverged" in err and "1e+06" in err
    assert not list(tmp_path.rglob("*.pt"))  # it diverged in epoch 1: nothing was saved


def test_claiming_a_folder_removes_the_temporaries_of_a_killed_run(tmp_path):
    (tmp_path / "records").mkdir()
    stale = [tmp_path / ".last.pt.x1.tmp", tmp_path / "records" / ".epoch-001.pt.x2.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("not ours")  # not a dihkit temporary
    with claim(tmp_path, resume=True):
        assert not any(path.exists() for path in stale)
    assert (tmp_path / "notes.tmp").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_refused_before_training(capsys, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code, err = cli(capsys, "train", "--model", "resnet8", *SMALL, "--out", str(folder))
    assert code == 2 and "not writable" in err and str(folder) in err


def test_cache_seed_is_part_of_the_identity_only_with_cached_targets(tiny):
    from dihkit.training.config import TrainConfig
    from dihkit.training.identity import run_identity

    def identity(**settings):
        return run_identity("kd", "resnet8", tiny, TrainConfig(epochs=1, **settings))

    assert identity(cache_seed=0) == identity(cache_seed=7)  # live teacher: no cache to seed
    assert identity(cached_targets=2, cache_seed=0) != identity(cached_targets=2, cache_seed=7)


def test_the_data_digest_follows_in_place_changes(tiny):
    import dataclasses

    from dihkit.training.identity import data_identity

    before = data_identity(tiny)["sha256"]
    assert data_identity(tiny)["sha256"] == before
    images = tiny.test.images.clone()
    copy = dataclasses.replace(tiny, test=dataclasses.replace(tiny.test, images=images))
    assert data_identity(copy)["sha256"] == before  # same bytes, other tensor
    images[0, 0, 0, 0] ^= 1  # an in-place change bumps the version: hashed again
    assert data_identity(copy)["sha256"] != before
