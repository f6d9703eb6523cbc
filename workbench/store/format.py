"""The on-disk layout of a step-activation store, and the atomic file operations that build it.

A store is a directory::

    manifest.json                   provenance, key schema, counts (rewritten atomically)
    shards/r000-000000/             one committed shard: rank 0, sequence number 0
        shard.json                  counts and the segmenters seen in this shard
        index.parquet               one row per step (all steps, captured or not)
        <key>.safetensors           one tensor "data" per key, rows in index order (captured rows only)
    shards/.tmp-r000-000001/        a shard being written (invisible; removed when its writer reopens)
    .tmp-manifest.json.r000-<pid>   a manifest being replaced (removed when rank 0's writer reopens)
    labels/<name>.parquet           label columns added later, joined on (trace_id, step_index)

A shard becomes visible in one step: its files are written and fsynced inside a ``.tmp-`` directory,
which is then renamed to its final name (``os.replace`` of a directory is atomic on POSIX). A crash at
any moment therefore leaves either a complete shard or an invisible temporary one, never half a shard.

Every temporary name carries its owner (``r{rank}-`` for a writer's files, the label set's name for a
label file), and each owner removes its own leftovers when it next writes, so a kill at any moment leaves
nothing behind for good, and one rank never deletes another rank's file in flight.

Keys name tensors: ``{hook}/{pooling}`` for step vectors (``blocks.3.hook_resid_post/boundary``) and
``tokens/{name}`` for token-level features. Files are the key with ``/`` written as ``__``. Tensors are
read through the safetensors format only (never pickle): the header via ``safe_open``, row gathers via a
NumPy memory map of the documented layout (8-byte header length, JSON header, raw little-endian data).
The manifest carries the same layout in words (:func:`layout_doc`) so a store is readable without this
package (``docs/store-format.md`` has a reader in twenty lines of pandas, pyarrow and safetensors).
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
    "remove_temporaries",
    "committed_shards",
    "layout_doc",
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


def _tmp(path: Path, owner: str) -> Path:
    """The temporary sibling of ``path``: ``.tmp-<name>.<owner><pid>`` (the owner removes leftovers)."""
    return path.with_name(f"{TMP_PREFIX}{path.name}.{owner}{os.getpid()}")


def atomic_write_json(path: Path, obj: dict, *, owner: str = "") -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``: readers see old or new, never half.

    ``owner`` (``"r000-"`` for rank 0's writer) tags the temporary name so its owner can find it after a crash.
    """
    tmp = _tmp(path, owner)
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_parquet(path: Path, table: pa.Table, *, owner: str = "") -> None:
    """Write ``table`` to ``path`` atomically; leftovers of an earlier crashed write of ``path`` are removed."""
    for old in path.parent.glob(f"{TMP_PREFIX}{path.name}.*"):  # this file's own earlier attempts
        old.unlink(missing_ok=True)
    tmp = _tmp(path, owner)
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


def remove_temporaries(root: Path, rank: int) -> list[Path]:
    """Remove what a crashed writer of ``rank`` left in ``root``: temporary shards and manifest files.

    Other ranks' temporaries are left alone (they may be writing them now). Rank 0 also removes manifest
    temporaries of the untagged form ``.tmp-manifest.json.<pid>`` written by earlier versions.
    """
    owner = f"r{rank:03d}-"
    found = list((root / SHARDS).glob(f"{TMP_PREFIX}{owner}*")) + list(root.glob(f"{TMP_PREFIX}*.{owner}*"))
    if rank == 0:
        found += [p for p in root.glob(f"{TMP_PREFIX}{MANIFEST}.*") if p.name.rsplit(".", 1)[-1].isdigit()]
    for path in found:
        if path.is_dir():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)
    return found


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
        """Map ``path``; a truncated or corrupted file raises ``ValueError`` naming it."""
        try:
            n, np_dtype, torch_dtype, shape, begin, end = _read_header(path)
        except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:  # JSON errors are ValueError
            raise ValueError(
                f"{path}: truncated or corrupted safetensors file ({type(e).__name__}: {e}). Restore it, or "
                f"delete its shard folder {path.parent.name} and resume the capture to write those traces again"
            ) from e
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


