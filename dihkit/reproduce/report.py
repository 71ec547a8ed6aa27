"""An experiment's results: one row per run (``results.json``, ``results.csv``) and a markdown
table with mean +/- std over seeds beside the paper's numbers (``results.md``)."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dihkit.files import write_text_atomic
from dihkit.reproduce.config import TEACHER_COLUMN, Experiment
from dihkit.reproduce.plan import Job, Resolved

CSV_FIELDS = (
    "experiment",
    "profile",
    "kind",
    "pairs",
    "teacher",
    "model",
    "column",
    "method",
    "options",
    "seed",
    "dataset",
    "epochs",
    "batch_size",
    "lr",
    "cached_targets",
    "test_pct_best",
    "test_pct_last",
    "best_epoch",
    "val_pct_best",
    "paper_pct",
    "train_seconds",
    "folder",
)


def run_rows(
    experiment: Experiment, resolved: Resolved, finished: Sequence[tuple[Job, Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """One row per finished run (a teacher-free run lists every row it fills in ``pairs``)."""
    rows = []
    papers = {pair.label: pair.paper for pair in experiment.pairs}
    for job, result in finished:
        column = job.column if job.kind == "student" else TEACHER_COLUMN
        paper = [papers[p].get(column) for p in job.pairs] if job.kind == "student" else []
        if job.kind == "teacher":
            paper = [p.paper.get(TEACHER_COLUMN) for p in experiment.pairs if p.teacher == job.arch]
        paper = [p for p in paper if p is not None]
        rows.append(
            {
                "experiment": experiment.name,
                "profile": resolved.profile,
                "kind": job.kind,
                "pairs": list(job.pairs),
                "teacher": job.teacher,
                "model": job.arch,
                "column": job.column,
                "method": job.method if job.kind == "student" else job.kind,
                "options": job.options,
                "seed": job.seed if job.kind == "student" else job.config.seed,
                "dataset": resolved.data.dataset,
                "epochs": job.config.epochs,
                "batch_size": job.config.batch_size,
                "lr": job.config.lr,
                "cached_targets": job.config.cached_targets,
                "test_pct_best": 100 * result["test_acc_best"],
                "test_pct_last": 100 * result["test_acc_last"],
                "best_epoch": result["best_epoch"],
                "val_pct_best": _pct(result["best_val_acc"]),  # None: no validation split
                "member_test_pct": [100 * a for a in result.get("test_member_acc_best", [])],
                "paper_pct": paper[0] if len(set(paper)) == 1 else (paper or None),
                "train_seconds": result.get("train_seconds"),
                "folder": job.folder,
            }
        )
    return rows


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _mean_std(values: Sequence[float], best: bool = False) -> str:
    """``mean +/- std`` (sample std), with the best seed when the paper reports the best."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} (1 seed)"
    cell = f"{statistics.mean(values):.2f} +/- {statistics.stdev(values):.2f}"
    return cell + (f", best {max(values):.2f}" if best else "")


