"""``dihkit reproduce``: smoke runs of shipped experiments, reuse of finished runs, resuming an
interrupted experiment, refusing changed settings, the results files and ``--estimate``."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch
from torch import nn

from dihkit.cli.main import main
from dihkit.errors import ConfigError
from dihkit.models import build_model
from dihkit.reproduce import Runner, experiment_names, load_experiment, plan_jobs
from dihkit.reproduce.estimate import estimate_jobs
from dihkit.reproduce.plan import resolve_profile

TINY = """\
title = "A tiny experiment"
source = "a paper, Table 9"
reported = "mean of 3 runs"
baseline = "ce"

[recipe]
dataset = "cifar100"
epochs = 200
batch_size = 64
lr = 0.1
schedule = "multistep"
milestones = [60, 120, 180]
seeds = 3

[heads]
kind = "linear"
lr = 0.002
schedule = "cosine"

[methods.ce]

[methods.kd]
tau = TAU

[methods.dih]

[[pairs]]
teacher = "resnet8"
student = "resnet8"
paper = { teacher = 70.0, ce = 59.77, kd = 59.44, dih = 61.57 }

[profiles.smoke]
seeds = 2
val_fraction = 0.05
"""


def _experiment(tmp_path: Path, tau: float = 4.0):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("TAU", str(tau)))
    return load_experiment(path)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
def test_a_smoke_run_writes_every_result_and_a_rerun_reuses_them(tmp_path, capsys):
    experiment = _experiment(tmp_path)
    resolved = resolve_profile(experiment, "smoke")
    out = tmp_path / "out"
    logged: list[str] = []
    Runner(experiment, resolved, out, progress=False, log=logged.append).run()
    jobs = plan_jobs(experiment, resolved)
    assert len(jobs) == 2 + 3 * 2  # teacher, heads; ce, kd, dih x 2 seeds
    assert sum(line.startswith("reproduce: [") for line in logged) == len(jobs)

    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [r["folder"] for r in rows] == [job.folder for job in jobs]
    for row in rows:  # every row is its run folder's own summary, in percent
        summary = _summary(out / row["folder"])
        assert row["test_pct_best"] == pytest.approx(100 * summary["test_acc_best"])
        assert row["test_pct_last"] == pytest.approx(100 * summary["test_acc_last"])
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["folder"] for r in table] == [r["folder"] for r in rows]
    assert {r["paper_pct"] for r in table if r["column"] == "dih"} == {"61.57"}

    # the markdown cell is the mean +/- sample std of the two seeds, beside the paper's number
    kd = [r["test_pct_best"] for r in rows if r["column"] == "kd"]
    cell = f"{statistics.mean(kd):.2f} +/- {statistics.stdev(kd):.2f} (paper 59.44)"
    text = (out / "results.md").read_text()
    assert cell in text
    assert "**Paper numbers** (labelled `paper`) are published, not measured here" in text
    teacher = rows[0]["test_pct_best"]
    assert f"| resnet8 -> resnet8 | {teacher:.2f} (paper 70.00) |" in text
    diffs = [
        k - c
        for k, c in zip(kd, [r["test_pct_best"] for r in rows if r["column"] == "ce"], strict=True)
    ]
    assert f"{statistics.mean(diffs):+.2f} +/- {statistics.stdev(diffs):.2f}" in text

    env = json.loads((out / "environment.json").read_text())
    assert env["packages"]["torch"] == torch.__version__.split("+")[0]
    assert env["seeds"] == [0, 1] and env["device"]["type"] == "cpu"
    assert len(env["git"]["commit"]) == 40

    # a second run trains nothing: every job is read back, results are the same
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")}
    logged.clear()
    Runner(experiment, resolved, out, progress=False, log=logged.append).run()
    assert all("finished, reused" in line for line in logged if line.startswith("reproduce: ["))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")} == before
    assert json.loads((out / "results.json").read_text())["runs"] == rows

    # a damaged marker (a write cut short) means: not finished; the job resumes from last.pt
    marker = out / "students" / "resnet8-resnet8" / "kd" / "seed-0" / "reproduce.json"
    marker.write_text(marker.read_text()[:100])
    logged.clear()
    Runner(experiment, resolved, out, progress=False, log=logged.append).run()
    assert any("reproduce.json is damaged" in line for line in logged), logged
    assert sum("finished, reused" in line for line in logged) == len(jobs) - 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")} == before  # nothing retrained
    assert json.loads((out / "results.json").read_text())["runs"] == rows
    (kd_row,) = [r for r in rows if r["folder"] == "students/resnet8-resnet8/kd/seed-0"]
    restored = json.loads(marker.read_text())["result"]["test_acc_best"]
    assert 100 * restored == pytest.approx(kd_row["test_pct_best"])

    # changed settings never mix with the stored runs; the error names every changed setting
    changed = _experiment(tmp_path, tau=2.0)
    with pytest.raises(
        ConfigError, match=r"kd/seed-0 holds a finished run with other settings"
    ) as info:
        Runner(
            changed, resolve_profile(changed, "smoke"), out, progress=False, log=logged.append
        ).run()
    assert "options.tau: 4.0 -> 2.0" in str(info.value)


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_experiment_continues_where_it_stopped(tmp_path, monkeypatch):
    experiment = _experiment(tmp_path)
    resolved = resolve_profile(experiment, "smoke", seeds=1)
    out = tmp_path / "out"
    original = Runner._train
    trained: list[str] = []

    def train_then_stop(self, job, folder):
        if len(trained) == 3:
            raise _Stop  # the 4th job is killed
        trained.append(job.folder)
        return original(self, job, folder)

    monkeypatch.setattr(Runner, "_train", train_then_stop)
    with pytest.raises(_Stop):
        Runner(experiment, resolved, out, progress=False, log=lambda line: None).run()
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 3
    first = [_summary(out / folder) for folder in trained]

    monkeypatch.setattr(
        Runner,
        "_train",
        lambda self, job, folder: (trained.append(job.folder), original(self, job, folder))[1],
    )
    Runner(experiment, resolved, out, progress=False, log=lambda line: None).run()
    jobs = plan_jobs(experiment, resolved)
    assert trained == [job.folder for job in jobs]  # the first three were not trained again
    assert [_summary(out / job.folder) for job in jobs[:3]] == first


@pytest.mark.slow
def test_reproduce_smoke_of_a_shipped_experiment_through_the_cli(tmp_path, capsys):
    out = tmp_path / "dih4"
    argv = ["reproduce", "dih-table4", "--profile", "smoke", "--pairs", "resnet8-resnet14"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "DIH Table 4 (CIFAR-100): small or no capacity gap" in printed
    assert "(paper 67.15)" in printed and "(paper 66.60)" in printed
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [r["kind"] for r in rows] == ["teacher", "heads", "student", "student", "student"]
    assert {r["dataset"] for r in rows} == {"fmnist-mini"}


def test_list_and_bad_names(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[0] for line in printed.splitlines()] == experiment_names()
    assert main(["reproduce", "dih-table99", "--estimate"]) == 2
    assert "unknown experiment 'dih-table99'" in capsys.readouterr().err
    assert main(["reproduce", "dih-table4", "--estimate", "--pairs", "resnet9-resnet8"]) == 2
    assert "unknown pair 'resnet9-resnet8'" in capsys.readouterr().err


def _forward_flops(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Forward FLOPs of the convolutions and linear layers, counted from their shapes with hooks
    (2 per multiply-add), independently of torch's flop counter."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += 2 * k * output.numel()

    def linear(module, inputs, output):
        nonlocal total
        total += 2 * module.in_features * output.numel()

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(conv)
        elif isinstance(module, nn.Linear):
            module.register_forward_hook(linear)
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    return float(total)


def test_estimate_counts_flops_against_an_independent_count(tmp_path):
    experiment = _experiment(tmp_path)
    resolved = resolve_profile(experiment, "paper")
    jobs = plan_jobs(experiment, resolved)
    teacher, heads, ce = jobs[0], jobs[1], jobs[2]
    (t_est, h_est, ce_est) = estimate_jobs([teacher, heads, ce], experiment, resolved, "cpu", 0)
    forward = _forward_flops(build_model("resnet8", 100, 3), (3, 32, 32))
    (stage,) = t_est.stages
    assert stage.eval_flops_per_image == pytest.approx(forward)
    # backward costs two forwards, less the first convolution's unneeded input gradient
    assert 2.9 * forward < stage.train_flops_per_image <= 3 * forward
    # the paper profile trains on all of CIFAR-100's 50,000 training images (no validation
    # split), in batches of 64: 782 steps an epoch, the last one partial
    assert stage.train_images == 50_000 and stage.steps == 200 * 782
    flops = t_est.flops()
    assert flops["train"] == pytest.approx(stage.train_flops_per_image * 200 * 50_000)
    # no validation split: the test set once (the last epoch is the selected one)
    assert flops["eval"] == pytest.approx(forward * 10_000)
    assert t_est.seconds() is None  # nothing was timed
    assert ce_est.stages[0].train_flops_per_image == pytest.approx(stage.train_flops_per_image)
    # the heads' training runs the frozen backbone forward only, plus the heads
    assert forward < h_est.stages[0].train_flops_per_image < 2 * forward


def test_estimate_times_steps_and_counts_a_shared_cache_once(tmp_path):
    experiment = _experiment(tmp_path)
    resolved = resolve_profile(experiment, "classroom", seeds=2)
    jobs = [job for job in plan_jobs(experiment, resolved) if job.column in ("kd", "ce")]
    estimates = estimate_jobs(jobs, experiment, resolved, "cpu", 1)
    assert all(e.seconds() is not None and e.seconds() > 0 for e in estimates)
    kd = [e for e in estimates if e.job.column == "kd"]
    assert [s.cache_views for e in kd for s in e.stages] == [4, 0]  # built once, then shared
    assert kd[0].flops()["cache"] > 0 and kd[1].flops()["cache"] == 0


@pytest.mark.parametrize("name", experiment_names())
def test_estimate_runs_for_every_experiment(name, capsys):
    assert (
        main(
            ["reproduce", name, "--profile", "paper", "--estimate", "--timing-steps", "0", "--json"]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    experiment = load_experiment(name)
    jobs = plan_jobs(experiment, resolve_profile(experiment, "paper"))
    assert [r["run"] for r in rows] == [job.folder for job in jobs]
    assert all(r["flops"]["total"] > 0 for r in rows)
    multi = [r for r in rows if r["method"] in ("fitnets", "takd")]
    assert all(len(r["stages"]) == 2 for r in multi)
