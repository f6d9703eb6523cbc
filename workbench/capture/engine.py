"""``capture()``: traces in, a step-activation store out — one forward per batch, shards appended atomically.

The loop: plan batches (:mod:`~workbench.capture.plan`), skip the batches of other ranks and the traces
already in the store (resume), run the hot-path recorder (:mod:`~workbench.capture.record`), copy the
pooled rows into growable host buffers (pinned on GPU, so the device→host copies are asynchronous:
a plain ``.cpu()`` into pageable memory made capture 2.3× slower on an H200), and write a shard whenever
the buffers reach ``shard_mb``. Host memory is therefore bounded by one shard plus one batch, device memory
by one batch. Shards end at batch boundaries and a batch never straddles two shards, so every trace is
either wholly committed or wholly absent after a crash, and a resumed run recomputes the same plan and
writes the same shards as an uninterrupted one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from workbench.capture.config import CaptureConfig, TokenFeatureConfig
from workbench.capture.distributed import barrier, dist_info, share_outcome
from workbench.capture.logits import STEP_STATS
from workbench.capture.plan import CAPTURED, PlannedBatch, PlannedTrace, plan_batches, require_traces
from workbench.capture.pooling import make_batch
from workbench.capture.record import BatchOutput, Recorder
from workbench.models import WorkbenchModel
from workbench.store import KeySpec, StoreWriter
from workbench.traces import Trace

__all__ = ["capture", "CaptureResult", "key_specs", "run_batches"]

_STATS_KEY = "_logit_stats"  # host-buffer name of per-step logit stats (they go to the index, not a tensor)


@dataclass(frozen=True, kw_only=True)
class CaptureResult:
    """What one call of :func:`capture` did on this rank."""

    path: Path
    rank: int
    world_size: int
    traces: int
    """Traces captured by this call on this rank (those without steps included: they are recorded too)."""
    traces_without_steps: int = 0
    """Of ``traces``, those with no steps: no index rows, listed in the shard's ``shard.json``."""
    skipped: int
    """Traces of this rank's batches already in the store (resume)."""
    steps: int
    """Index rows written (every step of the captured traces)."""
    rows: int
    """Steps with vectors."""
    tokens: int
    """Token-feature rows."""
    shards: int
    seconds: float