def _cells(
    experiment: Experiment, rows: Sequence[Mapping[str, Any]], key: str
) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(pair label, column) -> [(seed, value)] over the student runs."""
    cells: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in rows:
        if row["kind"] != "student":
            continue
        for pair in row["pairs"]:
            cells.setdefault((pair, row["column"]), []).append((row["seed"], row[key]))
    return cells


def markdown(
    experiment: Experiment, resolved: Resolved, rows: Sequence[Mapping[str, Any]], seeds: int
) -> str:
    """The results table(s) in markdown, each cell beside the paper's number."""
    data = resolved.data
    subset = ""
    if data.train_per_class or data.teacher_train_per_class:
        subset = (
            f" ({data.train_per_class or 'all'} training images per class for students, "
            f"{data.teacher_train_per_class or 'all'} for teachers)"
        )
    cfg = resolved.student
    cached = (
        f"; cached teacher targets, V = {cfg.cached_targets}, where the method allows"
        if cfg.cached_targets
        else ""
    )
    lines = [
        f"# {experiment.title}",
        "",
        f"Measured by `dihkit reproduce {experiment.name} --profile {resolved.profile}`: "
        f"{data.dataset}{subset}; students {cfg.epochs} epochs, batch {cfg.batch_size}, lr "
        f"{cfg.lr:g} ({cfg.schedule}); teachers {resolved.teacher.epochs} epochs"
        + (f", heads {resolved.heads.epochs} epochs" if experiment.needs_heads else "")
        + f"; seeds {', '.join(map(str, resolved.seeds))}{cached}.",
        "",
        f"**Paper numbers** (labelled `paper`) are published, not measured here: "
        f"{experiment.source}, {experiment.reported}, on {experiment.recipe['dataset']} with the "
        "paper's recipe."
        + (
            " This profile trains on other data with fewer epochs, so compare the differences "
            "between columns, not the absolute numbers."
            if resolved.profile != "paper"
            else ""
        ),
        "",
    ]
    if experiment.notes:
        lines += [experiment.notes.strip(), ""]
    teachers = {row["model"]: row for row in rows if row["kind"] == "teacher"}
    heads = {row["model"]: row for row in rows if row["kind"] == "heads"}
    for key, heading in _tables(resolved):
        cells = _cells(experiment, rows, key)
        lines += [
            f"## {heading}: mean +/- std over seeds, paper's number beside it",
            "",
            "| teacher -> student | teacher | "
            + " | ".join(c.name for c in experiment.columns)
            + " |",
            "|---|---|" + "---|" * len(experiment.columns),
        ]
        for pair in experiment.pairs:
            teacher = teachers.get(pair.teacher)
            t_cell = f"{teacher[key]:.2f}" if teacher else "-"
            if TEACHER_COLUMN in pair.paper:
                t_cell += f" (paper {pair.paper[TEACHER_COLUMN]:.2f})"
            values = []
            for column in experiment.columns:
                got = [v for _, v in sorted(cells.get((pair.label, column.name), []))]
                cell = _mean_std(got, experiment.paper_statistic == "best")
                if got and len(got) < seeds:
                    cell += f" [{len(got)}/{seeds} seeds]"
                if column.name in pair.paper:
                    cell += f" (paper {pair.paper[column.name]:.2f})"
                values.append(cell)
            lines.append(f"| {pair.label} | {t_cell} | " + " | ".join(values) + " |")
        lines.append("")
    if experiment.baseline:
        lines += _paired(experiment, rows, _tables(resolved)[0][0])
    if heads:
        selected = "last" if not data.val_fraction else "validation-selected"
        lines += [
            f"## The teachers' heads (test %, {selected} epoch of the head training)",
            "",
            "| teacher | heads, shallow to deep (the teacher's own is in the tables above) |",
            "|---|---|",
        ]
        for arch, row in heads.items():
            members = ", ".join(f"{v:.2f}" for v in row["member_test_pct"])
            lines.append(f"| {arch} | {members} |")
        lines.append("")
    return "\n".join(lines)


def _tables(resolved: Resolved) -> list[tuple[str, str]]:
    """(row key, heading) of each results table, the one differences are computed on first.
    Without a validation split (the paper profile) the last epoch is the only result."""
    last = ("test_pct_last", "Test accuracy (%) at the last epoch")
    if not resolved.data.val_fraction:
        return [(last[0], last[1] + " (whole training set, no validation split)")]
    return [("test_pct_best", "Test accuracy (%) at the validation-selected epoch"), last]


def _paired(experiment: Experiment, rows: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """Per-seed differences of ``key`` against the baseline column (same seed: same student
    start)."""
    base = experiment.baseline
    cells = _cells(experiment, rows, key)
    others = [c.name for c in experiment.columns if c.name != base]
    selected = "validation-selected" if key == "test_pct_best" else "last epoch"
    lines = [
        f"## Paired differences to {base} (points, {selected}; same seed = same "
        "initial student and data order): mean +/- std, and seeds where the column is ahead",
        "",
        "| teacher -> student | " + " | ".join(f"{c} - {base}" for c in others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for pair in experiment.pairs:
        reference = dict(cells.get((pair.label, base), []))
        values = []
        for column in others:
            diffs = [
                v - reference[s]
                for s, v in sorted(cells.get((pair.label, column), []))
                if s in reference
            ]
            if not diffs:
                values.append("-")
                continue
            ahead = sum(d > 0 for d in diffs)
            spread = f" +/- {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
            values.append(f"{statistics.mean(diffs):+.2f}{spread} ({ahead}/{len(diffs)} ahead)")
        lines.append(f"| {pair.label} | " + " | ".join(values) + " |")
    return [*lines, ""]


def write_report(
    out: Path,
    experiment: Experiment,
    resolved: Resolved,
    finished: Sequence[tuple[Job, Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """Write the experiment's report into ``out``: results.json and results.csv (one row per
    finished run) and results.md (the tables beside the paper's numbers), each atomically;
    returns the rows."""
    rows = run_rows(experiment, resolved, finished)
    write_text_atomic(
        out / "results.json",
        json.dumps(
            {"experiment": experiment.name, "profile": resolved.profile, "runs": rows}, indent=1
        ),
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["pairs"] = ";".join(row["pairs"])
        flat["options"] = json.dumps(row["options"], sort_keys=True)
        if isinstance(row["paper_pct"], list):
            flat["paper_pct"] = ";".join(map(str, row["paper_pct"]))
        writer.writerow(flat)
    write_text_atomic(out / "results.csv", buffer.getvalue())
    write_text_atomic(
        out / "results.md", markdown(experiment, resolved, rows, len(resolved.seeds)) + "\n"
    )
    return rows
