"""Fixtures for the viz tests: one offline headless Chromium per session (see tests/browser.py)."""

from __future__ import annotations

import pytest

from tests.browser import launch_chromium


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (skipped when none is installed; a failure in CI)."""
    with launch_chromium() as b:
        yield b
