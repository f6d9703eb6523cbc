"""Writing a step-activation store: create it once, then append whole shards atomically, from any rank.

The store knows nothing about models or capture: a writer is given a key schema (:class:`KeySpec` per
tensor key), a *fingerprint* (whatever must stay equal for appended data to belong together, e.g. model
weights hash, hooks, poolings, dtype) and free-form provenance for the manifest. Appending to an existing
store with a different fingerprint or schema raises :class:`StoreMismatchError` listing the differences,
so a resumed capture can never mix activations of two configurations.

Each rank appends its own shards (``r{rank}-{seq}``) and never touches another rank's, so data-parallel
writers need no locks. Resume support: :meth:`StoreWriter.committed_trace_ids` lists every trace already
in a committed shard (any rank), traces without steps included; every temporary file a crash of a rank
left (shard folders, manifest rewrites) is removed when that rank reopens.

:meth:`StoreWriter.create` refuses a path that is a file and a folder that holds anything but a store (or
the leftovers of an interrupted create), so a capture never writes into somebody else's files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from workbench.store import format as fmt

__all__ = ["KeySpec", "ShardInfo", "StoreMismatchError", "StoreWriter", "REQUIRED_COLUMNS"]

#: Columns every index part must have; the rest of the index is free-form (text, spans, labels, ...).
REQUIRED_COLUMNS = ("trace_id", "problem_id", "step_index", "local_row", "local_token_row", "n_token_rows")


class StoreMismatchError(ValueError):
    """Appending to a store made with a different configuration; the message lists what differs."""


@dataclass(frozen=True, kw_only=True)
class KeySpec:
    """The schema of one tensor key."""

    rows: str
    """``"step"`` (one row per captured step) or ``"token"`` (one row per captured step token)."""
    shape: tuple[int, ...]
    """Shape of one row, e.g. ``(d_model,)``."""
    dtype: str
    """Torch dtype name without the ``torch.`` prefix (``float32``, ``bfloat16``, ``int64``)."""

    def __post_init__(self) -> None:
        if self.rows not in ("step", "token"):
            raise ValueError(f"KeySpec.rows={self.rows!r}: use 'step' or 'token'")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise ValueError(f"KeySpec.dtype={self.dtype!r}: not a torch dtype name")

    def to_json(self) -> dict:
        return {"rows": self.rows, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: Mapping) -> KeySpec:
        return cls(rows=d["rows"], shape=tuple(d["shape"]), dtype=d["dtype"])


def step_key_parts(key_specs: Mapping[str, KeySpec], part: int) -> list[str]:
    """Sorted hook names (``part=0``) or poolings (``part=1``) of the step-vector keys ``{hook}/{pooling}``."""
    return sorted({k.split("/")[part] for k, s in key_specs.items() if s.rows == "step"})


@dataclass(frozen=True, kw_only=True)
class ShardInfo:
    """What one committed shard holds."""

    name: str
    """Directory name ``r{rank:03d}-{seq:06d}``."""
    n_steps: int
    """Index rows (every step, captured or not)."""
    n_rows: int
    """Step-tensor rows (captured steps)."""
    n_tokens: int
    """Token-tensor rows."""
    n_traces: int
    """Traces in the shard, those without steps included."""
    n_traces_without_steps: int = 0
    """Traces with no steps (no index rows); their ids are listed in ``shard.json``."""


#: Manifest counts, each the sum of the shards' ``n_<count>`` (shards: the number of shards).
_COUNTS = ("shards", "traces", "steps", "rows", "tokens", "traces_without_steps")


def _check_output_folder(root: Path) -> None:
    """Refuse a file, or a folder holding anything but a store or the leftovers of an interrupted create."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"{root} is a file; a step store is a folder: pass a new or empty folder, or an existing store"
        )
    if not root.is_dir() or (root / fmt.MANIFEST).is_file():
        return

    def ours(p: Path) -> bool:  # temporaries, and an empty shards/ from a create killed before its manifest
        return p.name.startswith(fmt.TMP_PREFIX) or (p.name == fmt.SHARDS and not fmt.committed_shards(root))

    foreign = sorted(p.name for p in root.iterdir() if not ours(p))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{root} holds other files ({shown}) and is not a step store (no {fmt.MANIFEST}); "
            "choose a new or empty folder for the store"
        )


