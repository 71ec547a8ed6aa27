"""The run cache reuses a finished run only when every setting matches; profiles check values."""

from __future__ import annotations

import json

import pytest

import dihkit.runs.pipeline as pipeline
from dihkit.errors import ConfigError
from dihkit.runs.cache import cached_run, identity_digest, run_identity
from dihkit.runs.profiles import resolve
from dihkit.training.loop import TrainConfig


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
    assert first.options == {"tau": 4.0, "alpha": 0.1}
    assert len(first.history) == 1 and first.student_params == 77_754
    other = cached_run(
        "kd", teacher="resnet14", student="resnet8", config=config, train_per_class=5,
        options={"tau": 2.0}, root=tmp_path,
    )  # fmt: skip
    assert calls == ["kd", "kd"] and other.run_dir != first.run_dir
    identity = json.loads((tmp_path / first.run_dir.split("/")[-1] / "identity.json").read_text())
    assert identity["teacher_sha256"] and identity["options"] == {"alpha": 0.1, "tau": 4.0}


def test_identity_covers_teacher_data_and_training_but_not_the_device():
    config = TrainConfig(epochs=2)
    base = run_identity("kd", "resnet14", "resnet8", {"train_per_class": 5}, config, {})
    for changed in (
        run_identity("kd", "resnet20", "resnet8", {"train_per_class": 5}, config, {}),
        run_identity("kd", "resnet14", "resnet8", {"train_per_class": 6}, config, {}),
        run_identity(
            "kd", "resnet14", "resnet8", {"train_per_class": 5}, TrainConfig(epochs=3), {}
        ),
    ):
        assert identity_digest(changed) != identity_digest(base)
    same = run_identity(
        "kd", "resnet14", "resnet8", {"train_per_class": 5}, TrainConfig(epochs=2, device="cpu"), {}
    )
    assert identity_digest(same) == identity_digest(base)


def test_profiles_fill_defaults_and_reject_bad_values(monkeypatch):
    monkeypatch.delenv("DIHKIT_PROFILE", raising=False)
    settings = resolve("classroom", epochs=None, seed=3)
    assert settings.epochs == 15 and settings.seeds == (3,) and settings.teacher == "resnet56"
    with pytest.raises(ConfigError, match="profile = 'lecture'.*smoke"):
        resolve("lecture")
    with pytest.raises(ConfigError, match=r"epochs = 0 must be an integer in \[1, inf\]"):
        resolve("smoke", epochs=0)
    with pytest.raises(ConfigError, match="repeats a seed"):
        resolve("smoke", seeds=[0, 0])
    with pytest.raises(ConfigError, match="teacher = 'resnet999'"):
        resolve("smoke", teacher="resnet999")
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve("smoke", epoch=3)
    monkeypatch.setenv("DIHKIT_PROFILE", "smoke")
    assert resolve("classroom").profile == "smoke"
