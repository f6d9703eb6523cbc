"""Step activations in memory: the capture loop without a store, for notebooks and small experiments.

:func:`step_activations` runs exactly what :func:`~workbench.capture.capture` runs (the same planning,
re-alignment to the model's tokenizer, right-padded batches, hooks and pooling, the same index columns)
and returns the index and the tensors instead of writing shards. Its ``index`` has the store's columns,
``row``/``token_row`` included, in input order (traces as given, steps in order), and every tensor's rows
follow that order, so ``acts.tensors(hook, pooling)`` lines up with ``acts.index[acts.index.row >= 0]``.

Positions are never computed by hand: no caller indexes a padded batch with ``Step.boundary_token``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from workbench.capture.config import CaptureConfig, TokenFeatureConfig
from workbench.capture.engine import _Shard, _store_dtype, key_specs, run_batches
from workbench.capture.plan import require_traces
from workbench.capture.record import Recorder
from workbench.models import WorkbenchModel
from workbench.store import KeySpec
from workbench.store.writer import step_key_parts
from workbench.traces import Trace

__all__ = ["StepActivations", "step_activations"]


@dataclass(frozen=True, kw_only=True)
class StepActivations:
    """Step vectors of traces held in memory, with the same index and keys a store would have."""

    index: pd.DataFrame
    """One row per step in input order; ``row`` is the step's row in step tensors (-1: no vectors, see
    ``status``), ``token_row`` its first row in token tensors. Labels are ``label_<name>`` columns."""
    vectors: dict[str, Tensor]
    """Store key (``{hook}/{pooling}``, ``tokens/...``) → rows, on the CPU."""
    key_specs: dict[str, KeySpec]

    @property
    def hooks(self) -> list[str]:
        return step_key_parts(self.key_specs, 0)

    @property
    def poolings(self) -> list[str]:
        return step_key_parts(self.key_specs, 1)

    def tensors(self, hook: str, pooling: str = "boundary", rows=None) -> Float[Tensor, "step d_model"]:
        """Vectors of ``hook``/``pooling``: every captured step in index order, or the rows of an index slice."""
        key = f"{hook}/{pooling}"
        if key not in self.vectors:
            raise KeyError(f"{key!r} was not captured; keys: {sorted(self.vectors)}")
        x = self.vectors[key]
        if rows is None:
            return x
        sel = rows["row"].to_numpy(dtype=np.int64) if isinstance(rows, pd.DataFrame) else np.asarray(rows, np.int64)
        sel = sel.copy()  # a DataFrame column can be a read-only view
        if (sel < 0).any():
            raise ValueError(
                f"{(sel < 0).sum()} selected steps have no vectors (row == -1); filter with index[index.row >= 0]"
            )
        return x[torch.from_numpy(sel)]


def _in_input_order(
    df: pd.DataFrame, tensors: dict[str, Tensor], specs: dict[str, KeySpec], order: dict[str, int]
) -> tuple[pd.DataFrame, dict[str, Tensor]]:
    """Sort the index into input order and permute the tensors' rows to match; add ``row``/``token_row``."""
    if df.empty:  # traces without steps
        return df.drop(columns=["local_row", "local_token_row"], errors="ignore").assign(row=[], token_row=[]), tensors
    df = df.assign(_t=df["trace_id"].map(order)).sort_values(["_t", "step_index"], kind="stable")
    df = df.drop(columns="_t").reset_index(drop=True)
    has = df["local_row"].to_numpy() >= 0
    step_perm = torch.from_numpy(df["local_row"].to_numpy()[has].astype(np.int64))
    n_tok = df["n_token_rows"].to_numpy(dtype=np.int64)
    tok_start = df["local_token_row"].to_numpy(dtype=np.int64)
    tok_perm = torch.from_numpy(
        np.concatenate(
            [np.arange(a, a + n) for a, n in zip(tok_start, n_tok, strict=True) if n] or [np.zeros(0)]
        ).astype(np.int64)
    )
    df["row"] = np.where(has, np.cumsum(has) - 1, -1)
    df["token_row"] = np.where(n_tok > 0, np.cumsum(n_tok) - n_tok, -1)
    out = {k: t[step_perm if specs[k].rows == "step" else tok_perm] for k, t in tensors.items()}
    return df.drop(columns=["local_row", "local_token_row"]), out


def step_activations(
    traces: Iterable[Trace], model: WorkbenchModel, cfg: CaptureConfig | None = None
) -> StepActivations:
    """Step vectors of ``traces`` for the hooks × poolings of ``cfg``, in memory (same code path as ``capture``).

    Example: ``acts = step_activations(traces, model, CaptureConfig(layers=(2,), poolings=("boundary",)))``,
    then ``acts.index`` (one row per step, labels as ``label_<name>``) and
    ``acts.tensors("blocks.2.hook_resid_post", "boundary")`` (``[captured step, d_model]``, index order).
    Holds everything in host memory; for more than fits, use :func:`~workbench.capture.capture`.
    """
    cfg = cfg or CaptureConfig()
    if not isinstance(cfg, CaptureConfig):
        raise TypeError(f"cfg: expected a CaptureConfig, got {type(cfg).__name__}")
    traces = require_traces(traces)
    store_dtype = _store_dtype(model, cfg)
    recorder = Recorder(model, cfg, store_dtype)  # validates hook names before the first forward
    keys = key_specs(model, cfg, store_dtype)
    tf = cfg.token_features or TokenFeatureConfig()
    unk_id = model.tokenizer.unk_token_id
    shard = _Shard(keys, pin=False, with_tokens=tf.enabled, with_stats=cfg.logit_stats, unk_id=unk_id)
    order: dict[str, int] = {}  # trace_id → input position (batches run sorted by length)

    def numbered() -> Iterable[Trace]:
        for t in traces:
            order.setdefault(t.trace_id, len(order))
            yield t

    total = len(traces) if hasattr(traces, "__len__") else None
    with recorder.attached(), tqdm(total=total, unit="trace", desc="step activations", disable=not cfg.progress) as bar:
        for todo, result in run_batches(numbered(), model, cfg, recorder, bar=bar):
            shard.add(todo, result)
    index, vectors = _in_input_order(shard.frame(), shard.tensors(), keys, order)
    return StepActivations(index=index, vectors=vectors, key_specs=keys)
