"""The wheel works without a checkout: built offline from a copy of the repository, it carries
the embedded dataset, the bundled teachers, the experiment files and the notebooks under
``dihkit/bundle/``; installed into a fresh virtual environment outside the checkout, the kit's
commands run from an unrelated folder, write only there, and never into site-packages.

The fresh environment gets the heavy dependencies (torch, jupyter, ...) without copies: a
``.pth`` file names the site-packages of the environment running the tests. Python adds a
directory named in a ``.pth`` file to ``sys.path`` without processing the ``.pth`` files in it, so
that environment's editable install of the checkout stays inactive, and ``import dihkit`` finds
the wheel's copy (asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from dihkit.resources import BUNDLE_DIR, bundle_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL_SKIPPED = {".git", ".venv", "runs", "build", "dist", ".cache", "shared"}
SKIPPED_ANYWHERE = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"}
MAX_WHEEL_BYTES = 80_000_000  # 60.2 MB today (cifar10-mini 20 MB, its teachers 27 MB)
COMMAND_TIMEOUT = 300


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What a copy of the checkout leaves out: what .gitignore keeps out of a clone."""
    skipped = {n for n in names if n in SKIPPED_ANYWHERE or n.endswith(".egg-info")}
    here = Path(folder).resolve()
    if here == ROOT:
        skipped |= TOP_LEVEL_SKIPPED & set(names)
    if here == ROOT / "dihkit":
        skipped |= {BUNDLE_DIR} & set(names)
    return skipped


def _quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIHKIT_", "PYTHON", "PIP_"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _run(args: list, cwd: Path, env: dict[str, str], expect: int = 0):
    """Run a command; a different exit status fails the test with its output."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert result.returncode == expect, (
        f"{' '.join(map(str, args))} exited {result.returncode} (expected {expect})\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


def _build_requirements() -> None:
    """Skip (never fail) where this environment cannot build or install a wheel offline."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: no offline wheel build")
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(
            f"setuptools {setuptools.__version__} < 77 (pyproject.toml's build requirement)"
        )
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=False
    )
    if pip.returncode != 0:
        pytest.skip("pip is not available to the test interpreter")
    version = tuple(int(p) for p in pip.stdout.split()[1].split(".")[:2] if p.isdigit())
    if version < (22, 3):
        pytest.skip(f"pip {pip.stdout.split()[1]} has no --python (22.3 and later)")
    if importlib.util.find_spec("papermill") is None:
        pytest.skip("papermill is not installed")


