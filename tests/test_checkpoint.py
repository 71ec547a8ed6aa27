"""Checkpoints are written atomically, read safely and refuse to load into the wrong model."""

from __future__ import annotations

import pickle

import pytest
import torch

import dihkit.training.checkpoint as checkpoint_module
from dihkit.models import build_model
from dihkit.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_model_state,
    model_entry,
    save_checkpoint,
)


def test_round_trip_restores_identical_weights(tmp_path):
    model = build_model("resnet8", 10, 1)
    save_checkpoint(tmp_path / "m.pt", {"model": model_entry(model)})
    loaded, payload = load_model(tmp_path / "m.pt")
    assert payload["format"] == "dihkit-checkpoint"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"model": model_entry(build_model("resnet8", 10, 1))})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


class Arbitrary:
    pass


def test_checkpoints_with_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "dihkit-checkpoint", "version": 1, "x": Arbitrary()}, path)
    with pytest.raises(CheckpointError, match="crafted or foreign"):
        load_checkpoint(path)


def test_foreign_pytorch_file_is_not_a_dihkit_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(build_model("resnet8", 10, 1).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a dihkit checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")


def test_loading_into_another_architecture_is_a_clear_error():
    entry = model_entry(build_model("resnet8", 10, 1))
    with pytest.raises(CheckpointError, match="arch='resnet8'.*arch='resnet14'"):
        load_model_state(build_model("resnet14", 10, 1), entry)


def test_loading_into_another_class_count_is_a_clear_error():
    entry = model_entry(build_model("resnet8", 10, 1))
    with pytest.raises(CheckpointError, match="num_classes=10.*num_classes=100"):
        load_model_state(build_model("resnet8", 100, 1), entry)


def test_load_model_checks_the_requested_shape(tmp_path):
    save_checkpoint(tmp_path / "m.pt", {"model": model_entry(build_model("resnet8", 10, 1))})
    with pytest.raises(CheckpointError, match="in_channels=1, not the requested 3"):
        load_model(tmp_path / "m.pt", in_channels=3)


def test_pickle_protocol_errors_are_wrapped(tmp_path):
    path = tmp_path / "p.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_checkpoint_files_get_ordinary_permissions(tmp_path):
    import os

    path = save_checkpoint(tmp_path / "m.pt", {"epoch": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
