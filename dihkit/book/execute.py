"""Executing the sequence's notebooks with papermill: which notebooks, which parameters each
gets (names and values checked before anything runs), one notebook's execution, and the
record of every run in ``sequence.json``.

``sequence.json`` holds, per notebook, its wall time and parameters, and the state the latest
tour left it in: no ``state`` (current), ``"failed"`` (with ``error``: its executed copy shows
the failing cell) or ``"stale"`` (with ``stopped_at``: the tour stopped at an earlier notebook
before reaching it, so its executed copy is from an earlier run). The book
(:mod:`dihkit.book.html`) marks those pages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dihkit.book.html import NOTEBOOK_PATTERN, SEQUENCE_FILE
from dihkit.errors import ConfigError, DihkitError
from dihkit.files import write_json_atomic
from dihkit.runs.profiles import Settings, resolve

KERNEL = "python3"
RUN_PARAMETERS = ("profile", "out_dir", "cache_dir")  # set by run_sequence itself
# the notebook parameters that dihkit.runs.profiles.resolve checks (every notebook passes them)
RESOLVED_PARAMETERS = {f.name for f in dataclasses.fields(Settings)} - {"profile"} | {"seed"}


class NotebookError(DihkitError):
    """A notebook of the sequence raised an exception; the executed copy shows where."""

    def __init__(self, notebook: str, ename: str, evalue: str, output: Path) -> None:
        super().__init__(f"notebook {notebook} failed: {ename}: {evalue} (see {output})")
        self.notebook, self.ename, self.evalue, self.output = notebook, ename, evalue, output


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook of the sequence."""

    name: str  # the file name, e.g. 03_intermediate_heads.ipynb
    output: Path
    seconds: float


def reads_results(path: Path) -> bool:
    """Whether a notebook reads the results the others record (its metadata says
    ``"dihkit": {"reads_results": true}``, as 07_comparison's does)."""
    import json

    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return False
    return bool(metadata.get("dihkit", {}).get("reads_results"))


def execution_order(notebooks: Sequence[Path]) -> list[Path]:
    """The order to execute ``notebooks`` in: their own, except that the notebooks that read
    the others' results run after all the others (so 07_comparison sees 08's runs)."""
    readers = [n for n in notebooks if reads_results(n)]
    return [n for n in notebooks if n not in readers] + readers


def sequence_notebooks(only: Sequence[str] | None, notebooks_dir: str | Path) -> list[Path]:
    """The sequence's notebooks in order; ``only`` keeps those whose name starts with one of the
    given prefixes (``"03"``, ``"3"`` or ``"03_intermediate_heads"``)."""
    notebooks = sorted(Path(notebooks_dir).glob(NOTEBOOK_PATTERN))
    if not notebooks:
        raise ConfigError(f"no notebooks (NN_*.ipynb) in {str(notebooks_dir)!r}")
    if not only:
        return notebooks

    def matches(path: Path, prefix: str) -> bool:
        prefix = str(prefix).removesuffix(".ipynb")
        if prefix.isdigit():
            return int(prefix) == int(path.name[:2])
        return path.stem.startswith(prefix)

    unknown = [p for p in only if not any(matches(n, p) for n in notebooks)]
    if unknown:
        raise ConfigError(
            f"--only {' '.join(map(str, unknown))} matches no notebook; the sequence: "
            + ", ".join(n.stem for n in notebooks)
        )
    return [n for n in notebooks if any(matches(n, p) for p in only)]


