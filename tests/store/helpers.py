"""Helpers for store tests: a simulated kill, the temporaries a store holds, a fresh synthetic store."""

from __future__ import annotations

from pathlib import Path

from tests.store.test_store import FINGERPRINT, KEYS
from workbench.store import StoreWriter
from workbench.store import format as fmt


class Killed(BaseException):
    """The process died here (a BaseException, as nothing may catch a SIGKILL)."""


def leftovers(root: Path) -> list[str]:
    """Every temporary name under ``root``, relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.startswith(fmt.TMP_PREFIX))


def new_store(root: Path) -> StoreWriter:
    """An empty store with the synthetic keys of ``test_store``, and rank 0's writer."""
    StoreWriter.create(root, keys=KEYS, fingerprint=FINGERPRINT)
    return StoreWriter(root)
