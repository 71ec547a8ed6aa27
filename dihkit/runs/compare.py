"""Multi-seed comparisons of methods: mean +/- std and paired differences (same seed = same
student initialisation and the same data order, only the method varies)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dihkit.data.datasets import Dataset
from dihkit.errors import ConfigError
from dihkit.files import UnreadableFileError, read_json
from dihkit.methods import get_method, resolve_options
from dihkit.runs.pipeline import check_distill, distill, distill_identity
from dihkit.training import run_folder
from dihkit.training.config import TrainConfig


@dataclass
class RunRecord:
    """One finished run of a comparison."""

    method: str
    seed: int
    test_acc_best: float
    test_acc_last: float
    best_epoch: int
    seconds: float
    val_selected: bool = True  # False: no validation split, the last epoch was kept


def selected_heading(val_selected: Sequence[bool]) -> str:
    """The heading of the kept epoch's test accuracy: ``test % (val-selected)`` when every run
    chose its epoch on a validation split, ``test % (last epoch)`` when none had one."""
    if all(val_selected):
        return "test % (val-selected)"
    if not any(val_selected):
        return "test % (last epoch)"
    return "test % (val-selected, or last epoch without a validation split)"


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
    overwrite: bool = False,
    progress: bool = True,
) -> list[RunRecord]:
    """Run every method with every seed into ``out_dir/METHOD/seed-N``. A finished run is read
    back from its ``summary.json`` only if it was run with exactly these settings (its identity,
    :func:`dihkit.runs.pipeline.distill_identity`); an interrupted one, or one whose summary or
    history is damaged, resumes from its ``last.pt``, and one run with other settings is an
    error listing them (``overwrite`` runs it again instead). ``options`` maps a
    method to its own options (methods not listed take their defaults).

    Every method is checked first (:func:`dihkit.runs.pipeline.check_distill`: its options, its
    teacher, the batch size), so a grid that cannot finish fails before its first run. Methods
    that train without a teacher (``ce``) ignore ``teacher``."""
    _check_unique("seeds", seeds)
    _check_unique("methods", methods)
    for method in methods:
        method_options = (options or {}).get(method)
        run_config = method_config(method, config, options=method_options)
        check_distill(method, teacher, student, data, run_config, method_options)
    records = []
    with run_folder.claim(out_dir, resume=True):
        for seed in seeds:
            for method in methods:
                records.append(
                    _run_one(
                        method,
                        seed,
                        teacher,
                        student,
                        data,
                        config,
                        options,
                        out_dir,
                        overwrite,
                        progress,
                    )
                )
    return records


def _check_unique(name: str, values: Sequence[Any]) -> None:
    repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
    if repeated:
        raise ConfigError(
            f"--{name} {' '.join(map(str, values))} repeats {', '.join(repeated)}; "
            "list each once (a repeated run would be counted twice)"
        )


def _run_one(
    method: str,
    seed: int,
    teacher: str | None,
    student: str,
    data: Dataset,
    config: TrainConfig,
    options: Mapping[str, Mapping[str, Any]] | None,
    out_dir: str | Path,
    overwrite: bool,
    progress: bool,
) -> RunRecord:
    """One cell of the grid: reuse the finished run if its identity matches, else run it."""
    run_dir = Path(out_dir) / method / f"seed-{seed}"
    summary_path = run_dir / "summary.json"
    method_options = (options or {}).get(method)
    run_config = method_config(method, config, seed, method_options)
    identity = distill_identity(method, teacher, student, data, run_config, method_options)
    stored = _stored_summary(summary_path)
    history = _stored_history(run_dir) if stored.get("identity") == identity else None
    if overwrite or history is None:  # not run, other settings, or damaged: (re)run or resume
        distill(
            method,
            teacher,
            student,
            data,
            run_config,
            method_options,
            out_dir=run_dir,
            resume=not overwrite,
            overwrite=overwrite,
            progress=progress,
        )
        stored, history = read_json(summary_path), read_json(run_dir / "history.json")
    return RunRecord(
        method=method,
        seed=seed,
        test_acc_best=stored["test_acc_best"],
        test_acc_last=stored["test_acc_last"],
        best_epoch=stored["best_epoch"],
        seconds=sum(row["seconds"] for row in history),
        val_selected="best_val_acc" not in stored or stored["best_val_acc"] is not None,
    )


def _stored_summary(path: Path) -> dict[str, Any]:
    """A finished run's summary; empty when there is none or it is damaged (a write cut short),
    so the run counts as not finished and resumes from its ``last.pt``."""
    try:
        stored = read_json(path)
    except UnreadableFileError:
        return {}
    return stored if isinstance(stored, dict) else {}


def _stored_history(run_dir: Path) -> list[dict[str, Any]] | None:
    """A finished run's history, or None when it is missing or damaged."""
    try:
        history = read_json(run_dir / "history.json")
    except UnreadableFileError:
        return None
    rows = isinstance(history, list) and all(isinstance(r, dict) for r in history)
    return history if rows and history else None


def _mean_std(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} +/- {100 * std:.2f}"


def comparison_table(records: Sequence[RunRecord], baseline: str | None = None) -> str:
    """Markdown table: test accuracy (validation-selected) mean +/- std over seeds, last-epoch
    accuracy, the paired difference to ``baseline`` (default: the first method) per seed, and the
    training time per run. Without a validation split the kept epoch is the last, and the first
    column says so (:func:`selected_heading`)."""
    methods = list(dict.fromkeys(r.method for r in records))
    baseline = baseline or methods[0]
    by_key = {(r.method, r.seed): r for r in records}
    selected = selected_heading([r.val_selected for r in records])
    lines = [
        f"| method | n | {selected} | test % (last epoch) | paired diff vs {baseline} "
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
