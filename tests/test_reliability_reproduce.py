"""Reliability of ``reproduce``, the notebook parameters and the tour (issue 19): one experiment
and profile per ``--out``, the goodbye after SIGTERM, file-level errors without a bogus line,
strings where papermill meant lists, a failed tour notebook marked in the book, atomic manifest
writes, and a SIGKILL-then-rerun ``reproduce`` ending with an uninterrupted run's results."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_support import write_notebook

from dihkit.book.execute import NotebookError
from dihkit.cli.main import main
from dihkit.errors import ConfigError, DihkitError
from dihkit.reproduce import Runner, load_experiment
from dihkit.reproduce.plan import resolve_profile
from dihkit.runs.profiles import check_range, resolve
from dihkit.teachers import bundled

REPO = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "fault_driver.py"

TINY = """\
title = "A tiny experiment"
source = "a paper, Table 9"
reported = "mean of 3 runs"

[recipe]
dataset = "cifar100"
epochs = 200

[methods.ce]

[methods.kd]

[[pairs]]
teacher = "resnet8"
student = "resnet8"
paper = { teacher = 70.0, ce = 59.77, kd = 59.44 }

[[pairs]]
teacher = "resnet14"
student = "resnet8"
"""


def _tiny(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def _runner(name, out: Path, profile: str = "smoke", pairs=None) -> Runner:
    experiment = load_experiment(name)
    return Runner(
        experiment,
        resolve_profile(experiment, profile),
        out,
        pairs=pairs,
        progress=False,
        log=lambda line: None,
    )


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# 1. an --out folder belongs to one experiment and one profile


def test_an_out_folder_refuses_another_experiment_or_profile_before_training(tmp_path):
    out = tmp_path / "X"
    _runner("dih-table4", out, pairs=["resnet14-resnet8"]).claim_out()
    record = json.loads((out / "experiment.json").read_text())
    assert (record["experiment"], record["profile"]) == ("dih-table4", "smoke")
    assert record["pairs"] == ["resnet14-resnet8"]

    with pytest.raises(ConfigError) as info:
        _runner("dih-table2-cifar100", out, pairs=["resnet110-resnet8"]).claim_out()
    message = str(info.value)
    assert "dih-table4 (profile smoke)" in message and "dih-table2-cifar100" in message
    assert "another --out" in message
    with pytest.raises(ConfigError, match=r"dih-table4 \(profile smoke\).*profile classroom"):
        _runner("dih-table4", out, profile="classroom").claim_out()
    assert json.loads((out / "experiment.json").read_text()) == record  # left as it was

    # another pair of the same experiment and profile is welcome; the record keeps both
    _runner("dih-table4", out, pairs=["resnet8-resnet8"]).claim_out()
    pairs = json.loads((out / "experiment.json").read_text())["pairs"]
    assert pairs == ["resnet14-resnet8", "resnet8-resnet8"]  # in the experiment's order


def test_a_folder_from_before_the_record_is_known_by_its_results(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.json").write_text(
        json.dumps({"experiment": "dih-table4", "profile": "smoke", "runs": []})
    )
    with pytest.raises(ConfigError, match="holds the results of experiment dih-table4"):
        _runner("dih-table3", out).claim_out()


def test_the_cli_refuses_a_second_experiment_in_one_out_with_one_line(tmp_path, capsys):
    out = tmp_path / "X"
    _runner("dih-table4", out, pairs=["resnet14-resnet8"]).claim_out()
    argv = ["reproduce", "dih-table2-cifar100", "--profile", "smoke"]
    code = main([*argv, "--pairs", "resnet110-resnet8", "--out", str(out), "--quiet"])
    assert code == 2
    line = _one_line(capsys)
    assert line.startswith("dihkit: error: ") and "another --out" in line
    assert "dih-table4 (profile smoke)" in line and "dih-table2-cifar100 (profile smoke)" in line
    assert sorted(p.name for p in out.iterdir()) == ["experiment.json"]  # nothing trained


def _fake_train(self, job, folder):
    """A finished run without training: its accuracy encodes the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    value = (sum(map(ord, job.folder)) % 100) / 100
    return SimpleNamespace(
        test_acc_best=value,
        test_acc_last=value,
        best_epoch=1,
        best_val_acc=value,
        test_member_acc_best=[],
        history=[],
    )


