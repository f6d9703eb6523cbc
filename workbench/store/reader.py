"""Reading a step-activation store: the index as a DataFrame, memory-mapped tensors, batches, splits, labels.

:class:`StepStore` opens a store read-only and sees every committed shard of every rank as one table.
Row order is shard order ((rank, seq)), and within a shard, capture order; sort the index by
``trace_id, step_index`` for a canonical order. Index columns added here:

- ``row``: the step's row in step tensors (``-1`` when the step has no vectors, see ``status``);
- ``token_row``: its first row in token tensors (``n_token_rows`` rows; ``-1`` when none);
- ``shard``: the shard it lives in.

Tensors are never loaded whole unless asked: each shard's file is a NumPy memory map, and
:meth:`StepStore.tensors`/:meth:`StepStore.iter_batches` copy out only the rows they need, so datasets
larger than memory stream from the page cache. Labels added with :meth:`StepStore.add_labels` live in
``labels/*.parquet`` and are joined onto the index; tensors are never rewritten.

Tensors come back in the dtype they were stored in (``bfloat16`` stays ``bfloat16``; ``iter_batches``
casts to float32 by default). Reading a store without this package is documented in the manifest
(``manifest["layout"]``) and in ``docs/store-format.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from jaxtyping import Float
from torch import Tensor

from workbench.store import format as fmt
from workbench.store.writer import KeySpec, step_key_parts

__all__ = ["StepStore", "open_store"]

_KEY_COLUMNS = ("trace_id", "step_index")


def _as_rows(rows, what: str, column: str) -> np.ndarray:
    """Tensor rows from a DataFrame (its ``column``), a boolean mask, or integers."""
    if isinstance(rows, pd.DataFrame):
        out = rows[column].to_numpy(dtype=np.int64)
    else:
        arr = np.asarray(rows)
        if arr.dtype == bool:
            raise TypeError(f"{what}: pass index rows as a DataFrame (e.g. store.index[mask]), not a boolean mask")
        out = arr.astype(np.int64)
    if (out < 0).any():
        raise ValueError(
            f"{what}: {(out < 0).sum()} selected steps have no vectors (row == -1: beyond the context or "
            "without tokens); filter with store.index[store.index.row >= 0]"
        )
    return out


class StepStore:
    """A read-only view of a store directory; every committed shard of every rank as one table."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} is a file; a step store is a folder holding {fmt.MANIFEST}")
        path = self.root / fmt.MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} is not a step store: no {fmt.MANIFEST}")
        self.manifest: dict = json.loads(path.read_text())
        if self.manifest.get("format") != fmt.FORMAT:
            raise ValueError(f"{path}: format {self.manifest.get('format')!r}, expected {fmt.FORMAT!r}")
        self.key_specs = {k: KeySpec.from_json(v) for k, v in self.manifest["keys"].items()}
        self.shards = fmt.committed_shards(self.root)  # a snapshot: reopen to see shards appended later
        self._file_cache: dict[str, list[fmt.TensorFile]] = {}

    # ---- schema ------------------------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        return sorted(self.key_specs)

    @property
    def hooks(self) -> list[str]:
        """Hook names with step vectors (keys ``{hook}/{pooling}``)."""
        return step_key_parts(self.key_specs, 0)

    @property
    def poolings(self) -> list[str]:
        return step_key_parts(self.key_specs, 1)

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"StepStore({str(self.root)!r}, steps={len(self)}, shards={len(self.shards)}, keys={self.keys})"

    # ---- index -------------------------------------------------------------------------------------
    @cached_property
    def _base_index(self) -> pd.DataFrame:
        parts, row0, tok0 = [], 0, 0
        for shard in self.shards:
            df = pq.read_table(shard / "index.parquet").to_pandas()
            df["row"] = np.where(df["local_row"] >= 0, df["local_row"] + row0, -1)
            df["token_row"] = np.where(df["local_token_row"] >= 0, df["local_token_row"] + tok0, -1)
            df["shard"] = shard.name
            row0 += int((df["local_row"] >= 0).sum())
            tok0 += int(df["n_token_rows"].sum())
            if len(df):  # a shard of traces without steps only has no rows (and fewer columns)
                parts.append(df.drop(columns=["local_row", "local_token_row"]))
        if not parts:
            return pd.DataFrame(columns=["trace_id", "problem_id", "step_index", "row", "token_row", "n_token_rows"])
        return pd.concat(parts, ignore_index=True)

    @cached_property
    def traces_without_steps(self) -> list[str]:
        """Ids of traces captured with no steps: recorded and counted, but without index rows."""
        ids: list[str] = []
        for shard in self.shards:
            ids += json.loads((shard / "shard.json").read_text()).get("traces_without_steps", [])
        return ids

    @cached_property
    def index(self) -> pd.DataFrame:
        """One row per step (captured or not), with label columns added later joined on."""
        return self._index_without(None)

    # ---- tensors -----------------------------------------------------------------------------------
    def _files(self, key: str) -> list[fmt.TensorFile]:
        if key not in self.key_specs:
            raise KeyError(f"key {key!r} is not in this store; keys: {self.keys}")
        if key not in self._file_cache:
            self._file_cache[key] = [fmt.TensorFile.open(s / fmt.key_to_filename(key)) for s in self.shards]
        return self._file_cache[key]

    def _gather(self, key: str, rows: np.ndarray | None) -> Tensor:
        files = self._files(key)
        spec = self.key_specs[key]
        if rows is None:
            parts = [f.rows(slice(None)) for f in files]
            return torch.cat(parts) if parts else torch.empty((0, *spec.shape), dtype=getattr(torch, spec.dtype))
        bounds = np.cumsum([0] + [len(f) for f in files])
        if len(rows) and (rows.min() < 0 or rows.max() >= bounds[-1]):
            raise IndexError(f"{key}: rows must lie in [0, {bounds[-1]})")
        out = torch.empty((len(rows), *spec.shape), dtype=getattr(torch, spec.dtype))
        which = np.searchsorted(bounds, rows, side="right") - 1
        for s in np.unique(which):
            sel = np.nonzero(which == s)[0]
            local = rows[sel] - bounds[s]
            order = np.argsort(local, kind="stable")  # read each map in file order
            out[torch.from_numpy(sel[order])] = files[s].rows(local[order])
        return out

    def read(self, key: str, rows=None) -> Tensor:
        """Rows of any key: all (None), the rows of a DataFrame slice of the index, or integer rows."""
        if rows is None:
            return self._gather(key, None)
        column = "row" if self.key_specs[key].rows == "step" else "token_row"
        if isinstance(rows, pd.DataFrame) and column == "token_row":
            raise TypeError(f"{key}: token rows of steps come from step_tokens(); pass integer token rows here")
        return self._gather(key, _as_rows(rows, key, column))

    def tensors(self, hook: str, pooling: str = "boundary", rows=None) -> Float[Tensor, "step d_model"]:
        """Step vectors of ``hook`` and ``pooling``: all captured steps in index order, or the selected ones.

        ``rows`` is a DataFrame slice of :attr:`index` (its ``row`` column is used, in its order) or integer
        tensor rows. Steps without vectors (``row == -1``) raise instead of being silently skipped.
        """
        return self.read(f"{hook}/{pooling}", rows)

    def step_tokens(self, name: str, steps: pd.DataFrame) -> list[Tensor]:
        """Token-level features ``tokens/{name}`` of each step in ``steps`` (one ``[n_tokens, ...]`` tensor each)."""
        key = f"tokens/{name}"
        if key not in self.key_specs:
            raise KeyError(f"key {key!r} is not in this store; keys: {self.keys}")
        starts = _as_rows(steps, key, "token_row")
        counts = steps["n_token_rows"].to_numpy(dtype=np.int64)
        flat = self._gather(key, np.concatenate([np.arange(a, a + n) for a, n in zip(starts, counts, strict=True)]))
        return list(torch.split(flat, counts.tolist()))

    def iter_batches(
        self,
        hook: str,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        *,
        pooling: str = "boundary",
        rows=None,
        epochs: int | None = 1,
        drop_last: bool = False,
        dtype: torch.dtype | None = torch.float32,
        device: str | torch.device | None = None,
    ) -> Iterator[Float[Tensor, "batch d_model"]]:
        """Batches of step vectors ``[batch, d_model]``: an iterator that sae-lens's ``SAETrainer`` accepts.

        Shuffles across all shards with ``seed`` (a new permutation each epoch). ``epochs=None`` loops forever,
        which is what a trainer drawing a fixed number of samples needs.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        key = f"{hook}/{pooling}"
        n = sum(len(f) for f in self._files(key))  # unknown keys fail now, not at the first next()
        base = np.arange(n) if rows is None else _as_rows(rows, key, "row")
        return self._batches(key, base, batch_size, shuffle, seed, epochs, drop_last, dtype, device)

    def _batches(self, key, base, batch_size, shuffle, seed, epochs, drop_last, dtype, device):
        rng = np.random.default_rng(seed)
        epoch = 0
        while epochs is None or epoch < epochs:
            order = base[rng.permutation(len(base))] if shuffle else base
            stop = len(order) - (len(order) % batch_size if drop_last else 0)
            if stop == 0 and epochs is None:
                raise ValueError(f"{key}: no rows to draw batches from")
            for i in range(0, stop, batch_size):
                x = self._gather(key, order[i : i + batch_size])
                yield x.to(device=device, dtype=dtype or x.dtype)
            epoch += 1

    # ---- splits and labels -------------------------------------------------------------------------
    def split(
        self, fractions: Mapping[str, float] | None = None, *, seed: int = 0, index: pd.DataFrame | None = None
    ) -> dict[str, pd.DataFrame]:
        """Split the index by ``problem_id`` (never by step): ``{"train": df, "val": df, "test": df}``.

        Each problem's split comes from a hash of ``(seed, problem_id)``, so it is stable when more data is
        appended and identical on every machine.
        """
        fractions = dict(fractions or {"train": 0.8, "val": 0.1, "test": 0.1})
        if any(f < 0 for f in fractions.values()) or not np.isclose(sum(fractions.values()), 1.0):
            raise ValueError(f"fractions={fractions}: must be non-negative and sum to 1")
        df = self.index if index is None else index
        problems = df["problem_id"].astype(str).unique()
        u = np.array(
            [int.from_bytes(hashlib.sha256(f"{seed}:{p}".encode()).digest()[:8], "big") / 2**64 for p in problems]
        )
        edges = np.cumsum(list(fractions.values()))
        edges[-1] = 1.0 + 1e-9
        which = dict(zip(problems, np.searchsorted(edges, u, side="right"), strict=True))
        part = df["problem_id"].astype(str).map(which).to_numpy()
        return {name: df[part == i] for i, name in enumerate(fractions)}

    def add_labels(self, labels: pd.DataFrame, *, name: str, overwrite: bool = False) -> pd.DataFrame:
        """Add label columns keyed by ``(trace_id, step_index)`` as ``labels/{name}.parquet``; returns the index.

        Steps missing from ``labels`` get nulls. Tensors and existing index parts are not touched.
        """
        missing = [c for c in _KEY_COLUMNS if c not in labels.columns]
        if missing:
            raise ValueError(f"labels needs the key columns {list(_KEY_COLUMNS)}; missing {missing}")
        if labels.duplicated(list(_KEY_COLUMNS)).any():
            raise ValueError("labels has duplicate (trace_id, step_index) rows")
        new_cols = [c for c in labels.columns if c not in _KEY_COLUMNS]
        path = self.root / fmt.LABELS / f"{name}.parquet"
        current = self.index.columns if not path.exists() else self._index_without(path).columns
        clash = [c for c in new_cols if c in current]
        if clash:
            raise ValueError(f"label columns {clash} already exist in the index; rename them")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace the label set {name!r}")
        path.parent.mkdir(exist_ok=True)
        fmt.atomic_write_parquet(path, pa.Table.from_pandas(labels.reset_index(drop=True), preserve_index=False))
        self.__dict__.pop("index", None)
        return self.index

    def _index_without(self, skip: Path | None) -> pd.DataFrame:
        df = self._base_index
        for path in sorted((self.root / fmt.LABELS).glob("*.parquet")):
            if path != skip:
                labels = pq.read_table(path).to_pandas()
                df = df.merge(labels, on=list(_KEY_COLUMNS), how="left", validate="one_to_one")
        return df


def open_store(root: str | os.PathLike) -> StepStore:
    """Open a step-activation store read-only (shards memory-mapped on demand)."""
    return StepStore(root)
