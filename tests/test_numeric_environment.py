"""What a run's float trajectory depends on besides its settings is recorded with it: the
torch build, the device, the processor, its vector instructions and the thread count."""

from __future__ import annotations

import json
import platform

import torch

from dihkit.runs.cache import cached_run
from dihkit.training.config import TrainConfig
from dihkit.training.runtime import cpu_model, numeric_environment

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
"""


def test_cpu_model_reads_the_first_model_name_and_falls_back_to_platform(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    assert cpu_model(info) == "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"
    info.write_text("processor\t: 0\nmodel name\t:   \n")  # an empty name is no name
    fallback = platform.processor() or platform.machine() or "unknown"
    assert cpu_model(info) == fallback
    assert cpu_model(tmp_path / "missing") == fallback


def test_the_cpu_record_follows_the_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        record = numeric_environment(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert record == {
        "torch": torch.__version__,
        "device": "cpu",
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": 1,
    }


def test_a_run_records_its_environment_and_an_older_summary_without_one_is_still_reused(
    tmp_path,
):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    run = cached_run("ce", teacher=None, student="resnet8", config=config, train_per_class=3,
                     root=tmp_path)  # fmt: skip
    summary_path = tmp_path / run.run_dir.split("/")[-1] / "summary.json"
    on_disk = json.loads(summary_path.read_text())
    assert on_disk["environment"] == numeric_environment(torch.device("cpu"))
    assert run.environment == on_disk["environment"]
    assert run.as_dict()["environment"]["threads"] == torch.get_num_threads()

    del on_disk["environment"]  # as written before the environment was kept
    summary_path.write_text(json.dumps(on_disk))
    mtime = summary_path.stat().st_mtime_ns
    again = cached_run("ce", teacher=None, student="resnet8", config=config, train_per_class=3,
                       root=tmp_path)  # fmt: skip
    assert summary_path.stat().st_mtime_ns == mtime, "the run was trained again"
    assert again.environment == {} and again.test_acc_best == run.test_acc_best
