"""Run the notebook sequence headless and turn it into an offline HTML book.

- :func:`run_sequence` executes ``notebooks/NN_*.ipynb`` with papermill (all of them, or the
  ``only`` prefixes; the notebooks that read the others' results last) into one folder, with a
  progress bar over notebooks and each one's wall time
  recorded in ``sequence.json``. Parameter names are checked against every notebook's
  ``parameters`` cell first (papermill alone would only warn about a misspelled name), and the
  values of the profile's settings (seed, epochs, ...) too. The execution itself and the record
  live in :mod:`dihkit.book.execute`.
- :func:`write_book` (in :mod:`dihkit.book.html`) writes one page per executed notebook and an
  index; after a notebook fails, ``dihkit tour`` writes it again with that page (and those the
  run did not reach) marked; :func:`refresh_notebooks` re-executes the committed notebooks in
  place (``make book``).
- :func:`add_tour_arguments` and :func:`run_tour` are the ``dihkit tour`` command;
  ``python -m dihkit.book tour|refresh`` runs the same without the CLI.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dihkit.book import execute as run
from dihkit.book.execute import (
    RUN_PARAMETERS,
    NotebookError,
    NotebookRun,
    assign_parameters,
    check_parameter_values,
    notebook_parameters,
)
from dihkit.book.html import write_book
from dihkit.book.timings import record_timings, render_timing_cells
from dihkit.errors import ConfigError, DihkitError
from dihkit.files import write_text_atomic
from dihkit.resources import bundled, inside_package
from dihkit.runs.profiles import PROFILE_NAMES, PROFILES, check_choice

NOTEBOOKS_DIR = bundled("notebooks")


def sequence_notebooks(
    only: Sequence[str] | None = None, notebooks_dir: str | Path = NOTEBOOKS_DIR
) -> list[Path]:
    """The sequence's notebooks in order (the bundled ones by default); ``only`` keeps those
    whose name starts with one of the given prefixes (``"03"``, ``"3"`` or a name)."""
    return run.sequence_notebooks(only, notebooks_dir)


def run_sequence(
    profile: str = "classroom",
    only: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    out_dir: str | Path = "runs/tour",
    progress: bool = True,
    *,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
) -> list[NotebookRun]:
    """Execute the sequence (or the ``only`` prefixes) with papermill into ``out_dir``.

    Each notebook runs with the notebooks folder as working directory (``out_dir`` for those
    inside an installed package, never written to) and gets ``profile``,
    ``out_dir`` (absolute: results land in ``out_dir/<notebook>/``) and ``cache_dir``
    (``out_dir/cache``), plus those of ``params`` its parameters cell declares. Parameter names,
    and the values of those :func:`dihkit.runs.profiles.resolve` checks, are checked before
    anything runs. Wall times are merged into ``out_dir/sequence.json``. A notebook that fails
    stops the run with a :class:`NotebookError`; its executed copy in ``out_dir`` shows the
    failing cell, and ``sequence.json`` records it as failed and the selection's later
    notebooks as stale (see :mod:`dihkit.book.execute`), so the book marks their pages.
    """
    from tqdm.auto import tqdm

    check_choice("profile", profile, PROFILE_NAMES)
    notebooks = run.execution_order(sequence_notebooks(only, notebooks_dir))
    assigned = assign_parameters(params, notebooks)
    check_parameter_values(profile, params or {})
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_values = {"profile": profile, "out_dir": str(out_dir), "cache_dir": str(out_dir / "cache")}
    runs: list[NotebookRun] = []
    bar = tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb", disable=not progress)
    with run.profile_from_arguments():
        for number, path in enumerate(bar):
            bar.set_postfix_str(path.stem)
            declared = notebook_parameters(path)
            values = {k: v for k, v in run_values.items() if k in declared}
            output = out_dir / path.name
            cwd = out_dir if inside_package(path) else path.parent
            start = time.perf_counter()
            try:
                seconds = run.execute(path, output, {**values, **assigned[path]}, cwd)
            except NotebookError as error:
                seconds = time.perf_counter() - start
                later = notebooks[number + 1 :]
                run.record_failure(out_dir, profile, assigned[path], error, seconds, later)
                raise
            runs.append(NotebookRun(path.name, output, seconds))
            run.record_run(out_dir, profile, assigned[path], runs[-1])
            if progress:
                bar.write(f"{path.name}: {seconds:.1f} s")
    return runs


def profiles_table() -> str:
    """The run profiles side by side (a text table)."""
    fields = ("dataset", "teacher", "student", "epochs", "train_per_class", "seeds", "device")
    width = max(len(f) for f in fields)
    lines = [(f"{'':<{width}}  " + "  ".join(f"{name:<12}" for name in PROFILES)).rstrip()]
    for field in fields:
        values = []
        for settings in PROFILES.values():
            value = getattr(settings, field)
            value = "all" if value is None else value
            value = ", ".join(map(str, value)) if isinstance(value, tuple) else value
            values.append(f"{str(value):<12}")
        lines.append(f"{field:<{width}}  " + "  ".join(values).rstrip())
    return "\n".join(lines)


def sequence_table(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> str:
    """Every notebook of the sequence with the parameters its ``parameters`` cell declares (what
    ``--param NAME=VALUE`` may set; ``profile``, ``out_dir`` and ``cache_dir`` come from the
    tour)."""
    lines = []
    for path in sequence_notebooks(None, notebooks_dir):
        names = [n for n in notebook_parameters(path) if n not in RUN_PARAMETERS]
        lines.append(f"{path.stem}: {', '.join(names) or '-'}")
    return "\n".join(lines)


def _clean_for_commit(nb: Any) -> Any:
    """Drop what changes on every run (papermill's timings, cell timestamps) and the injected
    parameters cell, keeping outputs and widget state."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return nb


OUTPUTS_NOTE_TAG = "stored-outputs-note"


def label_stored_outputs(nb: Any, profile: str, default: str) -> Any:
    """Say in the notebook when its stored outputs come from another profile than its own
    default (a smoke run committed where a classroom run did not fit); drop an older such note
    when they do not."""
    import nbformat

    nb.cells = [c for c in nb.cells if OUTPUTS_NOTE_TAG not in c.metadata.get("tags", [])]
    if profile != default:
        note = nbformat.v4.new_markdown_cell(
            f"> **About the outputs stored in this file.** They come from a run in the "
            f"**{profile}** profile, not this notebook's default ({default}): they show that "
            f"every cell works, not the {default} numbers. `make book` stores a {default} run."
        )
        note.metadata["tags"] = [OUTPUTS_NOTE_TAG]
        nb.cells.insert(1, note)
    return nb


def refresh_notebooks(
    profile: str = "classroom",
    only: Sequence[str] | None = None,
    progress: bool = True,
    *,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
) -> list[NotebookRun]:
    """Re-execute the committed notebooks with their own parameters (``make book``) and write
    each back with its outputs, so they read well where no kernel runs (GitHub). The results
    and cache go where the notebooks' defaults say (``../runs/notebooks``, ``../runs/cache``).
    The wall times are recorded in ``timings.json`` and every title's timing cell shows them."""
    import nbformat
    from tqdm.auto import tqdm

    check_choice("profile", profile, PROFILE_NAMES)
    if inside_package(notebooks_dir):
        raise ConfigError(
            f"refresh writes into {notebooks_dir}, inside the installed package; run it from a "
            "repository checkout (make book)"
        )
    notebooks = run.execution_order(sequence_notebooks(only, notebooks_dir))
    runs = []
    with tempfile.TemporaryDirectory() as tmp, run.profile_from_arguments():
        bar = tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb", disable=not progress)
        for path in bar:
            bar.set_postfix_str(path.stem)
            declared = notebook_parameters(path)
            default = str(declared.get("profile", {}).get("default", "")).strip("'\"")
            parameters = {} if default == profile else {"profile": profile}
            output = Path(tmp) / path.name
            seconds = run.execute(path, output, parameters, path.parent)
            nb = _clean_for_commit(nbformat.read(output, as_version=4))
            nb = label_stored_outputs(nb, profile, default)
            text = nbformat.writes(nb)
            write_text_atomic(path, text if text.endswith("\n") else text + "\n")
            runs.append(NotebookRun(path.name, path, seconds))
            if progress:
                bar.write(f"{path.name}: {seconds:.1f} s")
    record_timings(profile, runs, notebooks_dir)
    render_timing_cells(sequence_notebooks(None, notebooks_dir), notebooks_dir)
    return runs


def time_notebooks(
    profile: str = "smoke",
    progress: bool = True,
    *,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
) -> list[NotebookRun]:
    """Run the whole sequence in ``profile`` in a temporary folder (nothing else is written)
    and record its wall times in the notebooks' ``timings.json`` (``make timings``: the smoke
    times the title cells show beside the classroom run ``make book`` records)."""
    if inside_package(notebooks_dir):
        raise ConfigError(f"timings are written into {notebooks_dir}: run from a checkout")
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_sequence(profile, out_dir=tmp, progress=progress, notebooks_dir=notebooks_dir)
    record_timings(profile, runs, notebooks_dir)
    render_timing_cells(sequence_notebooks(None, notebooks_dir), notebooks_dir)
    return runs


def parse_param(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` -> ``(NAME, value)``; VALUE is read as a Python literal (``3``, ``0.5``,
    ``[0, 1]``, ``None``), else kept as a string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ConfigError(f"--param {text!r} must look like NAME=VALUE (e.g. tau=3)")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name, value


def add_tour_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``dihkit tour``."""
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="classroom", help="run profile")
    parser.add_argument(
        "--only", nargs="+", metavar="NN", help="run only these notebooks (prefixes, e.g. 03)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a notebook parameter (a Python literal); repeatable",
    )
    parser.add_argument("--out", default="runs/tour", help="folder for the executed notebooks")
    parser.add_argument(
        "--notebooks", default=str(NOTEBOOKS_DIR), help="folder of the sequence (NN_*.ipynb)"
    )
    parser.add_argument("--no-book", action="store_true", help="skip the HTML book")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run_tour(args: argparse.Namespace) -> int:
    """``dihkit tour``: run the sequence, then write the book into ``OUT/book``. Bad parameters
    (names, and the values :func:`dihkit.runs.profiles.resolve` checks) raise
    :class:`ConfigError` before anything runs. A failing notebook raises a
    :class:`NotebookError`, after the book is written again from what ``OUT`` holds: the failed
    notebook's page shows the run up to its failing cell and says it failed, the pages the tour
    did not reach say they are from an earlier run, and the index marks both; so the book
    never shows an old page as if it were the latest run's."""
    params = dict(parse_param(text) for text in args.param)
    start = time.perf_counter()
    try:
        runs = run_sequence(
            args.profile,
            args.only,
            params,
            args.out,
            progress=not args.quiet,
            notebooks_dir=args.notebooks,
        )
    except NotebookError:
        if not args.no_book:
            index = write_book(args.out, Path(args.out) / "book")
            print(f"book (the failed notebook marked): {index}")
        raise
    for notebook in runs:
        print(f"{notebook.name:<36} {notebook.seconds:8.1f} s")
    print(f"{'sequence':<36} {time.perf_counter() - start:8.1f} s  ({args.profile} profile)")
    if not args.no_book:
        index = write_book(args.out, Path(args.out) / "book")
        print(f"book: {index}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dihkit.book tour [...]``, ``python -m dihkit.book refresh [--only NN]`` or
    ``python -m dihkit.book time [--profile smoke]``."""
    parser = argparse.ArgumentParser(prog="python -m dihkit.book")
    sub = parser.add_subparsers(dest="action", required=True)
    add_tour_arguments(sub.add_parser("tour", help="run the sequence and write the HTML book"))
    refresh = sub.add_parser("refresh", help="re-execute the committed notebooks in place")
    refresh.add_argument("--profile", choices=PROFILE_NAMES, default="classroom")
    refresh.add_argument("--only", nargs="+", metavar="NN")
    timing = sub.add_parser("time", help="time the whole sequence, record it in timings.json")
    timing.add_argument("--profile", choices=PROFILE_NAMES, default="smoke")
    args = parser.parse_args(argv)
    try:
        if args.action == "tour":
            return run_tour(args)
        if args.action == "time":
            for notebook in time_notebooks(args.profile):
                print(f"{notebook.name:<36} {notebook.seconds:8.1f} s")
            return 0
        refresh_notebooks(args.profile, args.only)
        return 0
    except DihkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


__all__ = [
    "NotebookError",
    "NotebookRun",
    "add_tour_arguments",
    "assign_parameters",
    "notebook_parameters",
    "parse_param",
    "profiles_table",
    "refresh_notebooks",
    "run_sequence",
    "run_tour",
    "sequence_notebooks",
    "sequence_table",
    "write_book",
]

if __name__ == "__main__":
    raise SystemExit(main())
