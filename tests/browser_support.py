"""Helpers of the browser tests (``pytest -m browser``): Debian's Chromium driven by playwright,
a JupyterLab server on a free localhost port, and a network guard for pages that must work
offline. Nothing here downloads a browser: a missing Chromium or playwright skips the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "runs" / "browser-tests"
CHROMIUM_ENV = "DIHKIT_CHROMIUM"  # a Chromium binary other than Debian's /usr/bin/chromium
CHROMIUM_NAMES = ("chromium", "chromium-browser")
TIMEOUT_MS = 60_000  # playwright's default for every action and wait


def chromium_path() -> str | None:
    """The Chromium binary: ``$DIHKIT_CHROMIUM``, else Debian's ``chromium`` on the PATH."""
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        return given if Path(given).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a playwright ``Browser``), closed afterwards; skips the test when
    playwright or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.skip(f"playwright is not importable ({error}); pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium, or set $DIHKIT_CHROMIUM); "
            "the browser tests never download one"
        )
    manager = sync_playwright().start()
    try:
        browser = manager.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        manager.stop()


def artifact(name: str) -> Path:
    """A path under ``runs/browser-tests/`` for a screenshot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


@dataclass
class PageLog:
    """What a page reported: console errors, uncaught exceptions and blocked requests."""

    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.set_default_timeout(TIMEOUT_MS)
        return page


def block_network(context: Any, log: PageLog, allowed: tuple[str, ...] = ("file:",)) -> None:
    """Abort every request of ``context`` whose URL does not start with one of ``allowed``,
    recording it in ``log.blocked``."""

    def handle(route: Any) -> None:
        url = route.request.url
        if url.startswith(allowed):
            route.continue_()
        else:
            log.blocked.append(url)
            route.abort()

    context.route("**/*", handle)


# --------------------------------------------------------------------------------------------
# JupyterLab


LAB_SETTINGS = {  # user settings of the test server: every cell in the DOM, no news pop-up
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@dataclass(frozen=True)
class LabServer:
    """A running ``jupyter lab``: its base URL, token and root folder."""

    url: str
    token: str
    root: Path
    log: Path

    def page_url(self, path: str) -> str:
        """``path`` opened alone in a fresh workspace (no tabs restored from an earlier page)."""
        return f"{self.url}/lab/workspaces/{secrets.token_hex(4)}/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_environment(state: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The server's (and so its kernels') environment: this checkout first on ``PYTHONPATH``,
    one compute thread, and Jupyter's config, data, runtime and settings under ``state``."""
    for key, values in LAB_SETTINGS.items():
        plugin, _, name = key.rpartition("/")
        path = state / "settings" / plugin / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "OMP_NUM_THREADS": "1",
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "IPYTHONDIR": str(state / "ipython"),
        **extra,
    }


def _stop(process: subprocess.Popen, server: LabServer) -> None:
    """Shut the server and its kernels down through the API, then end its process group."""
    with contextlib.suppress(OSError, urllib.error.URLError):
        server.api("shutdown", method="POST")
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # anything left in its process group
        os.killpg(process.pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the server's process (Linux): be killed when the test process dies, even killed
    outright (a CI timeout) before its cleanup ran; its kernels follow (ipykernel exits when
    its parent does). SIGKILL: a server stopping on SIGTERM can wait on a starting kernel."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def jupyter_lab(
    root: Path, state: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Iterator[LabServer]:
    """``jupyter lab`` serving ``root`` on a free localhost port with a fresh token (no browser
    opened; ``--allow-root`` only as root), stopped when the block ends, also on failure."""
    port, token = free_port(), secrets.token_hex(16)
    state.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    server = LabServer(f"http://127.0.0.1:{port}", token, root, state / "server.log")
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=lab_environment(state, env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited early:\n{server.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jupyter lab not up in {timeout} s:\n{server.log_tail()}")
                with contextlib.suppress(OSError, urllib.error.URLError):
                    server.api("status", timeout=2)
                    break
                time.sleep(0.3)
            yield server
        finally:
            _stop(process, server)


KERNEL_IDLE = ".jp-StatusBar-TextItem[title^='Change kernel']:text-matches('Idle$')"


def run_all_cells(page: Any, server: LabServer, path: str, timeout_ms: int = 300_000) -> None:
    """Open ``path`` in JupyterLab, wait until its kernel is connected and idle (the status bar
    says so; the toolbar's indicator reads idle before the kernel exists, and running then asks
    for a kernel), run every cell from the Run menu and wait until each code cell has an
    execution count and the kernel is idle again."""
    page.goto(server.page_url(path))
    page.wait_for_selector(KERNEL_IDLE, timeout=120_000)
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    page.wait_for_function(
        """() => {
          const prompts = [...document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
          return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout_ms,
    )
    page.wait_for_selector(KERNEL_IDLE, timeout=timeout_ms)


def settled(
    read: Callable[[], Any],
    before: Any,
    until: Callable[[Any], bool] = lambda _: True,
    timeout: float = 60,
    quiet: float = 0.5,
) -> Any:
    """What ``read()`` returns once it differs from ``before``, satisfies ``until`` and has
    stayed the same for ``quiet`` seconds (a kernel's reply arrives as several widget updates,
    and each key press on a slider sends its own)."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while True:
        if last != before and until(last) and time.monotonic() - since >= quiet:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not get there within {timeout} s: {last!r}")
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()


def cell_errors(page: Any) -> list[str]:
    """The text of every error output and every widget that failed to display."""
    return page.evaluate(
        """() => [
          ...[...document.querySelectorAll(
              ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")]
             .map(e => e.textContent.slice(0, 2000)),
          ...[...document.querySelectorAll('.jp-OutputArea-output')]
             .filter(e => /Error displaying widget|Failed to load model/.test(e.textContent))
             .map(e => e.textContent.slice(0, 500)),
        ]"""
    )
