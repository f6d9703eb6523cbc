"""The on-disk layout of a step-activation store, and the atomic file operations that build it.

A store is a directory::

    manifest.json                   provenance, key schema, counts (rewritten atomically)
    shards/r000-000000/             one committed shard: rank 0, sequence number 0
        shard.json                  counts and the segmenters seen in this shard
        index.parquet               one row per step (all steps, captured or not)
        <key>.safetensors           one tensor "data" per key, rows in index order (captured rows only)
    shards/.tmp-r000-000001/        a shard being written (invisible; removed when its writer reopens)
    labels/<name>.parquet           label columns added later, joined on (trace_id, step_index)

A shard becomes visible in one step: its files are written and fsynced inside a ``.tmp-`` directory,
which is then renamed to its final name (``os.replace`` of a directory is atomic on POSIX). A crash at
any moment therefore leaves either a complete shard or an invisible temporary one, never half a shard.

Keys name tensors: ``{hook}/{pooling}`` for step vectors (``blocks.3.hook_resid_post/boundary``) and
``tokens/{name}`` for token-level features. Files are the key with ``/`` written as ``__``. Tensors are
read through the safetensors format only (never pickle): the header via ``safe_open``, row gathers via a
NumPy memory map of the documented layout (8-byte header length, JSON header, raw little-endian data).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import save_file

__all__ = [
    "FORMAT",
    "MANIFEST",
    "SHARDS",
    "LABELS",
    "key_to_filename",
    "shard_name",
    "parse_shard_name",
    "ShardId",
    "atomic_write_json",
    "atomic_write_parquet",
    "fsync_dir",
    "save_tensor",
    "TensorFile",
    "remove_tree",
    "committed_shards",
]

FORMAT = "workbench.step-store/1"
MANIFEST = "manifest.json"
SHARDS = "shards"
LABELS = "labels"
TMP_PREFIX = ".tmp-"

_ST_DTYPES = {
    "F32": (np.float32, torch.float32),
    "F16": (np.float16, torch.float16),
    "BF16": (np.int16, torch.bfloat16),  # NumPy has no bfloat16: map the bits, view them in torch
    "F64": (np.float64, torch.float64),
    "I64": (np.int64, torch.int64),
    "I32": (np.int32, torch.int32),
    "I16": (np.int16, torch.int16),
    "U8": (np.uint8, torch.uint8),
    "BOOL": (np.bool_, torch.bool),
}


def key_to_filename(key: str) -> str:
    """``blocks.3.hook_resid_post/boundary`` → ``blocks.3.hook_resid_post__boundary.safetensors``."""
    if "__" in key or not key or key.startswith("."):
        raise ValueError(f"key={key!r}: keys may not be empty, start with '.', or contain '__'")
    return key.replace("/", "__") + ".safetensors"


def shard_name(rank: int, seq: int) -> str:
    return f"r{rank:03d}-{seq:06d}"


class ShardId(NamedTuple):
    """Which rank wrote a shard, and its sequence number on that rank."""

    rank: int
    seq: int


def parse_shard_name(name: str) -> ShardId | None:
    """The :class:`ShardId` of a committed shard directory name, None for anything else."""
    if len(name) != 11 or name[0] != "r" or name[4] != "-":
        return None
    try:
        return ShardId(int(name[1:4]), int(name[5:]))
    except ValueError:
        return None


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write_json(path: Path, obj: dict) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``: readers see old or new, never half."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    pq.write_table(table, tmp)
    _fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_tensor(path: Path, tensor: torch.Tensor, key: str) -> None:
    """Save one tensor as ``data`` in a safetensors file (inside a temporary shard directory) and fsync it."""
    save_file({"data": tensor.contiguous()}, str(path), metadata={"key": key})
    _fsync_file(path)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class TensorFile:
    """The ``data`` tensor of one safetensors file, memory-mapped read-only."""

    path: Path
    shape: tuple[int, ...]
    dtype: torch.dtype
    array: np.memmap | np.ndarray
    """Rows of the tensor as a read-only memory map (bfloat16 as its int16 bits)."""

    @classmethod
    def open(cls, path: Path) -> TensorFile:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        info = header["data"]
        np_dtype, torch_dtype = _ST_DTYPES[info["dtype"]]
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        if end == begin:  # an empty shard: np.memmap refuses zero-length maps
            array = np.zeros(shape, dtype=np_dtype)
        else:
            array = np.memmap(path, dtype=np_dtype, mode="r", offset=8 + n + begin, shape=shape)
        return cls(path=path, shape=shape, dtype=torch_dtype, array=array)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, idx: np.ndarray | slice) -> torch.Tensor:
        """Copy the selected rows out of the map into a tensor."""
        part = np.array(self.array[idx], copy=True, order="C")  # detach from the map: the caller owns it
        t = torch.from_numpy(part)
        return t.view(torch.bfloat16) if self.dtype == torch.bfloat16 else t


def committed_shards(root: Path) -> list[Path]:
    """Committed shard directories of a store, in (rank, seq) order; temporary ones are ignored."""
    shards = root / SHARDS
    if not shards.is_dir():
        return []
    found = [(parsed, p) for p in shards.iterdir() if p.is_dir() and (parsed := parse_shard_name(p.name))]
    return [p for _, p in sorted(found)]
