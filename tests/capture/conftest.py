"""Fixtures for capture tests."""

from __future__ import annotations

import pytest

from tests.capture.helpers import toy_traces


@pytest.fixture(scope="module")
def traces():
    """Ten toy traces (about 50 steps, 100–180 tokens each)."""
    return toy_traces(10)
