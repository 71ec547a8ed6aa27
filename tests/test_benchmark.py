"""The benchmark measures something (speed itself is never asserted)."""

from __future__ import annotations

import json

import torch

from dihkit.bench.memory import peak_tensor_bytes
from dihkit.bench.methods import VARIANTS
from dihkit.bench.throughput import measure_throughput
from dihkit.cli.main import main

RATIOS = {
    "cohort_over_teacher_forward",
    "dih_over_kd_step",
    "kd_over_ce_step",
    "dih_over_ce_step",
    "cached_dih_over_ce_epoch",
    "conventional_over_kit_epoch",
    "conventional_over_cached_kit_epoch",
    "cache_build_plus_3_cached_over_2_live_dih",
}


def test_throughput_is_measured_for_training_and_inference(tiny):
    result = measure_throughput("resnet8", tiny, batch_size=32, steps=2, warmup=1, device="cpu")
    assert (result.model, result.device, result.batch_size) == ("resnet8", "cpu", 32)
    assert result.train_images_per_s > 0 and result.inference_images_per_s > 0


def test_benchmark_command_prints_one_row_per_model(capsys):
    argv = ["benchmark", "--models", "resnet8", "--steps", "1", "--train-per-class", "20"]
    code = main([*argv, "--models-only"])
    rows = capsys.readouterr().out.splitlines()
    assert code == 0
    assert rows[0].split()[:2] == ["model", "device"] and rows[1].startswith("resnet8")


def test_quick_method_benchmark_reports_every_variant_as_json(capsys):
    code = main(["benchmark", "--quick", "--json", "--teacher", "resnet14"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert RATIOS <= set(report["ratios"])
    assert all(isinstance(report["ratios"][name], float) for name in RATIOS)
    assert all(value > 0 for value in report["ratios"].values())
    assert set(report["steps"]) == {label for label, _, _ in VARIANTS}
    for label, entry in report["steps"].items():
        assert entry["live_ms"] > 0 and entry["live_peak_mib"] > 0, label
        if entry["cached_refusal"] is None:
            assert entry["cached_ms"] > 0 and entry["cached_peak_mib"] > 0, label
        else:
            assert entry["cached_ms"] is None, label
    cacheable = {k for k, e in report["steps"].items() if e["cached_refusal"] is None}
    assert cacheable == {"kd", "dih", "dih-ensemble", "dskd", "dskd-nofea"}
    assert set(report["epochs_s"]) == {
        "ce",
        "kd",
        "dih",
        "kd cached",
        "dih cached",
        "conventional kd",
    }
    assert report["cache"]["views"] == 2 and report["cache"]["build_s"]["dih"] > 0
    assert 0 < report["cache"]["fp16_max_rel_error"] < 1e-2  # fp16 keeps ~3 decimal digits
    assert report["throughput"][0]["model"] == "resnet8"


def test_peak_tensor_bytes_counts_what_a_step_allocates():
    weight = torch.randn(256, 256)

    def work():
        a = torch.ones(1024, 1024)  # 4 MiB, freed before the next one
        del a
        b = weight @ weight  # 256 KiB
        return b.sum()

    peak = peak_tensor_bytes(work, torch.device("cpu"))
    assert 4 * 2**20 <= peak < 4 * 2**20 + 2**19
    held = []
    peak_held = peak_tensor_bytes(
        lambda: held.extend([torch.ones(1024, 1024)] * 1 + [torch.ones(512, 1024)]),
        torch.device("cpu"),
    )
    assert peak_held == 4 * 2**20 + 2 * 2**20


def test_timing_helpers_time_every_job_and_guard_their_ratios():
    from dihkit.bench.timing import interleaved, ratio

    calls = {"a": 0, "b": 0}

    def job(name):
        def run():
            calls[name] += 1

        return run

    times = interleaved({n: job(n) for n in calls}, repeats=2, rounds=3, device=torch.device("cpu"))
    assert set(times) == {"a", "b"} and calls == {"a": 7, "b": 7}  # one warm-up, 3 x 2 timed
    assert ratio(1.0, 4.0) == 0.25 and ratio(None, 1.0) is None and ratio(1.0, 0) is None