def _diff(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _diff(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{where}.{k}" if where else str(k))
        return out
    return [] if old == new else [f"{where}: store has {old!r}, this run has {new!r}"]


def _jsonify(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))  # tuples → lists, as they come back from disk


class StoreWriter:
    """Appends shards to a store directory as one rank. Use :meth:`create` (rank 0) before opening others."""

    def __init__(self, root: str | os.PathLike, *, rank: int = 0) -> None:
        self.root = Path(root)
        manifest_path = self.root / fmt.MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.root}: no {fmt.MANIFEST}; create the store with StoreWriter.create first")
        self.manifest = json.loads(manifest_path.read_text())
        self.keys = {k: KeySpec.from_json(v) for k, v in self.manifest["keys"].items()}
        self.rank = rank
        fmt.remove_temporaries(self.root, rank)  # whatever a crash of this rank left behind
        mine = [fmt.parse_shard_name(p.name) for p in fmt.committed_shards(self.root)]
        self._next_seq = 1 + max((sid.seq for sid in mine if sid.rank == rank), default=-1)

    # ---- creation ----------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | os.PathLike,
        *,
        keys: Mapping[str, KeySpec],
        fingerprint: Mapping[str, Any],
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Create an empty store, or check that an existing one has the same keys and fingerprint."""
        root = Path(root)
        _check_output_folder(root)
        keys_json = {k: spec.to_json() for k, spec in sorted(keys.items())}
        for k in keys_json:
            fmt.key_to_filename(k)  # validate names before anything is written
        fingerprint = _jsonify(dict(fingerprint))
        path = root / fmt.MANIFEST
        if path.is_file():
            old = json.loads(path.read_text())
            diffs = _diff(
                {"keys": old["keys"], "fingerprint": old["fingerprint"]},
                _jsonify({"keys": keys_json, "fingerprint": fingerprint}),
            )
            if diffs:
                raise StoreMismatchError(
                    f"{root} was captured with another configuration; resume with the same settings or use a "
                    "new directory. Differences: " + "; ".join(diffs)
                )
            return
        (root / fmt.SHARDS).mkdir(parents=True, exist_ok=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest = {
            "format": fmt.FORMAT,
            "created": now,
            "updated": now,
            "keys": keys_json,
            "fingerprint": fingerprint,
            **_jsonify(dict(info or {})),
            "counts": dict.fromkeys(_COUNTS, 0),
            "segmenters": [],
            "layout": fmt.layout_doc(keys_json),
        }
        fmt.atomic_write_json(path, manifest, owner="r000-")

    # ---- resume ------------------------------------------------------------------------------------
    def committed_trace_ids(self) -> set[str]:
        """Trace ids in every committed shard of every rank (the traces a resumed capture skips)."""
        ids: set[str] = set()
        for shard in fmt.committed_shards(self.root):
            ids.update(pq.read_table(shard / "index.parquet", columns=["trace_id"]).column(0).to_pylist())
            ids.update(json.loads((shard / "shard.json").read_text()).get("traces_without_steps", []))
        return ids

    # ---- appending ---------------------------------------------------------------------------------
    def _check(self, index: pd.DataFrame, tensors: Mapping[str, torch.Tensor]) -> tuple[int, int]:
        missing = [c for c in REQUIRED_COLUMNS if c not in index.columns]
        if missing:
            raise ValueError(f"index is missing the columns {missing}; required: {list(REQUIRED_COLUMNS)}")
        if set(tensors) != set(self.keys):
            raise ValueError(f"tensors have keys {sorted(tensors)}; the store's schema is {sorted(self.keys)}")
        n_rows = int((index["local_row"] >= 0).sum())
        n_tokens = int(index["n_token_rows"].sum())
        for key, spec in self.keys.items():
            t = tensors[key]
            want = (n_rows if spec.rows == "step" else n_tokens, *spec.shape)
            if tuple(t.shape) != want or str(t.dtype).removeprefix("torch.") != spec.dtype:
                raise ValueError(f"{key}: got {tuple(t.shape)} {t.dtype}, the schema wants {want} {spec.dtype}")
        return n_rows, n_tokens

    def write_shard(
        self,
        index: pd.DataFrame,
        tensors: Mapping[str, torch.Tensor],
        *,
        segmenters: Sequence[Mapping[str, Any]] = (),
        traces_without_steps: Sequence[str] = (),
    ) -> ShardInfo:
        """Write one shard and make it visible atomically (temporary directory, fsync, rename).

        ``traces_without_steps`` are ids of traces that have no steps, hence no index rows: they are
        recorded in ``shard.json`` and counted, so a resumed capture skips them too.
        """
        if len(index) == 0 and not len(index.columns):  # only traces without steps
            cols = {c: pd.Series(dtype=object if c.endswith("_id") else "int64") for c in REQUIRED_COLUMNS}
            index = pd.DataFrame(cols)
        n_rows, n_tokens = self._check(index, tensors)
        name = fmt.shard_name(self.rank, self._next_seq)
        tmp = self.root / fmt.SHARDS / f"{fmt.TMP_PREFIX}{name}"
        fmt.remove_tree(tmp)
        tmp.mkdir(parents=True)
        for key in sorted(self.keys):
            fmt.save_tensor(tmp / fmt.key_to_filename(key), tensors[key].cpu(), key)
        pq.write_table(pa.Table.from_pandas(index, preserve_index=False), tmp / "index.parquet")
        empty = sorted(set(traces_without_steps))
        info = ShardInfo(
            name=name, n_steps=len(index), n_rows=n_rows, n_tokens=n_tokens,
            n_traces=int(index["trace_id"].nunique()) + len(empty), n_traces_without_steps=len(empty),
        )  # fmt: skip
        segs = sorted({json.dumps(_jsonify(dict(s)), sort_keys=True) for s in segmenters})
        record = {**asdict(info), "segmenters": [json.loads(s) for s in segs], "traces_without_steps": empty}
        fmt.atomic_write_json(tmp / "shard.json", record)
        self._commit(tmp, self.root / fmt.SHARDS / name)
        self._next_seq += 1
        return info

    def _commit(self, tmp: Path, final: Path) -> None:
        """The single atomic step that makes a shard visible."""
        fmt.fsync_dir(tmp)
        os.replace(tmp, final)
        fmt.fsync_dir(final.parent)

    def refresh_manifest(self) -> dict:
        """Recompute the manifest's counts and segmenters from the committed shards; rewrite it atomically."""
        counts = dict.fromkeys(_COUNTS, 0)
        segs: set[str] = set()
        for shard in fmt.committed_shards(self.root):
            rec = json.loads((shard / "shard.json").read_text())
            counts["shards"] += 1
            for k in _COUNTS[1:]:
                counts[k] += rec.get(f"n_{k}", 0)
            segs.update(json.dumps(s, sort_keys=True) for s in rec["segmenters"])
        path = self.root / fmt.MANIFEST
        manifest = json.loads(path.read_text())
        manifest.update(
            counts=counts,
            segmenters=[json.loads(s) for s in sorted(segs)],
            updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            layout=fmt.layout_doc(manifest["keys"]),
        )
        fmt.atomic_write_json(path, manifest, owner=f"r{self.rank:03d}-")
        self.manifest = manifest
        return manifest