def key_specs(model: WorkbenchModel, cfg: CaptureConfig, store_dtype: torch.dtype) -> dict[str, KeySpec]:
    """The store's tensor keys for this model and config."""
    dt = str(store_dtype).removeprefix("torch.")
    d = (model.d_model,)
    keys = {
        f"{h}/{p}": KeySpec(rows="step", shape=d, dtype=dt)
        for h in cfg.resolve_hooks(model.n_layers)
        for p in cfg.poolings
    }
    tf = cfg.token_features or TokenFeatureConfig()
    keys |= {f"tokens/{h}": KeySpec(rows="token", shape=d, dtype=dt) for h in tf.hooks}
    if tf.top_k:
        k = (tf.top_k,)
        keys["tokens/topk_probs"] = KeySpec(rows="token", shape=k, dtype="float32")
        keys["tokens/topk_ids"] = KeySpec(rows="token", shape=k, dtype="int64")
        keys["tokens/entropy"] = KeySpec(rows="token", shape=(), dtype="float32")
        keys["tokens/logprob"] = KeySpec(rows="token", shape=(), dtype="float32")
    heads = int(model.config.num_attention_heads)
    for i in (tf.attn_layers or range(model.n_layers)) if tf.attn_prev else ():
        keys[f"tokens/attn_prev.L{i}"] = KeySpec(rows="token", shape=(heads, tf.attn_prev), dtype="float32")
    return keys


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("step-workbench", "torch", "transformers", "transformer-lens", "safetensors", "pyarrow", "pandas"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class _Arena:
    """Growable host rows of one key; pinned on GPU so device→host copies overlap the next kernels."""

    def __init__(self, pin: bool) -> None:
        self.pin, self.buf, self.n = pin, None, 0

    def append(self, t: torch.Tensor) -> None:
        m = t.shape[0]
        if self.buf is None or self.n + m > self.buf.shape[0]:
            if self.pin:
                torch.cuda.synchronize()  # copies still landing in the old buffer must finish first
            cap = max(self.n + m, 2 * (0 if self.buf is None else self.buf.shape[0]), 1024)
            new = torch.empty((cap, *t.shape[1:]), dtype=t.dtype, pin_memory=self.pin)
            if self.buf is not None:
                new[: self.n].copy_(self.buf[: self.n])
            self.buf = new
        self.buf[self.n : self.n + m].copy_(t, non_blocking=self.pin)
        self.n += m

    def take(self) -> torch.Tensor:
        return self.buf[: self.n]

    def clear(self) -> None:
        """Forget the rows but keep the buffer: after the first shard, host memory stays flat."""
        self.n = 0

    @property
    def nbytes(self) -> int:
        return 0 if self.buf is None else self.n * self.buf[:1].nbytes


def _json_safe_column(values: list) -> list:
    """Label values Parquet can store as one column; mixed types become JSON text."""
    try:
        pa.array(values)
        return values
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return [None if v is None else json.dumps(v, default=str) for v in values]


class _Shard:
    """Host-side state of the shard being filled: index columns and tensor arenas."""

    def __init__(
        self, keys: dict[str, KeySpec], pin: bool, with_tokens: bool, with_stats: bool, unk_id: int | None = None
    ) -> None:
        self.keys, self.pin, self.with_tokens, self.with_stats = keys, pin, with_tokens, with_stats
        self.unk_id, self.warned_unk = unk_id, False  # <unk> text: flagged per step, warned once per call
        self.arenas: dict[str, _Arena] = defaultdict(lambda: _Arena(self.pin))
        self.reset()

    def reset(self) -> None:
        self.cols: dict[str, list] = defaultdict(list)
        self.labels: list[dict] = []
        for arena in self.arenas.values():
            arena.clear()
        self.segmenters: dict[str, dict] = {}
        self.without_steps: list[str] = []  # trace ids: recorded in shard.json, as they have no index rows
        self.rows = self.tokens = 0

    def _unk_tokens(self, p: PlannedTrace, step) -> int:
        """Tokens of ``step`` the tokenizer could only map to ``<unk>`` (text the model never sees)."""
        if self.unk_id is None or step.token_start is None:
            return 0
        n = int((p.ids[step.token_start : step.token_end] == self.unk_id).sum())
        if n and not self.warned_unk:
            self.warned_unk = True
            warnings.warn(
                f"trace {p.trace.trace_id!r} step {step.index}: the tokenizer maps some text to <unk> (characters "
                "it does not know), so the model never sees it; such steps are flagged in the index column "
                "unk_tokens (the number of <unk> tokens). Warned once per call.",
                UserWarning,
                stacklevel=4,
            )
        return n

    def add(self, traces: list[PlannedTrace], out: BatchOutput | None) -> None:
        if out is not None:
            for key, t in out.tensors.items():
                self.arenas[key].append(t)
            if out.logit_stats is not None:
                self.arenas[_STATS_KEY].append(out.logit_stats)
        c = self.cols
        for p in traces:
            tr = p.trace
            self.segmenters[json.dumps(tr.segmenter, sort_keys=True, default=str)] = tr.segmenter
            if not tr.steps:
                self.without_steps.append(tr.trace_id)
            for step, status, last in zip(tr.steps, p.status, p.last_token, strict=True):
                ok = status == CAPTURED
                n_tok = step.token_end - step.token_start if ok and self.with_tokens else 0
                for name, v in (
                    ("trace_id", tr.trace_id), ("problem_id", tr.problem_id), ("step_index", step.index),
                    ("text", step.text), ("kind", step.kind), ("char_start", step.char_start),
                    ("char_end", step.char_end), ("token_start", step.token_start), ("token_end", step.token_end),
                    ("boundary_token", -1 if step.boundary_token is None else step.boundary_token),
                    ("last_token", last), ("status", status), ("beyond_context", step.beyond_context),
                    ("local_row", self.rows if ok else -1), ("local_token_row", self.tokens if n_tok else -1),
                    ("n_token_rows", n_tok), ("trace_n_tokens", p.n_tokens_full),
                    ("trace_truncated", p.n_tokens_full > len(p.ids)), ("trace_answer_correct", tr.answer_correct),
                    ("unk_tokens", self._unk_tokens(p, step)),
                ):  # fmt: skip
                    c[name].append(v)
                self.labels.append(step.labels)
                self.rows += ok
                self.tokens += n_tok

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arenas.values())

    def frame(self) -> pd.DataFrame:
        if not self.cols:  # only traces without steps: the store writes an empty index part
            return pd.DataFrame()
        df = pd.DataFrame(self.cols)
        for col in (
            "boundary_token", "last_token", "local_row", "local_token_row", "n_token_rows", "trace_n_tokens",
            "unk_tokens",
        ):  # fmt: skip
            df[col] = df[col].astype(np.int64)
        names = sorted({k for lab in self.labels for k in lab})
        for name in names:
            df[f"label_{name}"] = _json_safe_column([lab.get(name) for lab in self.labels])
        if self.with_stats:  # every shard gets the columns, NaN for steps without vectors
            rows = df["local_row"].to_numpy()
            has = rows >= 0
            stats = self.arenas[_STATS_KEY].take().float().numpy() if has.any() else None  # rows only if any
            for j, name in enumerate(STEP_STATS):
                col = np.full(len(df), np.nan, dtype=np.float32)
                if stats is not None:
                    col[has] = stats[rows[has], j]
                df[name] = col
        return df

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for key, spec in self.keys.items():
            n = self.rows if spec.rows == "step" else self.tokens
            arena = self.arenas.get(key)  # absent when no batch of this shard had a captured step
            out[key] = (
                arena.take()
                if arena is not None and arena.n
                else torch.empty((n, *spec.shape), dtype=getattr(torch, spec.dtype))
            )
        return out