def notebook_parameters(path: str | Path) -> dict[str, dict[str, Any]]:
    """The names declared in a notebook's ``parameters`` cell, with papermill's description of
    each (``default``, ``inferred_type_name``, ``help``)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def assign_parameters(
    params: Mapping[str, Any] | None, notebooks: Sequence[Path]
) -> dict[Path, dict[str, Any]]:
    """Split ``params`` between ``notebooks``: each gets the names its parameters cell declares.
    A name that no notebook declares is a :class:`ConfigError` naming it and the valid names."""
    params = dict(params or {})
    reserved = sorted(set(params) & set(RUN_PARAMETERS))
    if reserved:
        raise ConfigError(
            f"--param {', '.join(reserved)} is set by the tour itself; use --profile and --out"
        )
    declared = {path: notebook_parameters(path) for path in notebooks}
    known = sorted({name for names in declared.values() for name in names} - set(RUN_PARAMETERS))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown notebook parameter(s) {', '.join(unknown)}; the selected notebooks "
            f"declare: {', '.join(known)}"
        )
    return {
        path: {name: value for name, value in params.items() if name in names}
        for path, names in declared.items()
    }


def check_parameter_values(profile: str, params: Mapping[str, Any]) -> None:
    """Check the values of the parameters every notebook validates with
    :func:`dihkit.runs.profiles.resolve` (seed, seeds, epochs, teacher, ...) before any
    notebook runs, one at a time, so a bad one fails at once, naming the parameter given,
    rather than inside the first notebook that declares it. Other parameters (a method's
    ``alpha`` differs between notebooks) are left to the notebooks."""
    with profile_from_arguments():
        for name, value in params.items():
            if name in RESOLVED_PARAMETERS and value is not None:
                resolve(profile, **{name: value})


@contextlib.contextmanager
def profile_from_arguments() -> Iterator[None]:
    """Hide ``DIHKIT_PROFILE`` from the kernels while the sequence runs: an explicit profile
    wins over the environment."""
    saved = os.environ.pop("DIHKIT_PROFILE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["DIHKIT_PROFILE"] = saved


def _kernel_manager_class() -> type | None:
    """On POSIX, a kernel manager that talks to the kernel over local IPC sockets instead of
    TCP on localhost (which makes every kernel warn that its traffic is unencrypted); None
    (nbclient's default, TCP) elsewhere."""
    if os.name != "posix":
        return None
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def execute(source: Path, output: Path, parameters: Mapping[str, Any], cwd: Path) -> float:
    """Execute one notebook with papermill; its wall time in seconds. A failing cell is a
    :class:`NotebookError` (the executed copy at ``output`` shows it)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=dict(parameters),
            kernel_name=KERNEL,
            cwd=str(cwd),
            progress_bar=False,
            **({"kernel_manager_class": manager} if (manager := _kernel_manager_class()) else {}),
        )
    except PapermillExecutionError as error:
        raise NotebookError(source.name, error.ename, error.evalue, output) from None
    return time.perf_counter() - start


def _recorded(out_dir: Path, profile: str) -> dict[str, dict[str, Any]]:
    """The entries of ``out_dir/sequence.json`` if it was written for ``profile`` (an unreadable
    one counts as empty: it only holds wall times and states)."""
    path = out_dir / SEQUENCE_FILE
    try:
        recorded = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(recorded, dict) or recorded.get("profile") != profile:
        return {}
    notebooks = recorded.get("notebooks", {})
    if not isinstance(notebooks, dict):
        return {}
    return {name: entry for name, entry in notebooks.items() if isinstance(entry, dict)}


def record(out_dir: Path, profile: str, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge ``entries`` (notebook file name -> its entry, replacing the old one) into
    ``out_dir/sequence.json``, written atomically; the entries of another profile are dropped."""
    notebooks = _recorded(out_dir, profile)
    notebooks.update({name: dict(entry) for name, entry in entries.items()})
    payload = {"profile": profile, "notebooks": dict(sorted(notebooks.items()))}
    write_json_atomic(out_dir / SEQUENCE_FILE, payload, default=repr)


def record_run(out_dir: Path, profile: str, params: Mapping[str, Any], run: NotebookRun) -> None:
    """A notebook that ran to the end: its wall time and parameters, current."""
    record(out_dir, profile, {run.name: {"seconds": round(run.seconds, 2), "params": params}})


def record_failure(
    out_dir: Path,
    profile: str,
    params: Mapping[str, Any],
    error: NotebookError,
    seconds: float,
    skipped: Sequence[Path],
) -> None:
    """A notebook that failed (``state: failed`` with the error), and those of the selection
    after it that the tour did not reach (``state: stale``, where an executed copy from an
    earlier run is left)."""
    entries: dict[str, dict[str, Any]] = {
        error.notebook: {
            "seconds": round(seconds, 2),
            "params": dict(params),
            "state": "failed",
            "error": f"{error.ename}: {error.evalue}",
        }
    }
    old = _recorded(out_dir, profile)
    for notebook in skipped:
        if (out_dir / notebook.name).is_file():
            entry = old.get(notebook.name, {})
            entries[notebook.name] = {**entry, "state": "stale", "stopped_at": error.notebook}
    record(out_dir, profile, entries)