def _read_header(path: Path) -> tuple:
    """``(header_len, np_dtype, torch_dtype, shape, begin, end)`` of the ``data`` tensor, checked against the size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise ValueError(f"the header needs {8 + n} bytes, the file has {size}")
        info = json.loads(f.read(n))["data"]
    np_dtype, torch_dtype = _ST_DTYPES[info["dtype"]]
    shape = tuple(int(d) for d in info["shape"])
    begin, end = (int(o) for o in info["data_offsets"])
    if 8 + n + end > size:
        raise ValueError(f"the data needs {8 + n + end} bytes, the file has {size}")
    if end - begin != np.dtype(np_dtype).itemsize * int(np.prod(shape)):
        raise ValueError(f"{end - begin} data bytes do not hold a {info['dtype']} tensor of shape {list(shape)}")
    return n, np_dtype, torch_dtype, shape, begin, end


def layout_doc(keys) -> dict:
    """The store's layout in words and file names, written into every manifest for readers without this package."""
    return {
        "docs": "docs/store-format.md of step-workbench",
        "shards_dir": SHARDS,
        "shard_order": (
            "Committed shards are the folders in shards/ named r{rank:03d}-{seq:06d}. Read them in sorted name "
            "order (rank, then sequence number): that order defines the global row numbers."
        ),
        "temporary_prefix": TMP_PREFIX,
        "temporaries": (
            "Names starting with .tmp- are unfinished writes (a shard folder, a manifest or label file being "
            "replaced); ignore them. The writer that owns one removes it when it resumes."
        ),
        "index_file": "index.parquet",
        "index": (
            "shards/<shard>/index.parquet has one row per step, with or without vectors: trace_id, problem_id, "
            "step_index, text, char and token spans, status, beyond_context, unk_tokens, label_<name> columns."
        ),
        "files": {key: key_to_filename(key) for key in sorted(keys)},
        "tensor_name": "data",
        "tensor_files": (
            "shards/<shard>/<key with '/' written as '__'>.safetensors holds one tensor named 'data'. Each key's "
            "dtype and row shape are in manifest['keys'] (rows 'step' or 'token')."
        ),
        "row_lookup": (
            "Step keys ({hook}/{pooling}) have one row per step with vectors, in index order. A step's row in "
            "its shard's file is its index column local_row (-1: no vectors, see status); its global row is "
            "local_row plus the number of rows with local_row >= 0 in all earlier shards."
        ),
        "token_rows": (
            "Token keys (tokens/{name}) hold one row per captured token of a step: rows local_token_row to "
            "local_token_row + n_token_rows - 1 of the shard's file (local_token_row -1: none)."
        ),
        "bfloat16": (
            "safetensors stores bfloat16 as BF16, which numpy cannot read. The file is an 8-byte little-endian "
            "header length n, n bytes of JSON header (dtype, shape, data_offsets), then the data: read the data "
            "bytes as little-endian uint16 and widen them exactly: (bits.astype(uint32) << 16).view(float32)."
        ),
        "labels": "labels/<name>.parquet: label columns added after capture, joined on (trace_id, step_index).",
        "traces_without_steps": (
            "Traces captured with no steps have no index rows; shard.json lists them under traces_without_steps "
            "and manifest counts.traces includes them."
        ),
    }


def committed_shards(root: Path) -> list[Path]:
    """Committed shard directories of a store, in (rank, seq) order; temporary ones are ignored."""
    shards = root / SHARDS
    if not shards.is_dir():
        return []
    found = [(parsed, p) for p in shards.iterdir() if p.is_dir() and (parsed := parse_shard_name(p.name))]
    return [p for _, p in sorted(found)]
