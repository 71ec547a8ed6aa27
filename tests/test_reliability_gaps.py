"""Reliability gaps from an audit: run-folder files go through the atomic writer, a damaged DSKD
weight record or shared-stage record is one clear error (or a re-run), tables say "last epoch"
when there is no validation split, and a damaged checkpoint in a ``reproduce`` folder restarts
that job instead of asking for an ``--overwrite`` that ``reproduce`` does not take."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dihkit import files
from dihkit.cli.main import main
from dihkit.errors import CheckpointError
from dihkit.files import UnreadableFileError, write_json_atomic
from dihkit.reproduce import Runner, load_experiment
from dihkit.reproduce.plan import resolve_profile
from dihkit.runs.cache import IDENTITY_FILE, finished_run
from dihkit.runs.compare import RunRecord, comparison_table
from dihkit.runs.results import run_record
from dihkit.studies.dskd_weights import load_weight_records
from dihkit.studies.seeds import summarise_runs, summary_markdown
from dihkit.training.checkpoint import save_checkpoint

PACKAGE = Path(__file__).resolve().parent.parent / "dihkit"
TINY = ["--train-per-class", "10", "--device", "cpu", "--quiet"]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --- 1. run-folder files through the atomic writer -------------------------------------------


def test_no_module_writes_files_with_plain_write_text_or_json_dump():
    """Every file the kit leaves behind goes through dihkit.files (the book's notebook copies,
    written by papermill and nbformat, are out of scope)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "book" or path.name == "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                owner = node.func.value
                plain_dump = name == "dump" and getattr(owner, "id", None) == "json"
                if name in ("write_text", "write_bytes") or plain_dump:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert not found, found


def test_compare_without_validation_writes_its_table_atomically_and_says_last_epoch(
    capsys, tmp_path, monkeypatch
):
    written: list[str] = []
    real = files.write_atomic

    def spy(path, write):
        written.append(Path(path).name)
        return real(path, write)

    monkeypatch.setattr(files, "write_atomic", spy)
    out = tmp_path / "cmp"
    argv = ["compare", "--methods", "ce", "--seeds", "0", "--student", "resnet8"]
    argv += ["--val-fraction", "0", "--epochs", "2", *TINY, "--out", str(out)]
    code, stdout, err = _cli(capsys, *argv)
    assert code == 0, err
    assert "table.md" in written
    table = (out / "table.md").read_text()
    assert "| method | n | test % (last epoch) | test % (last epoch) |" in table
    assert "val-selected" not in table and "val-selected" not in stdout
    assert json.loads((out / "ce" / "seed-0" / "summary.json").read_text())["best_epoch"] == 2


