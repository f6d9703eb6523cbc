"""Shared helpers for tests that open pages in a real, offline, headless Chromium.

The browser is Debian's ``chromium`` package driven through Playwright's ``executable_path`` (Playwright's
own browser download needs the network, so it is never used). Every request that is not to an allowed
prefix (``file:``, ``data:``, ``blob:`` and, for JupyterLab tests, the loopback server) is aborted and
remembered, so a page that tries to fetch a script from a CDN fails the same way with or without internet.

Use from a ``conftest.py``::

    @pytest.fixture(scope="session")
    def browser():
        with launch_chromium() as b:
            yield b

Environment:
  ``CHROMIUM_PATH``    the browser binary (default: ``/usr/lib/chromium/chromium``, then ``chromium`` on PATH)
  ``REQUIRE_BROWSER``  ``1`` makes "no Chromium" a failure instead of a skip (CI sets it; so does ``CI=true``)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "CHART_MARKS",
    "Offline",
    "PageReport",
    "chromium_path",
    "find_chromium",
    "launch_chromium",
    "offline_page",
    "open_file_offline",
]

CHART_MARKS = ".vega-embed svg.marks, .vega-embed canvas.marks"
"""Selector of a drawn Vega chart. Plain ``.vega-embed svg`` also matches the actions-menu icon."""

LAUNCH_ARGS = ("--no-sandbox", "--disable-dev-shm-usage")  # root cannot use the sandbox; small /dev/shm in CI


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    candidates = [
        os.environ.get("CHROMIUM_PATH"),
        "/usr/lib/chromium/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def _browser_required() -> bool:
    return os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() == "true"


def chromium_path() -> str:
    """The Chromium binary; skips the test when there is none (fails instead in CI / ``REQUIRE_BROWSER=1``)."""
    path = find_chromium()
    if path is None:
        msg = "no Chromium found (apt-get install -y chromium, or set CHROMIUM_PATH)"
        if _browser_required():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@contextmanager
def launch_chromium() -> Iterator:
    """A headless Playwright ``Browser`` on the system Chromium; closed on exit. Skips without one."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=list(LAUNCH_ARGS))
        try:
            yield browser
        finally:
            browser.close()


class Offline:
    """Playwright route handler: let allowed URL prefixes through, abort and record everything else."""

    def __init__(self, allowed_prefixes: Sequence[str] = ("file:", "data:", "blob:")):
        self.allowed = tuple(allowed_prefixes)
        self.blocked: list[str] = []

    def __call__(self, route) -> None:  # Playwright calls a route handler with exactly one argument
        url = route.request.url
        if url.startswith(self.allowed):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@dataclass
class PageReport:
    """What an offline page did: requests blocked, uncaught JS errors, console errors."""

    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@contextmanager
def offline_page(
    browser, allowed_prefixes: Sequence[str] = ("file:", "data:", "blob:"), *, width: int = 1280, height: int = 900
) -> Iterator[tuple[object, PageReport]]:
    """A new page in its own context with the network blocked; yields ``(page, report)``."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    offline = Offline(allowed_prefixes)
    ctx.route("**/*", offline)
    page = ctx.new_page()
    page.set_default_timeout(60_000)  # a busy 2-core machine
    report = PageReport(blocked=offline.blocked)
    page.on("pageerror", lambda e: report.page_errors.append(str(e)))
    page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
    try:
        yield page, report
    finally:
        ctx.close()


@contextmanager
def open_file_offline(browser, path: str | Path, **kwargs) -> Iterator[tuple[object, PageReport]]:
    """Open a local HTML file with the network blocked; yields ``(page, report)`` once it has loaded."""
    with offline_page(browser, **kwargs) as (page, report):
        page.goto(Path(path).resolve().as_uri())
        yield page, report
