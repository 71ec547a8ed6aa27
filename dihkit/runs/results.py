"""The results files the notebooks record, and how 07_comparison reads them back.

Every notebook writes ``{out_dir}/{notebook stem}/results.json`` with :func:`write_results`::

    {
      "schema": 1,
      "notebook": "04_dih_distillation",       # the notebook's stem
      "settings": {...},                       # dihkit.runs.profiles.Settings.as_dict()
      "runs": [                                # one entry per finished run (any number)
        {
          # the fields of dihkit.runs.cache.RunSummary.as_dict(with_history=True):
          "method": "kd", "seed": 0, "teacher": "resnet56", "student": "resnet8",
          "test_acc_best": 0.77, "test_acc_last": 0.77, "best_val_acc": 0.78, "best_epoch": 14,
          "seconds": 17.2, "student_params": 77754, "run_dir": "...", "options": {...},
          "history": [{"epoch": 1, "val_acc": 0.41, ...}, ...],
          "environment": {"torch": "2.14.1", "device": "cpu", "cpu": "AMD EPYC",
                          "cpu_capability": "AVX512", "threads": 2},  # {} for older runs
          # added by run_record():
          "label": null,     # a notebook's own name for the run's group, or null: tables then
                             # use run_label(), e.g. "kd (resnet56 -> resnet8)"
          "dataset": "fmnist-mini", "train_per_class": 100, "epochs": 15,
          "stage_seconds": {"assistant": 30.1}  # only for runs with stages (takd); "seconds"
                                               # then counts every stage
          "shared_stages": {"assistant": "..."}  # only for a stage shared between runs: its
                                               # folder; stage_seconds counts what this run spent
        }
      ],
      "extra": {...}                           # notebook-specific numbers (e.g. "kd_identity")
    }

Accuracies are fractions in [0, 1]; tables show them in percent. :func:`collect_results` reads
every such file under ``out_dir``; :func:`collected_runs` merges their runs (a run recorded by
several notebooks, the same cached run folder, counts once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dihkit.files import UnreadableFileError, read_json, write_json_atomic
from dihkit.methods.base import SHARED_STAGE_SUFFIX
from dihkit.runs.cache import cached_run, history_rows, shared_stage_entry
from dihkit.training.loop import HISTORY_FILE

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def run_label(run: Mapping[str, Any]) -> str:
    """The name a run's group has in tables: its ``label``, else e.g. ``kd (resnet56 -> resnet8)``
    (``takd`` shows its assistant in the chain, ``ce`` only the student)."""
    if run.get("label"):
        return str(run["label"])
    chain = [run["teacher"]] if run.get("teacher") and run["method"] != "ce" else []
    assistant = (run.get("options") or {}).get("assistant")
    if assistant:
        chain.append(assistant)
    return f"{run['method']} ({' -> '.join([*chain, run['student']])})"


def run_record(summary: Any, *, label: str | None = None, settings: Any = None) -> dict[str, Any]:
    """A :class:`dihkit.runs.cache.RunSummary` as a results-file entry (see the module docstring).

    ``seconds`` becomes the training time of every stage of the run: a run folder's stage
    sub-folders (TAKD's ``assistant``) add theirs, listed in ``stage_seconds``; a stage shared
    with other runs (``NAME.shared.json``) adds what this run spent on it, 0 where an earlier
    run trained it, and its folder is listed in ``shared_stages``. A damaged stage history or
    shared-stage record is one :class:`~dihkit.files.UnreadableFileError` naming the file and
    the run folder to delete (:func:`dihkit.runs.cache.cached_run` then trains it again).
    """
    record = summary.as_dict(with_history=True) if hasattr(summary, "as_dict") else dict(summary)
    record["label"] = label
    stages, shared = {}, {}
    if record.get("run_dir"):
        run_dir = Path(record["run_dir"])
        for history in sorted(run_dir.glob(f"*/{HISTORY_FILE}")):
            rows = _read_stage_file(history, run_dir, history_rows)
            stages[history.parent.name] = sum(row["seconds"] for row in rows)
        for marker in sorted(run_dir.glob(f"*{SHARED_STAGE_SUFFIX}")):
            entry = _read_stage_file(marker, run_dir, shared_stage_entry)
            stages[entry["stage"]] = float(entry["seconds"])
            shared[entry["stage"]] = entry["folder"]
    if shared:
        record["shared_stages"] = shared
    if stages:
        record["stage_seconds"] = stages
        record["seconds"] = record["seconds"] + sum(stages.values())
    if settings is not None:
        record.update(
            dataset=settings.dataset,
            train_per_class=settings.train_per_class,
            epochs=settings.epochs,
        )
    return record


def _read_stage_file(path: Path, run_dir: Path, well_formed: Callable[[Any], bool]) -> Any:
    """A stage file of a run folder read back, or one error naming it and the fix."""
    fix = f"delete the run folder {run_dir} and run again to train that run afresh"
    try:
        value = read_json(path)
    except UnreadableFileError as exc:
        raise UnreadableFileError(path, f"{exc.problem}; {fix}", missing=exc.missing) from None
    if not well_formed(value):
        raise UnreadableFileError(path, f"is damaged (not what dihkit writes there); {fix}")
    return value


def write_results(
    out_dir: str | Path,
    notebook: str,
    settings: Any,
    runs: Iterable[Any] = (),
    **extra: Any,
) -> Path:
    """Write ``{out_dir}/{notebook}/results.json`` (schema in the module docstring) and return
    its path. ``runs`` are RunSummary objects or entries made by :func:`run_record`."""
    records = [r if isinstance(r, Mapping) else run_record(r, settings=settings) for r in runs]
    payload = {
        "schema": SCHEMA_VERSION,
        "notebook": notebook,
        "settings": settings.as_dict() if hasattr(settings, "as_dict") else dict(settings),
        "runs": records,
        "extra": extra,
    }
    return write_json_atomic(Path(out_dir) / notebook / RESULTS_FILE, payload, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def collect_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every notebook's results file directly under ``out_dir`` (``*/results.json``), sorted by
    notebook; files that are not valid JSON of this schema are skipped."""
    found = []
    for path in sorted(Path(out_dir).glob(f"*/{RESULTS_FILE}")):
        try:
            payload = read_json(path)
        except UnreadableFileError:
            continue
        if isinstance(payload, dict) and isinstance(payload.get("runs"), list):
            payload.setdefault("notebook", path.parent.name)
            found.append(payload)
    return found


def collected_runs(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All runs of several results files, each once (the same cached run folder recorded by two
    notebooks is one run), with the ``notebook`` that first recorded it. When runs sharing a label
    differ in their setting (data, epochs) or options (tau, alpha, ...), each label gets what
    differs appended, so different experiments never share a row."""
    runs, seen = [], set()
    for payload in results:
        for run in payload["runs"]:
            key = run.get("run_dir") or (run_label(run), run["seed"], payload["notebook"])
            if key in seen:
                continue
            seen.add(key)
            runs.append({**run, "notebook": payload["notebook"]})
    variants: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        variant = _variant(run)
        variants.setdefault(run_label(run), {})[json.dumps(variant, sort_keys=True)] = variant
    for run in runs:
        found = list(variants[run_label(run)].values())
        if len(found) > 1:
            mine = _variant(run)
            differing = [k for k in mine if any(v.get(k) != mine[k] for v in found)]
            run["label"] = f"{run_label(run)} [{', '.join(f'{k}={mine[k]}' for k in differing)}]"
    return runs


def _variant(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "dataset": run.get("dataset"),
        "per_class": run.get("train_per_class"),
        "epochs": run.get("epochs"),
        "cached_targets": run.get("cached_targets", 0),
        **(run.get("options") or {}),
    }


@dataclass(frozen=True)
class RunSpec:
    """One kind of run in a notebook's grid: a method, its teacher (None for ``ce``), its options
    and, optionally, the label of its group in tables (default: :func:`run_label`)."""

    method: str
    teacher: str | None = None
    options: Mapping[str, Any] | None = None
    label: str | None = None


def run_grid(
    settings: Any,
    specs: Sequence[RunSpec],
    *,
    cache_dir: str | Path,
    data: Any = None,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Every spec at every seed of ``settings`` (seed by seed, so paired comparisons fill in
    first), through the run cache: runs already done are read back, the others trained. Returns
    results-file entries (:func:`run_record`) and logs one line per run."""
    records = []
    for seed in settings.seeds:
        for spec in specs:
            started = time.perf_counter()
            summary = cached_run(
                spec.method,
                teacher=spec.teacher,
                student=settings.student,
                config=settings.config(seed),
                options=dict(spec.options or {}),
                dataset=settings.dataset,
                train_per_class=settings.train_per_class,
                data_dir=settings.data_dir,
                root=cache_dir,
                progress=progress,
                data=data,
            )
            record = run_record(summary, label=spec.label, settings=settings)
            records.append(record)
            if log is not None:
                took = time.perf_counter() - started
                log(
                    f"{run_label(record)}, seed {seed}: test {100 * summary.test_acc_best:.2f}% "
                    f"(training took {summary.seconds:.1f} s; this call {took:.1f} s)"
                )
    return records
