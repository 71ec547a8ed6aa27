"""Each notebook's measured wall time per profile, as its title states it.

``notebooks/timings.json`` (committed, bundled with the notebooks) holds, per profile, the
seconds each notebook took in the last recorded run of the whole sequence, with the date and the
machine's CPU count: ``make book`` records the classroom run it commits, ``make timings`` a smoke
run. The second cell of every notebook (tagged ``timings``) shows :func:`timings_markdown` of
that file; after recording, :func:`render_timing_cells` writes that cell's output again in the
committed notebooks from the file, so the stored text and the file agree (the cell's output is a
pure function of the file). Nothing here is typed by hand.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dihkit.book.execute import NotebookRun
from dihkit.files import UnreadableFileError, read_json, write_json_atomic, write_text_atomic
from dihkit.resources import bundled
from dihkit.training.runtime import numeric_environment

TIMINGS_FILE = "timings.json"
TIMINGS_TAG = "timings"
ORDER = ("smoke", "classroom", "paper")
NOT_MEASURED = {"paper": "needs a GPU; not measured on a CPU (see `dihkit reproduce --estimate`)"}


def timings_path(notebooks_dir: str | Path | None = None) -> Path:
    """Where the timings live: ``notebooks_dir/timings.json`` (default: the bundled notebooks)."""
    return Path(notebooks_dir if notebooks_dir is not None else bundled("notebooks")) / TIMINGS_FILE


def read_timings(notebooks_dir: str | Path | None = None) -> dict[str, Any]:
    """The recorded timings (``{profile: {"date", "cpus", "cpu", "threads", "notebooks":
    {stem: seconds}}}``; ``cpu`` and ``threads`` only in records made since they were kept);
    empty when none were recorded or the file does not parse."""
    try:
        value = read_json(timings_path(notebooks_dir))
    except UnreadableFileError:
        return {}
    return value if isinstance(value, dict) else {}


def record_timings(
    profile: str,
    runs: Sequence[NotebookRun],
    notebooks_dir: str | Path | None = None,
    *,
    date: str | None = None,
) -> Path:
    """Record the wall time of every notebook in ``runs`` under ``profile`` (replacing that
    profile's notebooks that ran, keeping the others), with today's date, the CPU count, the
    processor's model and torch's thread count (the kernels run in this environment)."""
    timings = read_timings(notebooks_dir)
    machine = numeric_environment(torch.device("cpu"))  # the kernels ran on this CPU
    entry = timings.get(profile, {})
    notebooks = dict(entry.get("notebooks", {}))
    notebooks.update({Path(r.name).stem: round(r.seconds, 1) for r in runs})
    timings[profile] = {
        "date": date or datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "cpu": machine["cpu"],
        "threads": machine["threads"],
        "notebooks": dict(sorted(notebooks.items())),
    }
    ordered = {p: timings[p] for p in sorted(timings, key=_profile_rank)}
    return write_json_atomic(timings_path(notebooks_dir), ordered)


def _profile_rank(profile: str) -> tuple[int, str]:
    return (ORDER.index(profile) if profile in ORDER else len(ORDER), profile)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def timings_markdown(notebook: str, notebooks_dir: str | Path | None = None) -> str:
    """One line for a notebook's title: its measured wall time in each profile (from the last
    recorded run of that profile, with the date and CPU count), "not measured yet" where none
    was recorded, and why the paper profile is not measured here."""
    stem = Path(notebook).stem
    timings = read_timings(notebooks_dir)
    parts = []
    for profile in ORDER:
        entry = timings.get(profile, {})
        seconds = entry.get("notebooks", {}).get(stem)
        if seconds is not None:
            machine = f"{entry.get('cpus', '?')} CPUs" + (
                f" ({entry['cpu']})" if entry.get("cpu") else ""
            )
            parts.append(
                f"**{profile}** {_duration(seconds)} ({machine}, {entry.get('date', '?')})"
            )
        else:
            parts.append(f"**{profile}** {NOT_MEASURED.get(profile, 'not measured yet')}")
    return "**Wall time of this notebook**, measured in the last recorded run: " + "; ".join(parts)


def render_timing_cells(
    notebooks: Sequence[str | Path], notebooks_dir: str | Path | None = None
) -> int:
    """Write the output of each notebook's ``timings`` cell again from the timings file (what
    executing the cell shows); returns how many notebooks changed."""
    import nbformat

    changed = 0
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if TIMINGS_TAG in c.metadata.get("tags", [])]
        if not cells:
            continue
        text = timings_markdown(path.stem, notebooks_dir)
        output = nbformat.v4.new_output(
            "display_data",
            data={"text/markdown": text, "text/plain": "<IPython.core.display.Markdown object>"},
        )
        if cells[0].get("outputs") == [output]:
            continue
        cells[0].outputs = [output]
        written = nbformat.writes(nb)
        write_text_atomic(path, written if written.endswith("\n") else written + "\n")
        changed += 1
    return changed
