"""The training loop: learning, histories, checkpoints and exact resumption."""

from __future__ import annotations

import pytest
import torch

import dihkit.training.loop as train_module
from dihkit.methods.ce import CrossEntropy
from dihkit.models import build_model
from dihkit.runs.pipeline import train_model
from dihkit.training.checkpoint import load_checkpoint, load_model
from dihkit.training.config import TrainConfig
from dihkit.training.loop import fit


def test_short_training_run_on_fmnist_mini_is_far_above_chance(fmnist, tmp_path):
    config = TrainConfig(epochs=2, batch_size=128, device="cpu")
    _, result = train_model("resnet8", fmnist, config, out_dir=tmp_path, progress=False)
    assert result.test_acc_best > 0.6  # chance is 0.10; two epochs reach about 0.75
    assert [r.epoch for r in result.history] == [1, 2]
    assert all(r.images_per_s > 0 and r.seconds > 0 for r in result.history)
    assert result.history[1].train_loss < result.history[0].train_loss


def test_fit_writes_best_last_history_and_summary(tiny, tmp_path):
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    train_model("resnet8", tiny, config, out_dir=tmp_path, progress=False)
    assert {p.name for p in tmp_path.iterdir()} == {
        "best.pt",
        "last.pt",
        "history.json",
        "summary.json",
    }
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2
    assert last["model"]["arch"] == "resnet8"
    assert last["dataset"] == "fmnist-mini"
    assert {"optimizer", "scheduler", "rng", "history", "best"} <= set(last)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == best["best"]["epoch"]
    model, _ = load_model(tmp_path / "best.pt", arch="resnet8", num_classes=10, in_channels=1)
    assert model.num_classes == 10


def test_same_seed_gives_identical_runs_on_cpu(tiny):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu", seed=3)
    first, r1 = train_model("resnet8", tiny, config, progress=False)
    second, r2 = train_model("resnet8", tiny, config, progress=False)
    assert r1.history[0].train_loss == r2.history[0].train_loss
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resumed_run_ends_exactly_where_an_uninterrupted_run_does(tiny, tmp_path, monkeypatch):
    config = TrainConfig(epochs=3, batch_size=64, device="cpu", seed=1, schedule="multistep")
    full_model, full = train_model("resnet8", tiny, config, out_dir=tmp_path / "a", progress=False)

    real_epoch = train_module._train_one_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_model("resnet8", tiny, config, out_dir=tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    monkeypatch.setattr(train_module, "_train_one_epoch", real_epoch)

    resumed_model, resumed = train_model(
        "resnet8", tiny, config, out_dir=tmp_path / "b", resume=True, progress=False
    )
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert resumed.test_acc_best == full.test_acc_best
    assert resumed.test_acc_last == full.test_acc_last
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in full.history]
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_fit_returns_validation_selected_weights(tiny):
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    model = build_model("resnet8", 10, 1)
    result = fit(CrossEntropy(model), tiny, config, progress=False)
    assert 1 <= result.best_epoch <= 2
    assert result.best_val_acc == max(r.val_acc for r in result.history)


def test_without_validation_data_the_last_epoch_is_selected(tiny, tmp_path):
    import dataclasses
    import json

    no_val = dataclasses.replace(tiny, val=tiny.val.subset(torch.arange(0)))
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    model = build_model("resnet8", 10, 1)
    result = fit(CrossEntropy(model), no_val, config, out_dir=tmp_path / "run", progress=False)
    assert result.best_epoch == 2
    assert result.best_val_acc is None  # no validation split: nothing to report
    # history.json is strict JSON: no NaN for the missing validation accuracy, a null
    text = (tmp_path / "run" / "history.json").read_text()
    rows = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in history.json"))
    assert [row["val_acc"] for row in rows] == [None, None]
    assert all(isinstance(row["train_loss"], float) for row in rows)


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("epochs", -3), ("batch_size", 0), ("lr", 0.0), ("schedule", "linear")],
)
def test_bad_training_settings_are_rejected_with_the_value(field, value):
    with pytest.raises(ValueError, match=str(value) if field != "schedule" else "linear"):
        TrainConfig(**{field: value})


def test_model_with_wrong_in_channels_for_the_data_is_a_clear_error(tiny):
    model = build_model("resnet8", 10, 3)
    with pytest.raises(ValueError, match="in_channels=3.*1 channel"):
        fit(CrossEntropy(model), tiny, TrainConfig(epochs=1, device="cpu"), progress=False)


def test_multistep_milestones_default_to_the_papers_proportions():
    assert TrainConfig(epochs=200, schedule="multistep").resolved_milestones() == [60, 120, 180]


def test_evaluate_uses_eval_mode_and_restores_the_previous_mode(tiny):
    from dihkit.training.evaluation import evaluate

    model = build_model("resnet8", 10, 1).train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    first = evaluate(model, tiny, "val")
    assert model.training  # restored
    for key, value in model.state_dict().items():  # BatchNorm statistics were not updated
        assert torch.equal(value, buffers[key]), key
    assert torch.equal(first, evaluate(model, tiny, "val"))


def test_evaluate_rejects_an_unknown_split(tiny):
    from dihkit.training.evaluation import evaluate

    with pytest.raises(ValueError, match="'dev'.*train, val, test"):
        evaluate(build_model("resnet8", 10, 1), tiny, "dev")


def test_resuming_with_other_settings_is_refused(tiny, tmp_path):
    from dihkit.training.checkpoint import CheckpointError

    train_model(
        "resnet8", tiny, TrainConfig(epochs=1, device="cpu"), out_dir=tmp_path, progress=False
    )
    with pytest.raises(CheckpointError, match="lr: 0.1 -> 0.05"):
        train_model(
            "resnet8",
            tiny,
            TrainConfig(epochs=1, lr=0.05, device="cpu"),
            out_dir=tmp_path,
            resume=True,
            progress=False,
        )
