"""Multi-seed comparison tables."""

from __future__ import annotations

from dihkit.runs.compare import RunRecord, comparison_table, run_comparison
from dihkit.training.config import TrainConfig


def record(method: str, seed: int, best: float) -> RunRecord:
    return RunRecord(method, seed, best, best - 0.01, 3, 10.0)


def test_table_reports_mean_std_and_paired_differences():
    records = [
        record("ce", 0, 0.80),
        record("ce", 1, 0.82),
        record("kd", 0, 0.81),
        record("kd", 1, 0.85),
    ]
    table = comparison_table(records)
    lines = table.splitlines()
    assert lines[2].startswith("| ce | 2 | 81.00 +/- 1.41 |")
    assert lines[3].startswith("| kd | 2 | 83.00 +/- 2.83 |")
    assert "+1.00, +3.00" in lines[3]


def test_comparison_runs_every_method_and_seed_and_reuses_finished_runs(tiny, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, device="cpu")
    first = run_comparison(
        ["ce", "kd"], [0, 1], "resnet14", "resnet8", tiny, config, out_dir=tmp_path, progress=False
    )
    assert [(r.method, r.seed) for r in first] == [("ce", 0), ("kd", 0), ("ce", 1), ("kd", 1)]
    stamp = (tmp_path / "kd" / "seed-1" / "best.pt").stat().st_mtime_ns
    again = run_comparison(
        ["ce", "kd"], [0, 1], "resnet14", "resnet8", tiny, config, out_dir=tmp_path, progress=False
    )
    assert again == first
    assert (tmp_path / "kd" / "seed-1" / "best.pt").stat().st_mtime_ns == stamp