def _store_dtype(model: WorkbenchModel, cfg: CaptureConfig) -> torch.dtype:
    return getattr(torch, cfg.dtype) if cfg.dtype else model.dtype


def _create_store(out: Path, model: WorkbenchModel, cfg: CaptureConfig, keys: dict, max_len: int, world: int) -> None:
    prov = model.provenance()
    fingerprint = {
        "model": {k: prov[k] for k in ("weights_sha256", "architecture", "dtype", "bridge_compatibility_mode")},
        "capture": {**cfg.fingerprint(model.n_layers), "max_len": max_len},
    }
    info = {
        "model": prov,
        "backend": prov["backend"],
        "mode": {"bridge_compatibility_mode": prov["bridge_compatibility_mode"]},
        "hooks": list(cfg.resolve_hooks(model.n_layers)),
        "poolings": list(cfg.poolings),
        "dtype": str(_store_dtype(model, cfg)).removeprefix("torch."),
        "max_len": max_len,
        "capture_config": cfg.to_json(),
        "logit_stat_columns": list(STEP_STATS) if cfg.logit_stats else [],
        "versions": _versions(),
        "world_size": world,
    }
    StoreWriter.create(out, keys=keys, fingerprint=fingerprint, info=info)


def run_batches(
    traces: Iterable[Trace],
    model: WorkbenchModel,
    cfg: CaptureConfig,
    recorder: Recorder,
    *,
    keep: Callable[[PlannedBatch], list[PlannedTrace]] = lambda batch: list(batch.traces),
    pin: bool = False,
    bar: tqdm | None = None,
) -> Iterator[tuple[list[PlannedTrace], BatchOutput | None]]:
    """Plan ``traces`` and run the recorder (inside :meth:`Recorder.attached`) on the traces ``keep`` selects.

    The one loop behind both :func:`capture` and :func:`~workbench.capture.step_activations`: yields each
    batch's kept traces with their outputs (None when no kept step has tokens). Duplicate trace ids raise.
    """
    max_len = min(cfg.max_len or model.n_ctx, model.n_ctx)
    pad_id = model.tokenizer.pad_token_id or 0
    seen: set[str] = set()
    batches = plan_batches(
        traces, model.tokenizer, max_len=max_len, window=cfg.window,
        max_batch_tokens=cfg.max_batch_tokens, batch_size=cfg.batch_size,
    )  # fmt: skip
    for batch in batches:
        for p in batch.traces:
            if p.trace.trace_id in seen:
                raise ValueError(f"trace_id {p.trace.trace_id!r} occurs twice in the input; trace ids must be unique")
            seen.add(p.trace.trace_id)
        if bar is not None:
            bar.update(len(batch.traces))
        todo = keep(batch)
        if not todo:
            continue
        has_steps = any(s == CAPTURED for p in todo for s in p.status)
        yield todo, (recorder.run(make_batch(todo, pad_id, pin=pin)) if has_steps else None)


