"""Atomic file writes: a file appears complete under its name, or not at all.

Everything the workbench writes for later reading (traces, manifests, weights, checkpoints, tables) goes
through :func:`atomic_path`: the writer fills a temporary file in the destination folder, and only a
finished file is renamed onto the final name with ``os.replace`` (atomic on POSIX and Windows). A crash or
an exception leaves the previous file untouched and removes the temporary one.

Temporary names start with ``.tmp-`` and carry the process and thread, so concurrent writers never share
one. The step store keeps its own owner-tagged scheme (``workbench.store.format``) because its resume logic
reads those names.

This module imports nothing from the workbench, so every layer may use it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_table"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``, on an error it is removed.

    The parent folder is created. Write the temporary file with any writer that takes a path
    (``safetensors.torch.save_file``, ``torch.save``, ``DataFrame.to_parquet`` ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}-{threading.get_ident()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, **dumps_kwargs) -> Path:
    """Write ``json.dumps(obj, **dumps_kwargs)`` to ``path`` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def atomic_write_table(frame, path: str | os.PathLike) -> Path:
    """A pandas DataFrame as Parquet (``.parquet``) or CSV (any other suffix), without its index, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path
