"""The bundled teachers: present, intact, and as accurate as their manifest says."""

from __future__ import annotations

import shutil

import pytest

import dihkit.teachers.bundled as teachers
from dihkit.data.datasets import load_dataset
from dihkit.files import sha256_of
from dihkit.nn.taps import default_positions
from dihkit.runs.pipeline import cohort_accuracy, load_teacher
from dihkit.studies.capacity import CAPACITY_LADDERS, model_parameters
from dihkit.teachers.bundled import bundled_path, read_manifest, teacher_names
from dihkit.training.checkpoint import CheckpointError

MANIFEST = read_manifest()


def test_the_bundle_holds_at_least_resnet14_20_and_56():
    assert {"resnet14", "resnet20", "resnet56"} <= set(teacher_names())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_bundled_teacher_is_small_and_matches_its_sha256(name):
    path = bundled_path(name)
    assert sha256_of(path) == MANIFEST[name]["sha256"]
    assert path.stat().st_size < 20 * 2**20  # vgg8-c10, the largest, is 17.6 MB
    assert MANIFEST[name]["command"].startswith("dihkit train --model")


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_bundled_teacher_reproduces_its_manifest_accuracy(name, fmnist):
    entry = MANIFEST[name]
    teacher = load_teacher(name)
    assert teacher.model.arch == entry["arch"]
    data = fmnist if entry["dataset"] == "fmnist-mini" else load_dataset(entry["dataset"])
    accuracy = cohort_accuracy(teacher.cohort, data, device="cpu")
    assert list(accuracy) == entry["members"]
    one_image = 1 / len(data.test)
    for member, val, test in zip(
        entry["members"], entry["member_val_acc"], entry["member_test_acc"], strict=True
    ):
        assert accuracy[member]["val"] == pytest.approx(val, abs=one_image), member
        assert accuracy[member]["test"] == pytest.approx(test, abs=one_image), member
    for kind in set(teacher.head_sets) - {teacher.cohort.spec["kind"]}:  # MHKD's conv heads
        other = cohort_accuracy(teacher.head_set(kind), data, device="cpu")
        heads = [a["test"] for member, a in other.items() if member != "teacher"]
        assert heads == pytest.approx(entry[f"{kind}_head_test_acc"], abs=one_image), kind
    assert entry["test_acc"] > (0.8 if entry["dataset"] == "fmnist-mini" else 0.6)


def test_the_classroom_ladder_grows_in_size_spans_8_points_and_carries_both_head_sets():
    ladder = CAPACITY_LADDERS["classroom"]
    assert len(ladder) >= 4
    entries = [MANIFEST[name] for name in ladder]
    assert {e["dataset"] for e in entries} == {"cifar10-mini"}
    sizes = [model_parameters(e["arch"], "cifar10-mini") for e in entries]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    accuracies = [e["test_acc"] for e in entries]
    assert max(accuracies) - min(accuracies) >= 0.08
    for name in ladder:
        teacher = load_teacher(name)
        assert teacher.cohort.spec["kind"] == "linear"  # DIH's heads are the primary set
        conv = teacher.head_set("conv", default_positions(teacher.model)[:3], 32)
        assert conv is not None, f"{name} has no MHKD conv heads of width 32"
        assert len(MANIFEST[name]["conv_head_test_acc"]) == 3


def test_a_tampered_teacher_is_refused(tmp_path, monkeypatch):
    name = sorted(MANIFEST)[0]
    shutil.copytree(teachers.TEACHER_DIR, tmp_path / "teachers")
    target = tmp_path / "teachers" / MANIFEST[name]["file"]
    data = bytearray(target.read_bytes())
    data[-100] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(teachers, "TEACHER_DIR", tmp_path / "teachers")
    monkeypatch.setattr(teachers, "MANIFEST", tmp_path / "teachers" / "manifest.json")
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        bundled_path(name)


def test_export_keeps_weights_only_and_records_sha_and_command(tmp_path):
    from dihkit.teachers.bundled import export_teacher
    from dihkit.training.checkpoint import load_checkpoint

    source = bundled_path("resnet14")
    entry = export_teacher(
        source,
        "copy",
        command="dihkit train ...",
        accuracies={"test_acc": 0.5},
        teacher_dir=tmp_path,
    )
    assert entry["sha256"] == sha256_of(tmp_path / "copy.pt")
    assert entry["command"] == "dihkit train ..." and entry["arch"] == "resnet14"
    assert read_manifest(tmp_path / "manifest.json")["copy"] == entry
    payload = load_checkpoint(tmp_path / "copy.pt")
    assert "optimizer" not in payload and "rng" not in payload
    assert {"model", "heads"} <= set(payload)


def test_export_keeps_every_head_set(tmp_path):
    from dihkit.teachers.bundled import export_teacher

    name = CAPACITY_LADDERS["classroom"][-1]
    export_teacher(bundled_path(name), "copy", command="x", accuracies={}, teacher_dir=tmp_path)
    copy = load_teacher(tmp_path / "copy.pt")
    assert set(copy.head_sets) == set(load_teacher(name).head_sets) == {"linear", "conv"}