def test_train_without_validation_keeps_the_last_of_two_epochs(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet8", "--val-fraction", "0", "--epochs", "2", *TINY]
    code, stdout, err = _cli(capsys, *argv, "--out", str(out))
    assert code == 0, err
    assert "no validation split, last epoch 2 kept: test " in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == 2 and summary["best_val_acc"] is None


# --- 2. a damaged DSKD weight record ---------------------------------------------------------


def test_a_damaged_weight_record_is_one_clear_error_naming_file_and_fix(tmp_path):
    import torch

    record = tmp_path / "records" / "epoch-001.pt"
    weights = torch.full((4, 2), 0.5)
    save_checkpoint(record, {"kd_weights": weights, "fea_weights": weights})
    assert torch.equal(load_weight_records(tmp_path)[1]["kd_weights"], weights)
    _truncate(record)
    with pytest.raises(CheckpointError) as caught:
        load_weight_records(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(record) in message
    assert "delete the run folder" in message and "record_weights=True" in message
    assert "--overwrite" not in message


# --- 3. a damaged shared-stage record or stage history ---------------------------------------


def _finished_folder(tmp_path: Path) -> tuple[Path, dict]:
    run_dir = tmp_path / "takd-resnet8-seed0-abc"
    identity = {"method": "takd", "seed": 0}
    write_json_atomic(run_dir / IDENTITY_FILE, identity)
    summary = {"identity": identity, "test_acc_best": 0.5, "test_acc_last": 0.5}
    write_json_atomic(run_dir / "summary.json", {**summary, "best_val_acc": 0.5, "best_epoch": 1})
    write_json_atomic(run_dir / "history.json", [{"epoch": 1, "seconds": 2.0}])
    record = {"stage": "assistant", "folder": str(tmp_path / "stages" / "a"), "seconds": 3.0}
    write_json_atomic(run_dir / "assistant.shared.json", record)
    return run_dir, identity


def _summary(run_dir: Path) -> dict:
    return {"method": "takd", "seed": 0, "seconds": 2.0, "run_dir": str(run_dir)}


@pytest.mark.parametrize("damage", ["{not json", '{"stage": "assistant"}', "[]"])
def test_a_damaged_shared_stage_record_means_not_finished(tmp_path, damage):
    run_dir, identity = _finished_folder(tmp_path)
    assert finished_run(run_dir, identity) is not None
    assert run_record(_summary(run_dir))["stage_seconds"] == {"assistant": 3.0}
    (run_dir / "assistant.shared.json").write_text(damage)
    assert finished_run(run_dir, identity) is None  # cached_run trains (resumes) it again
    with pytest.raises(UnreadableFileError) as caught:
        run_record(_summary(run_dir))
    message = str(caught.value)
    assert "\n" not in message and str(run_dir / "assistant.shared.json") in message
    assert f"delete the run folder {run_dir}" in message


def test_a_damaged_stage_history_is_one_clear_error_in_run_record(tmp_path):
    run_dir, _ = _finished_folder(tmp_path)
    history = run_dir / "assistant" / "history.json"
    write_json_atomic(history, [{"epoch": 1, "seconds": 1.0}])
    assert run_record(_summary(run_dir))["stage_seconds"]["assistant"] == 3.0  # the marker's
    for damage in ("[{", '[{"epoch": 1}]'):
        history.write_text(damage)
        with pytest.raises(UnreadableFileError, match="delete the run folder") as caught:
            run_record(_summary(run_dir))
        assert str(history) in str(caught.value)


# --- 4. "test % (last epoch)" without a validation split -------------------------------------


def _record(seed: int, validated: bool) -> RunRecord:
    return RunRecord("ce", seed, 0.5, 0.5, 2, 1.0, val_selected=validated)


def test_the_comparison_table_heads_the_kept_epoch_by_how_it_was_chosen():
    with_val = comparison_table([_record(0, True), _record(1, True)]).splitlines()[0]
    assert with_val.startswith("| method | n | test % (val-selected) | test % (last epoch) |")
    without = comparison_table([_record(0, False), _record(1, False)]).splitlines()[0]
    assert without.startswith("| method | n | test % (last epoch) | test % (last epoch) |")
    assert "val-selected" not in without


def _run(seed: int, val: float | None) -> dict:
    return {
        "method": "ce", "seed": seed, "teacher": None, "student": "resnet8",
        "test_acc_best": 0.5, "test_acc_last": 0.5, "best_val_acc": val,
        "seconds": 1.0, "student_params": 10,
    }  # fmt: skip


def test_the_seed_table_heads_the_kept_epoch_by_how_it_was_chosen():
    with_val = summary_markdown(summarise_runs([_run(0, 0.4), _run(1, 0.5)]))
    assert with_val.splitlines()[0].startswith("| run | n | test % (val-selected) |")
    without = summary_markdown(summarise_runs([_run(0, None), _run(1, None)]))
    assert without.splitlines()[0].startswith("| run | n | test % (last epoch) |")
    assert "val-selected" not in without
    legacy = [{k: v for k, v in _run(0, None).items() if k != "best_val_acc"}]  # no such key
    assert "test % (val-selected)" in summary_markdown(summarise_runs(legacy))


# --- 5. a damaged checkpoint in a reproduce folder -------------------------------------------

EXPERIMENT = """\
title = "A tiny experiment"
source = "a paper, Table 9"
reported = "mean of 3 runs"

[recipe]
dataset = "cifar100"
epochs = 200

[methods.kd]

[[pairs]]
teacher = "resnet8"
student = "resnet8"
"""


def _runner(tmp_path: Path, lines: list[str]) -> Runner:
    path = tmp_path / "tiny.toml"
    path.write_text(EXPERIMENT)
    experiment = load_experiment(path)
    return Runner(
        experiment,
        resolve_profile(experiment, "smoke"),
        tmp_path / "out",
        progress=False,
        log=lines.append,
    )


def _fake_train(trained: list[str]):
    def train(self, job, folder):
        trained.append(job.folder)
        assert not (folder / "last.pt").exists() or job.kind != "teacher"
        save_checkpoint(folder / "best.pt", {"epoch": 1})  # what later jobs read
        return SimpleNamespace(
            test_acc_best=0.5, test_acc_last=0.5, best_epoch=1, best_val_acc=0.5,
            test_member_acc_best=[], history=[],
        )  # fmt: skip

    return train


def test_a_truncated_last_pt_restarts_that_job_from_scratch(tmp_path, monkeypatch):
    out = tmp_path / "out"
    last = out / "teachers" / "resnet8" / "last.pt"
    save_checkpoint(last, {"epoch": 1})
    _truncate(last)
    trained: list[str] = []
    monkeypatch.setattr(Runner, "_train", _fake_train(trained))
    lines: list[str] = []
    _runner(tmp_path, lines).run()
    assert trained[0] == "teachers/resnet8"
    said = [line for line in lines if "damaged" in line]
    assert len(said) == 1 and str(last) in said[0] and "from scratch" in said[0]
    assert not any("--overwrite" in line for line in lines)


def test_a_real_teacher_job_with_a_truncated_last_pt_trains_from_scratch(tmp_path):
    lines: list[str] = []
    runner = _runner(tmp_path, lines)
    (job,) = [job for job in runner.jobs if job.kind == "teacher"]
    folder = tmp_path / "out" / job.folder
    save_checkpoint(folder / "last.pt", {"epoch": 1})
    _truncate(folder / "last.pt")
    runner.jobs = [job]
    runner.run()  # before the fix: CheckpointError "... (with --overwrite) ..."
    assert json.loads((folder / "reproduce.json").read_text())["result"]["epochs_run"] >= 1


def test_a_damaged_teacher_best_pt_retrains_the_teacher_only(tmp_path, monkeypatch):
    trained: list[str] = []
    monkeypatch.setattr(Runner, "_train", _fake_train(trained))
    _runner(tmp_path, []).run()
    first = list(trained)
    assert "teachers/resnet8" in first and len(first) >= 2
    trained.clear()
    _runner(tmp_path, []).run()
    assert trained == []  # everything finished and intact: reused
    best = tmp_path / "out" / "teachers" / "resnet8" / "best.pt"
    _truncate(best)
    lines: list[str] = []
    _runner(tmp_path, lines).run()
    assert trained == ["teachers/resnet8"]
    assert any(str(best) in line and "from scratch" in line for line in lines)