def test_runs_of_other_pairs_into_one_folder_add_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(Runner, "_train", _fake_train)
    path, out = _tiny(tmp_path), tmp_path / "out"
    _runner(path, out, pairs=["resnet8-resnet8"]).run()
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [r["model"] for r in rows if r["kind"] == "teacher"] == ["resnet8"]
    _runner(path, out, pairs=["resnet14-resnet8"]).run()
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [r["model"] for r in rows if r["kind"] == "teacher"] == ["resnet8", "resnet14"]
    students = {(r["teacher"], r["column"]) for r in rows if r["kind"] == "student"}
    assert students == {("resnet8", "kd"), ("resnet14", "kd"), (None, "ce")}
    (ce,) = [r for r in rows if r["column"] == "ce"]  # one teacher-free run serves both rows
    assert ce["pairs"] == ["resnet8 -> resnet8", "resnet14 -> resnet8"]
    table = (out / "results.md").read_text()
    assert "| resnet8 -> resnet8 |" in table and "| resnet14 -> resnet8 |" in table
    assert len(list(csv.DictReader((out / "results.csv").open()))) == len(rows) == 5


# 2. after SIGTERM, reproduce says how to continue with a command it accepts


def test_an_interrupted_reproduce_says_run_the_same_command_again(tmp_path, monkeypatch, capsys):
    def stop(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "run", stop)
    argv = ["reproduce", "dih-table4", "--profile", "smoke", "--out", str(tmp_path / "o")]
    assert main(argv) == 130
    line = _one_line(capsys)
    assert "run the same command again to continue" in line and "--resume" not in line


# 3. an experiment file without pairs: the file, no line 0