def _package_files(package: Path) -> dict[str, tuple[int, int]]:
    """Every file of the installed package (bytecode caches aside): path -> (size, mtime)."""
    return {
        str(p.relative_to(package)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


PROBE = """\
import json, sys
import dihkit
print(json.dumps({"executable": sys.executable, "dihkit": dihkit.__file__}))
"""


def test_the_wheel_installs_and_runs_without_a_checkout(tmp_path):
    _build_requirements()
    started = time.perf_counter()
    timings = {}

    # 1. Build offline, from a copy of the checkout (the source tree stays untouched).
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_ignore, symlinks=True)
    env = _quiet_env()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", tmp_path / "dist", source],
        cwd=tmp_path,
        env=env,
    )
    for hook, folder in (("build_sdist", "sdist"), ("build_editable", "editable")):
        call = f"from setuptools import build_meta; build_meta.{hook}({str(tmp_path / folder)!r})"
        _run([sys.executable, "-c", call], cwd=source, env=env)
    assert not (source / "dihkit" / BUNDLE_DIR).exists(), "a build wrote into the source tree"
    timings["build"] = time.perf_counter() - started

    # 2. The wheel holds every bundled file under dihkit/bundle/ (the sdist the sources of
    # them); nothing of runs/, no caches; the editable wheel none of them.
    (wheel,) = (tmp_path / "dist").glob("dihkit-*.whl")
    expected = {
        f"dihkit/{BUNDLE_DIR}/{kind}/{name.as_posix()}"
        for kind, names in bundle_files(ROOT).items()
        for name in names
    }
    assert {"dihkit/bundle/data/fmnist_mini.npz", "dihkit/bundle/data/teachers/manifest.json"} < (
        expected
    )
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    bundled_names = {n for n in names if n.startswith(f"dihkit/{BUNDLE_DIR}/")}
    assert bundled_names == expected, f"unexpected: {sorted(bundled_names - expected)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"  # name-version.dist-info
    assert f"{dist_info}/licenses/LICENSE" in names
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert not [n for n in names if n.split("/")[0] in {"runs", "data", "configs", "notebooks"}]
    assert wheel.stat().st_size < MAX_WHEEL_BYTES, f"{wheel.name}: {wheel.stat().st_size} bytes"
    (sdist,) = (tmp_path / "sdist").glob("dihkit-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    from_sources = {n.removeprefix(f"dihkit/{BUNDLE_DIR}/") for n in expected}
    assert from_sources <= members, f"missing from the sdist: {sorted(from_sources - members)}"
    assert not [m for m in members if m.startswith(f"dihkit/{BUNDLE_DIR}")]
    (editable,) = (tmp_path / "editable").glob("dihkit-*.whl")
    with zipfile.ZipFile(editable) as archive:
        assert not [n for n in archive.namelist() if f"/{BUNDLE_DIR}/" in n]

    # 3. A fresh environment outside the checkout; the wheel installed first (pip then sees no
    # other dihkit), the test environment's site-packages added after.
    venv = tmp_path / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment: {made.stderr.strip()[-300:]}")
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index"]
        + ["--no-compile", "-q", wheel],
        cwd=tmp_path,
        env=env,
    )
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
            env=env,
        ).stdout.strip()
    )
    ours = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    ours += site.getsitepackages()
    lines = list(dict.fromkeys(p for p in ours if Path(p).is_dir()))
    (purelib / "_dihkit_test_dependencies.pth").write_text("\n".join(lines) + "\n")
    package = purelib / "dihkit"
    before = _package_files(package)
    timings["install"] = time.perf_counter() - started - sum(timings.values())

    # 4. From an unrelated folder: the package and its bundle are the wheel's.
    work = tmp_path / "work"
    work.mkdir()
    env = _quiet_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        # where a pip-installed nbconvert would have put its templates: the test environment's
        JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
    )
    where = json.loads(
        _run(
            [
                python,
                "-c",
                "import json, dihkit, dihkit.resources as r, dihkit.book.tour as t, "
                "dihkit.data.datasets as d, dihkit.teachers.bundled as b, "
                "dihkit.reproduce.config as c; print(json.dumps({'dihkit': dihkit.__file__, "
                "'checkout': str(r.checkout_root()), 'data': str(d.FMNIST_MINI_PATH), "
                "'teachers': str(b.TEACHER_DIR), 'configs': str(c.CONFIG_DIR), "
                "'notebooks': str(t.NOTEBOOKS_DIR)}))",
            ],
            cwd=work,
            env=env,
        ).stdout
    )
    assert Path(where["dihkit"]).parent == package, where
    assert where["checkout"] == "None", where
    for key in ("data", "teachers", "configs", "notebooks"):
        assert Path(where[key]).is_relative_to(package / BUNDLE_DIR), (key, where)
        assert Path(where[key]).exists(), (key, where)

    dihkit = bin_dir / "dihkit"
    teachers = _run([dihkit, "teachers"], cwd=work, env=env)
    assert "resnet56" in teachers.stdout and "fmnist-mini" in teachers.stdout
    train = [dihkit, "train", "--model", "resnet8", "--dataset", "fmnist-mini", "--epochs", "1"]
    train += ["--train-per-class", "10", "--device", "cpu", "--quiet", "--out", "runs/train"]
    _run(train, cwd=work, env=env)
    assert (work / "runs" / "train" / "best.pt").is_file()
    listed = _run([dihkit, "reproduce", "--list"], cwd=work, env=env)
    assert "dih-table2-cifar10" in listed.stdout and "mhkd-table1" in listed.stdout
    timings["commands"] = time.perf_counter() - started - sum(timings.values())

    # 5. dihkit notebooks: the sequence copied out; a second copy refuses, naming the file and
    # the flag (--overwrite itself: tests/test_book.py).
    course = work / "course" / "notebooks"
    _run([dihkit, "notebooks", course], cwd=work, env=env)
    copied = sorted(p.name for p in course.iterdir())
    assert copied == sorted(p.name for p in Path(where["notebooks"]).iterdir()), copied
    assert {"00_tour.ipynb", "07_comparison.ipynb", "README.md", "nbval_sanitize.cfg"} <= set(
        copied
    )
    again = _run([dihkit, "notebooks", course], cwd=work, env=env, expect=2)
    assert "00_tour.ipynb" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr

    # 6. papermill from the fresh environment runs a copied notebook in the smoke profile (from
    # its folder: it records into course/runs/), plus one cell at the end that reports the
    # kernel's interpreter (the fresh environment's) and its dihkit (the wheel's).
    nb = nbformat.read(course / "07_comparison.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    nbformat.write(nb, work / "07_probed.ipynb")
    executed = work / "07_comparison-smoke.ipynb"
    papermill = [python, "-m", "papermill", "--kernel", "python3", "--no-progress-bar"]
    papermill += [work / "07_probed.ipynb", executed, "-p", "profile", "smoke"]
    _run(papermill, cwd=course, env=env)
    output = nbformat.read(executed, as_version=4).cells[-1].outputs
    kernel = json.loads("".join(o.get("text", "") for o in output if o.output_type == "stream"))
    assert Path(kernel["executable"]).parent == bin_dir, kernel
    assert Path(kernel["dihkit"]).parent == package, kernel
    assert (course.parent / "runs" / "notebooks" / "07_comparison" / "results.json").is_file()
    timings["notebooks"] = time.perf_counter() - started - sum(timings.values())

    # 7. dihkit tour with the bundled sequence (its default --notebooks): the executed notebook
    # and the book go to --out; the book leaves out the JavaScript it has no local copy of.
    tour = _run(
        [dihkit, "tour", "--profile", "smoke", "--only", "00", "--out", "tour", "--quiet"],
        cwd=work,
        env=_quiet_env(**{**env, "DIHKIT_JS_DIR": str(tmp_path / "no-js")}),
    )
    assert "leave those scripts out" in tour.stdout and "dihkit.book.assets" in tour.stdout
    assert (work / "tour" / "00_tour.ipynb").is_file()
    assert (work / "tour" / "00_tour" / "results.json").is_file()
    assert (work / "tour" / "book" / "index.html").is_file()
    assert (work / "tour" / "book" / "00_tour.html").is_file()
    timings["tour"] = time.perf_counter() - started - sum(timings.values())

    # 8. Nothing was written into the installed package.
    assert _package_files(package) == before
    print(
        f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB; "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
    )
