"""The benchmark measures something (speed itself is never asserted)."""

from __future__ import annotations

from dihkit.benchmark import measure_throughput
from dihkit.cli import main


def test_throughput_is_measured_for_training_and_inference(tiny):
    result = measure_throughput("resnet8", tiny, batch_size=32, steps=2, warmup=1, device="cpu")
    assert (result.model, result.device, result.batch_size) == ("resnet8", "cpu", 32)
    assert result.train_images_per_s > 0 and result.inference_images_per_s > 0


def test_benchmark_command_prints_one_row_per_model(capsys):
    code = main(["benchmark", "--models", "resnet8", "--steps", "1", "--train-per-class", "20"])
    rows = capsys.readouterr().out.splitlines()
    assert code == 0
    assert rows[0].split()[:2] == ["model", "device"] and rows[1].startswith("resnet8")