def test_an_experiment_without_pairs_names_the_file_without_a_line(tmp_path, capsys):
    text = TINY[: TINY.index("[[pairs]]")]
    path = _tiny(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    expected = f"file {path}: an experiment needs at least one [[pairs]] table; this file has none"
    assert str(info.value) == expected
    assert main(["reproduce", str(path), "--estimate"]) == 2
    line = _one_line(capsys)
    assert line == f"dihkit: error: {expected}"


def test_a_missing_title_names_the_file_without_a_line(tmp_path):
    path = _tiny(tmp_path, TINY.replace('title = "A tiny experiment"\n', ""))
    with pytest.raises(ConfigError, match=r"^file .*tiny\.toml: missing 'title'"):
        load_experiment(path)


# 4. notebook parameters: a string where papermill meant a list, repeated seeds, seed vs seeds


def test_a_string_of_seeds_says_it_is_a_string_and_gives_the_yaml_fix(monkeypatch):
    monkeypatch.delenv("DIHKIT_PROFILE", raising=False)
    with pytest.raises(ConfigError) as info:
        resolve("smoke", seeds="[0, 0]")
    message = str(info.value)
    assert "parameter seeds = '[0, 0]' is a string, not a list of seeds" in message
    assert "-y 'seeds: [0, 1]'" in message
    with pytest.raises(ConfigError, match=r"parameter epochs = '3' is a string, not a number"):
        resolve("smoke", epochs="3")
    with pytest.raises(ConfigError, match=r"parameter taus = '\[' is a string, not a number"):
        check_range("taus", "[", 0)


def test_repeated_seeds_are_refused_and_errors_name_the_parameter_given(monkeypatch):
    monkeypatch.delenv("DIHKIT_PROFILE", raising=False)
    with pytest.raises(ConfigError, match=r"seeds = \[0, 0\] repeats a seed \(0\).*paired"):
        resolve("smoke", seeds=[0, 0])
    with pytest.raises(ConfigError, match=r"^parameter seed = -5 must be an integer"):
        resolve("smoke", seed=-5)
    with pytest.raises(ConfigError, match=r"parameter seeds = 1\.5 must be a list of seeds"):
        resolve("smoke", seeds=1.5)  # was a TypeError traceback
    with pytest.raises(ConfigError, match="give one of them"):
        resolve("smoke", seed=1, seeds=[0, 1])
    assert resolve("smoke", seed=3).seeds == (3,)
    assert resolve("smoke", seeds=[2, 0]).seeds == (2, 0)


def _notebook(folder: Path, stem: str, parameters: str, body: str) -> Path:
    cells = [
        new_markdown_cell(f"# Synthetic {stem}"),
        new_code_cell(
            'profile = "classroom"\nout_dir = "out"\ncache_dir = "cache"\n' + parameters,
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(body),
    ]
    return write_notebook(folder, stem, cells)


def test_tour_names_seed_for_a_bad_seed_before_running_anything(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    _notebook(notebooks, "00_seeded", "seed = 0\n", "print(seed)")
    out = tmp_path / "tour"
    argv = ["tour", "--notebooks", str(notebooks), "--out", str(out), "--quiet"]
    assert main([*argv, "--param", "seed=-5"]) == 2
    line = _one_line(capsys)
    assert "parameter seed = -5 must be an integer" in line and "seeds" not in line
    assert not out.exists()  # refused before any notebook ran


# 5. a failed tour notebook: the book is written again, its page and the unreached ones marked


@pytest.mark.slow
def test_a_failed_tour_notebook_is_marked_in_the_book(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    _notebook(notebooks, "00_may_fail", "fail = False\n", "assert not fail, 'asked to fail'")
    _notebook(notebooks, "01_after", "", "print('after')")
    out = tmp_path / "tour"
    argv = ["tour", "--notebooks", str(notebooks), "--out", str(out), "--quiet", "--profile"]
    assert main([*argv, "smoke"]) == 0
    book = out / "book"
    assert "failed in the latest run" not in (book / "index.html").read_text()
    capsys.readouterr()

    assert main([*argv, "smoke", "--param", "fail=True"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "notebook 00_may_fail.ipynb failed: AssertionError: asked to fail" in line
    assert "book (the failed notebook marked)" in captured.out
    failed = (book / "00_may_fail.html").read_text()
    assert "This notebook failed in the latest run of the tour" in failed
    assert "AssertionError: asked to fail" in failed
    assert "This page is from an earlier run" in (book / "01_after.html").read_text()
    index = (book / "index.html").read_text()
    assert "(failed in the latest run)" in index and "(from an earlier run)" in index
    entries = json.loads((out / "sequence.json").read_text())["notebooks"]
    assert entries["00_may_fail.ipynb"]["state"] == "failed"
    assert entries["01_after.ipynb"]["state"] == "stale"

    assert main([*argv, "smoke"]) == 0  # a good run again: every page current
    index = (book / "index.html").read_text()
    assert "failed in the latest run" not in index and "earlier run" not in index
    assert "failed in the latest run" not in (book / "00_may_fail.html").read_text()


def test_run_sequence_records_the_failure_without_a_book(tmp_path):
    from dihkit.book.tour import run_sequence

    notebooks = tmp_path / "notebooks"
    _notebook(notebooks, "00_fails", "", "raise ValueError('no')")
    with pytest.raises(NotebookError, match="ValueError: no"):
        run_sequence("smoke", out_dir=tmp_path / "o", progress=False, notebooks_dir=notebooks)
    entry = json.loads((tmp_path / "o" / "sequence.json").read_text())["notebooks"]
    assert entry["00_fails.ipynb"]["state"] == "failed"
    assert not list((tmp_path / "o").glob(".*.tmp"))


# 6. the bundled teachers' manifest is written atomically


def test_export_teacher_writes_the_manifest_atomically(tmp_path, monkeypatch):
    def no_plain_writes(self, *args, **kwargs):
        raise AssertionError(f"{self} written with Path.write_text")

    teacher_dir = tmp_path / "teachers"
    teacher_dir.mkdir()
    monkeypatch.setattr(Path, "write_text", no_plain_writes)
    entry = bundled.export_teacher(
        bundled.bundled_path("resnet14"),
        "copy14",
        command="dihkit train ...",
        accuracies={"test_acc": 0.5},
        teacher_dir=teacher_dir,
    )
    manifest = bundled.read_manifest(teacher_dir / "manifest.json")
    assert manifest["copy14"] == entry and entry["file"] == "copy14.pt"
    assert not list(teacher_dir.glob(".*.tmp"))


def test_a_damaged_manifest_is_one_clear_error(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"teachers": {')
    with pytest.raises(DihkitError, match="manifest.json"):
        bundled.read_manifest(manifest)


# 7. SIGKILL in the middle of reproduce, then the same command: the uninterrupted results


def _in_process(argv: list[str], cwd: Path, count: list[int] | None = None) -> int:
    threads, here = torch.get_num_threads(), Path.cwd()
    torch.set_num_threads(1)
    os.chdir(cwd)
    real = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        count.append(1)
        return real(self, *args, **kwargs)

    if count is not None:
        torch.optim.SGD.step = step
    try:
        return main(argv)
    finally:
        torch.optim.SGD.step = real
        os.chdir(here)
        torch.set_num_threads(threads)


def _results(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as handle:
        return [
            {k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(handle)
        ]


@pytest.mark.slow
def test_sigkill_during_reproduce_then_rerun_gives_the_uninterrupted_results(tmp_path):
    path = _tiny(tmp_path, TINY[: TINY.index('[[pairs]]\nteacher = "resnet14"')])
    argv = ["reproduce", str(path), "--profile", "smoke", "--device", "cpu", "--quiet"]
    steps: list[int] = []
    (tmp_path / "ref").mkdir()
    assert _in_process([*argv, "--out", "out"], tmp_path / "ref", steps) == 0
    reference = _results(tmp_path / "ref" / "out")
    assert [r["kind"] for r in reference] == ["teacher", "student", "student"]

    seed = time.time_ns()
    step = random.Random(seed).randint(2, len(steps))  # any optimiser step but the first
    (tmp_path / "run").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, str(DRIVER), "kill-at-step", str(step), "--", *argv, "--out", "out"],
        cwd=tmp_path / "run",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, (seed, step, killed.stderr)
    assert _in_process([*argv, "--out", "out"], tmp_path / "run") == 0, (seed, step)
    assert _results(tmp_path / "run" / "out") == reference, (seed, step)