def capture(traces, model: WorkbenchModel, out: str | os.PathLike, cfg: CaptureConfig | None = None) -> CaptureResult:
    """Capture step vectors of ``traces`` (an iterable of :class:`~workbench.traces.Trace`) into the store ``out``.

    Appends to an existing store made with the same model and settings, skipping traces it already holds
    (resume); under ``torchrun`` each rank captures its share. Unknown hook names raise
    :class:`~workbench.models.UnknownHookError` listing the valid ones; an empty input raises before a
    store is created. :func:`~workbench.capture.step_activations` runs the same loop into memory.
    """
    cfg = cfg or CaptureConfig()
    if not isinstance(cfg, CaptureConfig):
        raise TypeError(f"cfg: expected a CaptureConfig, got {type(cfg).__name__}")
    t0 = time.perf_counter()
    out = Path(out)
    traces = require_traces(traces)
    di = dist_info()
    store_dtype = _store_dtype(model, cfg)
    recorder = Recorder(model, cfg, store_dtype)  # validates hook names before anything is written
    max_len = min(cfg.max_len or model.n_ctx, model.n_ctx)
    keys = key_specs(model, cfg, store_dtype)
    error = None
    if di.rank == 0:
        try:
            _create_store(out, model, cfg, keys, max_len, di.world_size)
        except Exception as e:  # every rank must hear about it, or the others wait forever
            error = e
    share_outcome(error)
    writer = StoreWriter(out, rank=di.rank)
    done = writer.committed_trace_ids()
    pin = model.device.type == "cuda"
    tf = cfg.token_features or TokenFeatureConfig()
    unk_id = model.tokenizer.unk_token_id
    shard = _Shard(keys, pin, with_tokens=tf.enabled, with_stats=cfg.logit_stats, unk_id=unk_id)
    shard_bytes = cfg.shard_mb * 2**20
    stats = defaultdict(int)
    total = len(traces) if hasattr(traces, "__len__") else None
    bar = tqdm(total=total, unit="trace", desc="capture", disable=not cfg.progress or di.rank != 0)

    def flush() -> None:
        if not shard.cols and not shard.without_steps:
            return
        if pin:
            torch.cuda.synchronize(model.device)  # the asynchronous copies into the arenas must have landed
        info = writer.write_shard(
            shard.frame(), shard.tensors(), segmenters=list(shard.segmenters.values()),
            traces_without_steps=shard.without_steps,
        )  # fmt: skip
        stats["without_steps"] += info.n_traces_without_steps
        stats["shards"] += 1
        stats["steps"] += info.n_steps
        stats["rows"] += info.n_rows
        stats["tokens"] += info.n_tokens
        if di.world_size == 1:
            writer.refresh_manifest()
        shard.reset()

    def keep(batch: PlannedBatch) -> list[PlannedTrace]:
        if batch.number % di.world_size != di.rank:
            return []
        todo = [p for p in batch.traces if p.trace.trace_id not in done]
        stats["skipped"] += len(batch.traces) - len(todo)
        return todo

    with recorder.attached(), bar:
        for todo, result in run_batches(traces, model, cfg, recorder, keep=keep, pin=pin, bar=bar):
            shard.add(todo, result)
            stats["traces"] += len(todo)
            if shard.nbytes >= shard_bytes:
                flush()
        flush()
    barrier()
    if di.rank == 0:
        writer.refresh_manifest()
    return CaptureResult(
        path=out, rank=di.rank, world_size=di.world_size, traces=stats["traces"], skipped=stats["skipped"],
        traces_without_steps=stats["without_steps"],
        steps=stats["steps"], rows=stats["rows"], tokens=stats["tokens"], shards=stats["shards"],
        seconds=time.perf_counter() - t0,
    )  # fmt: skip
