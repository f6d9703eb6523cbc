"""A real JupyterLab for browser tests: started on loopback with a token, driven by headless Chromium.

:func:`running_lab` starts ``python -m jupyterlab`` on 127.0.0.1 (a free port, a random token, no browser)
with its own config, data, runtime, settings and workspace folders in a temp directory, so nothing of the
user's set-up leaks in and nothing of the test leaks out; it serves a temp root folder (JupyterLab
autosaves outputs into the notebooks it serves, so tests put copies there).

The page helpers know JupyterLab's one flaky spot: the toolbar's execution indicator says "idle" before
a kernel exists, and a Run All sent then is silently dropped. :func:`open_notebook` therefore waits for
the session's kernel itself (ready, connected, idle) through ``window.jupyterapp`` (exposed by
``--LabApp.expose_app_in_browser``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Lab", "running_lab", "open_notebook", "run_all_cells", "wait_all_executed", "PANEL", "STDERR"]

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
"""The notebook panel in front."""
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
"""Outputs written to stderr (tracebacks land here)."""

# Settings files: no "get Jupyter news?" toast over the widgets, no windowing (off-screen cells render).
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        # ?reset: start from an empty workspace instead of restoring old tabs
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, token: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"jupyter lab not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


@contextmanager
def running_lab(base: Path, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """Start JupyterLab serving ``base/root``; stop it (and its kernels) on exit."""
    root, home = base / "root", base / "home"
    root.mkdir(parents=True, exist_ok=True)
    settings = home / "user-settings"
    for rel, data in _SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(data))
    port, token = _free_port(), secrets.token_hex(16)
    full_env = {**os.environ, **(env or {})}
    full_env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to start as root without it
    log = base / "jupyter.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=root, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, url, token, log)
            yield Lab(url=url, token=token, root=root, log=log)
        finally:
            proc.terminate()  # lets the server shut its kernels down
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # backstop: the group we started (server + kernels)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


_KERNEL_READY_JS = """(n) => {
    const panel = document.querySelector('PANEL');
    if (!panel || panel.querySelectorAll('.jp-CodeCell').length !== n) return false;
    const app = window.jupyterapp;
    const sc = app && app.shell.currentWidget && app.shell.currentWidget.sessionContext;
    const k = sc && sc.session && sc.session.kernel;
    return !!(sc && sc.isReady && k && k.status === 'idle' && k.connectionStatus === 'connected');
}""".replace("PANEL", PANEL)

PROMPTS_JS = (
    f"() => [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim())"
)


def open_notebook(page, lab: Lab, name: str, n_code_cells: int, timeout_ms: int = 120_000) -> None:
    """Open ``name`` and wait until its cells exist and its kernel is connected and idle."""
    page.goto(lab.notebook_url(name))
    page.wait_for_function(_KERNEL_READY_JS, arg=n_code_cells, timeout=timeout_ms)


def run_all_cells(page, attempts: int = 3) -> int:
    """Run All through JupyterLab's command; re-send if no cell started within 15 s. Returns the attempt."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, attempts + 1):
        # `void`: the command's promise resolves only when execution ends (or never); do not await it
        page.evaluate("void window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(f"() => ({PROMPTS_JS})().some(t => t !== '[ ]:')", timeout=15_000)
            return attempt
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"Run All never started: prompts {page.evaluate(PROMPTS_JS)}")


def wait_all_executed(page, timeout_ms: int = 300_000) -> list[str]:
    """Wait until every prompt reads ``[n]:`` (or a cell failed and the rest were skipped); return the prompts."""
    page.wait_for_function(
        """() => {
            const p = (PROMPTS)();
            const done = p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t));
            const failed = [...document.querySelectorAll('STDERR')].some(e => e.textContent.includes('Traceback'))
                && !p.some(t => t === '[*]:');
            return done || failed;
        }""".replace("PROMPTS", PROMPTS_JS).replace("STDERR", STDERR),
        timeout=timeout_ms,
    )
    return page.evaluate(PROMPTS_JS)
