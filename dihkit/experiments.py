"""Multi-seed comparisons of methods: mean +/- std and paired differences (same seed = same
student initialisation and the same data order, only the method varies)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dihkit.data import Dataset
from dihkit.methods import get_method, resolve_options
from dihkit.pipeline import distill
from dihkit.train import TrainConfig


@dataclass
class RunRecord:
    """One finished run of a comparison."""

    method: str
    seed: int
    test_acc_best: float
    test_acc_last: float
    best_epoch: int
    seconds: float


def method_config(
    method: str,
    config: TrainConfig,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """``config`` for one run of a grid: its seed, and cached targets only where the method with
    these options can train from them (the others, such as ``ce``, run as they always do)."""
    method_class = get_method(method)
    usable = method_class.can_cache(resolve_options(method, options))
    cached = config.cached_targets if usable else 0
    return replace(config, seed=config.seed if seed is None else seed, cached_targets=cached)


def run_comparison(
    methods: Sequence[str],
    seeds: Sequence[int],
    teacher: str | None,
    student: str,
    data: Dataset,
    config: TrainConfig,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    out_dir: str | Path,
    progress: bool = True,
) -> list[RunRecord]:
    """Run every method with every seed into ``out_dir/METHOD/seed-N``. Finished runs are read
    back from their ``summary.json`` and interrupted ones resume, so the whole grid is resumable.
    ``options`` maps a method to its own options (methods not listed take their defaults)."""
    records = []
    for seed in seeds:
        for method in methods:
            run_dir = Path(out_dir) / method / f"seed-{seed}"
            summary_path = run_dir / "summary.json"
            if not summary_path.is_file():
                distill(
                    method,
                    teacher,
                    student,
                    data,
                    method_config(method, config, seed, (options or {}).get(method)),
                    (options or {}).get(method),
                    out_dir=run_dir,
                    resume=True,
                    progress=progress,
                )
            summary = json.loads(summary_path.read_text())
            history = json.loads((run_dir / "history.json").read_text())
            records.append(
                RunRecord(
                    method=method,
                    seed=seed,
                    test_acc_best=summary["test_acc_best"],
                    test_acc_last=summary["test_acc_last"],
                    best_epoch=summary["best_epoch"],
                    seconds=sum(row["seconds"] for row in history),
                )
            )
    return records


def _mean_std(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} +/- {100 * std:.2f}"


def comparison_table(records: Sequence[RunRecord], baseline: str | None = None) -> str:
    """Markdown table: test accuracy (validation-selected) mean +/- std over seeds, last-epoch
    accuracy, the paired difference to ``baseline`` (default: the first method) per seed, and the
    training time per run."""
    methods = list(dict.fromkeys(r.method for r in records))
    baseline = baseline or methods[0]
    by_key = {(r.method, r.seed): r for r in records}
    lines = [
        f"| method | n | test % (val-selected) | test % (last epoch) | paired diff vs {baseline} "
        "(per seed) | train s/run |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        runs = [r for r in records if r.method == method]
        diffs = [
            100 * (r.test_acc_best - by_key[(baseline, r.seed)].test_acc_best)
            for r in runs
            if (baseline, r.seed) in by_key
        ]
        diff_text = ", ".join(f"{d:+.2f}" for d in diffs) if method != baseline else "-"
        lines.append(
            f"| {method} | {len(runs)} | {_mean_std([r.test_acc_best for r in runs])} | "
            f"{_mean_std([r.test_acc_last for r in runs])} | {diff_text} | "
            f"{statistics.fmean(r.seconds for r in runs):.0f} |"
        )
    return "\n".join(lines)
