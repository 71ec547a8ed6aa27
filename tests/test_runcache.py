"""The run cache reuses a finished run only when every setting matches; profiles check values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import dihkit.runs.pipeline as pipeline
from dihkit.data.datasets import load_dataset, per_class_subset
from dihkit.errors import ConfigError
from dihkit.methods.base import BuildContext
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.models import build_model
from dihkit.runs.cache import cached_run
from dihkit.runs.pipeline import distill_identity
from dihkit.runs.profiles import PROFILES, resolve
from dihkit.runs.results import run_record
from dihkit.studies.capacity import CAPACITY_LADDERS
from dihkit.teachers.loading import load_teacher
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.identity import identity_digest


def test_a_finished_run_is_reused_and_a_changed_setting_is_a_new_run(tmp_path, monkeypatch):
    calls = []
    real = pipeline.distill

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "distill", counting)
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    first = cached_run(
        "kd", teacher="resnet14", student="resnet8", config=config, train_per_class=5,
        options={"tau": 4.0}, root=tmp_path,
    )  # fmt: skip
    again = cached_run(
        "kd", teacher="resnet14", student="resnet8", config=config, train_per_class=5,
        options={"tau": 4.0, "alpha": 0.1}, root=tmp_path,  # alpha 0.1 is kd's default
    )  # fmt: skip
    assert calls == ["kd"]
    assert again.run_dir == first.run_dir and again.test_acc_best == first.test_acc_best
    assert first.options == {"tau": 4.0, "alpha": 0.1, "kd_weighting": "convex"}
    assert len(first.history) == 1 and first.student_params == 77_754
    other = cached_run(
        "kd", teacher="resnet14", student="resnet8", config=config, train_per_class=5,
        options={"tau": 2.0}, root=tmp_path,
    )  # fmt: skip
    assert calls == ["kd", "kd"] and other.run_dir != first.run_dir
    identity = json.loads((tmp_path / first.run_dir.split("/")[-1] / "identity.json").read_text())
    assert identity["teacher_sha256"] and identity["options"] == {
        "alpha": 0.1,
        "tau": 4.0,
        "kd_weighting": "convex",
    }


def test_the_folder_digest_is_the_identity_fit_records(tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    run = cached_run(
        "kd", teacher="resnet14", student="resnet8", config=config, train_per_class=5,
        root=tmp_path,
    )  # fmt: skip
    folder = tmp_path / run.run_dir.split("/")[-1]
    recorded = json.loads((folder / "summary.json").read_text())["identity"]
    assert json.loads((folder / "identity.json").read_text()) == recorded
    assert load_checkpoint(folder / "last.pt")["identity"] == recorded
    assert folder.name.endswith(identity_digest(recorded))


def test_identity_covers_teacher_data_and_training_but_not_the_device(tiny):
    def digest(teacher="resnet14", data=tiny, config=None):
        config = config or TrainConfig(epochs=2)
        return identity_digest(distill_identity("kd", teacher, "resnet8", data, config, {}))

    fewer = dataclasses.replace(tiny, train=per_class_subset(tiny.train, 20))
    base = digest()
    for changed in (digest(teacher="resnet20"), digest(data=fewer), digest(config=TrainConfig())):
        assert changed != base
    neutral = TrainConfig(epochs=2, device="cpu", eval_batch_size=10, compile=True)
    assert digest(config=neutral) == base


def _counting(monkeypatch) -> list[dict]:
    calls = []
    real = pipeline.distill

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "distill", counting)
    return calls


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize(
    "damaged", ["summary.json", "history.json", "identity.json", "assistant/history.json"]
)
def test_a_damaged_run_file_means_the_run_is_resumed_not_a_traceback(
    tmp_path, monkeypatch, damaged
):
    calls = _counting(monkeypatch)
    settings = dict(
        teacher="resnet14", student="resnet8", train_per_class=5, root=tmp_path,
        config=TrainConfig(epochs=1, batch_size=64, device="cpu"),
        options={"assistant": "resnet8"},
    )  # fmt: skip
    first = cached_run("takd", **settings)
    folder = tmp_path / first.run_dir.split("/")[-1]
    last = (folder / "last.pt").stat().st_mtime_ns
    _truncate(folder / damaged)
    again = cached_run("takd", **settings)
    assert len(calls) == 2  # run again: resumed from last.pt, which holds the finished epoch
    assert (folder / "last.pt").stat().st_mtime_ns == last
    assert again.run_dir == first.run_dir and again.test_acc_best == first.test_acc_best
    assert again.history == first.history and again.seconds == first.seconds
    for name in ("summary.json", "history.json", "identity.json", "assistant/history.json"):
        json.loads((folder / name).read_text())
    assert cached_run("takd", **settings).test_acc_best == first.test_acc_best
    assert len(calls) == 2  # whole again: read back


def test_takd_with_an_assistant_seed_trains_one_assistant_that_every_student_seed_shares(
    tmp_path,
):
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    options = {"assistant": "resnet8", "assistant_seed": 0}
    settings = dict(teacher="resnet14", student="resnet8", train_per_class=5, options=options)
    first = cached_run("takd", config=config, root=tmp_path / "cache", **settings)
    (stage,) = (tmp_path / "cache" / "stages").iterdir()
    trained = (stage / "last.pt").stat().st_mtime_ns
    second = cached_run(
        "takd", config=dataclasses.replace(config, seed=1), root=tmp_path / "cache", **settings
    )
    assert [p.name for p in (tmp_path / "cache" / "stages").iterdir()] == [stage.name]
    assert (stage / "last.pt").stat().st_mtime_ns == trained  # the second run trained nothing
    stage_seconds = sum(row["seconds"] for row in json.loads((stage / "history.json").read_text()))
    one, two = run_record(first), run_record(second)
    assert one["stage_seconds"] == {"assistant": pytest.approx(stage_seconds)}
    assert two["stage_seconds"] == {"assistant": 0.0}
    assert one["seconds"] == pytest.approx(first.seconds + stage_seconds)
    assert two["seconds"] == pytest.approx(second.seconds)
    assert one["shared_stages"] == two["shared_stages"] == {"assistant": str(stage)}
    assert not (Path(first.run_dir) / "assistant").exists()
    # the same assistant as TAKD trains without a run cache (into the run folder, seed 0)
    data = load_dataset("fmnist-mini", train_per_class=5)
    pipeline.distill(
        "takd", "resnet14", "resnet8", data, dataclasses.replace(config, seed=1), options,
        out_dir=tmp_path / "plain", progress=False,
    )  # fmt: skip
    shared = load_checkpoint(stage / "best.pt")["model"]["state_dict"]
    plain = load_checkpoint(tmp_path / "plain" / "assistant" / "best.pt")["model"]["state_dict"]
    assert shared.keys() == plain.keys()
    assert all(torch.equal(shared[k], plain[k]) for k in shared)
    # another assistant seed is another assistant
    cached_run(
        "takd", config=config, root=tmp_path / "cache",
        **{**settings, "options": {**options, "assistant_seed": 1}},
    )  # fmt: skip
    assert len(list((tmp_path / "cache" / "stages").iterdir())) == 2


def test_a_resumed_run_keeps_the_seconds_it_spent_on_a_shared_stage(tmp_path):
    data = load_dataset("fmnist-mini", train_per_class=5)
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    teacher = load_teacher("resnet14").model

    def context(out: str) -> BuildContext:
        student = build_model("resnet8", 10, 1)
        return BuildContext(
            student, None, data, config, out_dir=tmp_path / out, progress=False,
            stage_root=tmp_path / "stages",
        )  # fmt: skip

    def stage(ctx: BuildContext) -> dict:
        torch.manual_seed(0)
        leg = KnowledgeDistillation(build_model("resnet8", 10, 1), teacher)
        ctx.run_stage("assistant", leg, config, shared=True)
        return json.loads((ctx.out_dir / "assistant.shared.json").read_text())

    first = context("run")
    trained = stage(first)
    assert trained["seconds"] > 0 and Path(trained["folder"]).parent == tmp_path / "stages"
    assert stage(first) == trained  # the same run built again (a resume): nothing lost
    assert stage(context("other"))["seconds"] == 0.0  # another run reuses the stage


def test_a_run_with_a_damaged_checkpoint_starts_again_from_scratch(tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    settings = dict(
        teacher="resnet14", student="resnet8", train_per_class=5, root=tmp_path,
        config=TrainConfig(epochs=1, batch_size=64, device="cpu"),
    )  # fmt: skip
    first = cached_run("kd", **settings)
    folder = tmp_path / first.run_dir.split("/")[-1]
    _truncate(folder / "summary.json")
    _truncate(folder / "best.pt")  # resuming would need it: the run cannot continue
    again = cached_run("kd", **settings)
    assert len(calls) == 2
    assert again.test_acc_best == first.test_acc_best  # the same seed: the same run
    assert load_checkpoint(folder / "best.pt")["epoch"] == 1
    assert not list(folder.glob(".*.tmp"))


def test_profiles_fill_defaults_and_reject_bad_values(monkeypatch):
    monkeypatch.delenv("DIHKIT_PROFILE", raising=False)
    settings = resolve("classroom", epochs=None, seed=3)
    classroom = PROFILES["classroom"]
    assert settings.epochs == classroom.epochs and settings.seeds == (3,)
    assert settings.teacher == classroom.teacher == CAPACITY_LADDERS["classroom"][-1]
    assert classroom.dataset == "cifar10-mini" and len(classroom.seeds) >= 5
    with pytest.raises(ConfigError, match="profile = 'lecture'.*smoke"):
        resolve("lecture")
    with pytest.raises(ConfigError, match=r"epochs = 0 must be an integer in \[1, inf\)"):
        resolve("smoke", epochs=0)
    with pytest.raises(ConfigError, match="repeats a seed"):
        resolve("smoke", seeds=[0, 0])
    with pytest.raises(ConfigError, match="teacher = 'resnet999'"):
        resolve("smoke", teacher="resnet999")
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve("smoke", epoch=3)
    monkeypatch.setenv("DIHKIT_PROFILE", "smoke")
    assert resolve("classroom").profile == "smoke"
