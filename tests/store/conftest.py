"""Fixtures for store tests: a kill simulated at the rename that would have committed a write."""

from __future__ import annotations

import os

import pytest

from tests.store.helpers import Killed
from workbench.store import format as fmt


@pytest.fixture
def die_on_replace(monkeypatch):
    """``die_on_replace(part, skip=n)``: the (n+1)-th ``os.replace`` onto a path containing ``part`` kills.

    Afterwards the 'process' is a new one: ``os.replace`` works again and ``os.getpid`` differs, as after a
    real crash and restart.
    """
    real, new_pid = os.replace, os.getpid() + 100_000

    def arm(part: str, skip: int = 0) -> None:
        seen = [0]

        def replace(src, dst):
            seen[0] += part in str(dst)
            if part in str(dst) and seen[0] > skip:
                monkeypatch.setattr(fmt.os, "replace", real)
                monkeypatch.setattr(fmt.os, "getpid", lambda: new_pid)
                raise Killed
            return real(src, dst)

        monkeypatch.setattr(fmt.os, "replace", replace)

    return arm
