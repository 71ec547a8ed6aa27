"""Every method runs end to end from a bundled teacher; the distiller interface holds."""

from __future__ import annotations

import pytest
import torch

import dihkit.runs.pipeline as pipeline
from dihkit.cli.main import main
from dihkit.methods import method_names
from dihkit.models import build_model
from dihkit.runs.pipeline import distill, load_teacher
from dihkit.training.checkpoint import CheckpointError, load_model, model_entry, save_checkpoint
from dihkit.training.config import TrainConfig

TEACHER = "resnet14"  # the smallest bundled teacher
EXPECTED_TERMS = {
    "ce": [{"ce"}],
    "kd": [{"kd", "ce"}],
    "dih": [{"dih", "ce"}],
    "dih-ensemble": [{"kd_ensemble", "ce"}],
    "fitnets": [{"kd", "ce"}],  # the hint stage is its own run, in OUT/hint
    "dml": [{"ce", "kl", "peer_ce", "peer_kl"}],
    "takd": [{"kd", "ce"}],
    "mhkd": [
        {f"head{j}_{t}" for j in (1, 2, 3) for t in ("kl", "ce")}
        | {f"teacher_head{j}_ce" for j in (1, 2, 3)}
        | {"kd", "ce"}
    ],
    "dsn": [{"ce", "exit1_ce", "exit2_ce"}],
    "byot": [{"ce"} | {f"exit{j}_{t}" for j in (1, 2) for t in ("ce", "kd", "l2")}],
    "dskd": [{"ce", "kd_last", "kd_shallow", "fea_last", "fea_shallow"}],
    "dkd": [{"ce", "tckd", "nckd"}],
    "kd_decomposition": [{"kd", "ce"}],
    "cd": [{"ce", "gkd", "cd"}],
    "feed": [{"ce", "feed"}],
    "nd": [{"kd", "ce"}],  # the main run (the classifier on the assembled blocks); blocks: stages
}
OPTIONS = {
    "fitnets": {"hint_epochs": 1},
    "takd": {"assistant": "resnet8"},
    "dml": {"peer": "resnet8"},
    "mhkd": {"head_width": 16},
    "nd": {"block_epochs": 1},
}


def test_every_method_has_expectations():
    assert set(EXPECTED_TERMS) == set(method_names())


@pytest.mark.parametrize("method", method_names())
def test_each_method_distils_end_to_end_from_a_bundled_teacher(method, tiny, tmp_path):
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    options = OPTIONS.get(method, {})
    distiller, result = distill(
        method, TEACHER, "resnet8", tiny, config, options, out_dir=tmp_path, progress=False
    )
    terms = [set(r.losses) for r in result.history]
    assert terms == EXPECTED_TERMS[method] * 2
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in result.history)
    assert result.test_acc_best > 0.1  # above chance on 200 test images after 2 tiny epochs
    assert (tmp_path / "best.pt").is_file()
    if method == "takd":
        assert (tmp_path / "assistant" / "best.pt").is_file()
    if method == "fitnets":
        assert (tmp_path / "hint" / "best.pt").is_file()
    # the checkpoint holds the plain student, whatever trained beside it
    _, payload = load_model(tmp_path / "best.pt")
    reference = build_model("resnet8", 10, 1).state_dict()
    assert set(payload["model"]["state_dict"]) == set(reference)


def test_teacher_is_untouched_by_distillation(tiny, monkeypatch):
    teacher = load_teacher(TEACHER)
    before = {k: v.clone() for k, v in teacher.cohort.state_dict().items()}
    monkeypatch.setattr(pipeline, "load_teacher", lambda source: teacher)
    config = TrainConfig(epochs=1, device="cpu")
    distill("dih", TEACHER, "resnet8", tiny, config, progress=False)
    for key, value in teacher.cohort.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_same_seed_gives_every_method_the_same_initial_student(tiny, monkeypatch):
    initial = {}

    def capture(distiller, *args, **kwargs):
        initial[distiller.method] = {
            k: v.clone() for k, v in distiller.student.state_dict().items()
        }
        return None

    monkeypatch.setattr(pipeline, "fit", capture)
    for method in ("ce", "kd", "dih", "dih-ensemble", "dml", "mhkd", "dsn", "byot", "dskd"):
        distill(method, TEACHER, "resnet8", tiny, TrainConfig(epochs=1, seed=7), progress=False)
    reference = initial.pop("ce")
    for method, state in initial.items():
        for key in reference:
            assert torch.equal(reference[key], state[key]), (method, key)


def test_dih_needs_a_teacher_with_heads(tiny, tmp_path):
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, {"model": model_entry(build_model("resnet8", 10, 1))})
    with pytest.raises(CheckpointError, match="needs a teacher with trained heads"):
        distill("dih", plain, "resnet8", tiny, TrainConfig(epochs=1), progress=False)


def test_unknown_method_lists_the_choices(tiny):
    with pytest.raises(ValueError, match="'hkd'.*ce, kd, dih"):
        distill("hkd", TEACHER, "resnet8", tiny, TrainConfig(epochs=1), progress=False)


def test_takd_without_an_assistant_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="--assistant"):
        distill("takd", TEACHER, "resnet8", tiny, TrainConfig(epochs=1), progress=False)


@pytest.mark.parametrize(("option", "value"), [("tau", 0.0), ("alpha", 1.5)])
def test_bad_tau_or_alpha_is_rejected_naming_method_and_option(option, value, tiny):
    with pytest.raises(ValueError, match=f"method 'kd': option {option}"):
        distill("kd", TEACHER, "resnet8", tiny, TrainConfig(epochs=1), {option: value})


def test_distill_cli_prints_best_and_last_test_accuracy(capsys, tmp_path):
    code = main(
        [
            "distill",
            "--method",
            "kd",
            "--teacher",
            TEACHER,
            "--student",
            "resnet8",
            "--epochs",
            "1",
            "--train-per-class",
            "20",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "best epoch 1" in out and "last epoch test" in out


def test_resuming_a_folder_of_another_method_is_refused(capsys, tiny, tmp_path):
    config = TrainConfig(epochs=1, device="cpu")
    distill("kd", TEACHER, "resnet8", tiny, config, out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="method: 'kd' -> 'dih'"):
        distill("dih", TEACHER, "resnet8", tiny, config, out_dir=tmp_path, resume=True)


def test_unknown_bundled_teacher_lists_the_bundle(capsys):
    code = main(["eval", "resnet999"])
    assert code == 2
    err = capsys.readouterr().err
    assert "resnet999" in err and "resnet56" in err
