"""Planning a capture: tokenise and align traces, decide each step's fate, bucket sequences into batches.

Traces are read in windows (``CaptureConfig.window``); each window is tokenised in one call, every trace
is re-aligned to the capturing model's tokenizer and truncated explicitly to ``max_len`` tokens, and the
window's sequences are sorted by length (longest first, so an out-of-memory shows up in the first batch)
and cut into batches under a padded-token budget. The plan depends only on the input order and the
config, so every rank of a data-parallel run and every resumed run computes the same batches and
takes batch ``i`` iff ``i % world_size == rank``.

A step's ``status``: ``captured``; ``beyond_context`` (some of its tokens lie past ``max_len``: kept in
the index, no vectors — the traces layer's rule); ``no_tokens`` (no token of its own, e.g. absorbed into
a neighbour's BPE token: kept in the index, no vectors).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import PurePath

import numpy as np

from workbench.traces import Trace, align_trace

__all__ = ["PlannedTrace", "PlannedBatch", "plan_batches", "require_traces", "CAPTURED", "BEYOND_CONTEXT", "NO_TOKENS"]

CAPTURED, BEYOND_CONTEXT, NO_TOKENS = "captured", "beyond_context", "no_tokens"


@dataclass(frozen=True, kw_only=True)
class PlannedTrace:
    """One trace ready for the forward: re-aligned steps, truncated ids, per-step read-out positions."""

    trace: Trace
    """The trace with steps re-aligned to the capturing tokenizer and ``max_len``."""
    ids: np.ndarray
    """Token ids of ``prompt + completion`` truncated to ``max_len`` (int64)."""
    n_tokens_full: int
    """Tokens before truncation (``> len(ids)`` means the trace was truncated)."""
    status: tuple[str, ...]
    """Per step: ``captured``, ``beyond_context`` or ``no_tokens``."""
    last_token: tuple[int, ...]
    """Per step: the token containing its last non-whitespace character (-1 unless captured)."""


@dataclass(frozen=True, kw_only=True)
class PlannedBatch:
    """Traces sharing one forward pass."""

    number: int
    """Global batch number (the same on every rank and on resume)."""
    traces: tuple[PlannedTrace, ...]

    @property
    def n_padded(self) -> int:
        return len(self.traces) * max(len(t.ids) for t in self.traces)


def require_traces(traces: Iterable[Trace]) -> Iterable[Trace]:
    """``traces`` checked for the usual slips before anything runs: a path instead of traces, an empty input,
    or items that are not :class:`~workbench.traces.Trace`. Returns an iterable equivalent to the input."""
    if isinstance(traces, (str, bytes, PurePath)):
        raise TypeError(
            f"traces={str(traces)!r} is a path; load it first: workbench.traces.load_traces(path) "
            "(or `workbench capture --traces PATH` on the command line)"
        )
    if isinstance(traces, Trace):
        raise TypeError("traces: got one Trace; pass a list of traces, e.g. [trace]")
    it = iter(traces)
    first = next(it, None)
    if first is None:
        raise ValueError("traces is empty: there is nothing to capture (no store or result was created)")
    if not isinstance(first, Trace):
        raise TypeError(f"traces: items must be workbench.traces.Trace, got {type(first).__name__}")
    return traces if it is not traces and hasattr(traces, "__len__") else chain([first], it)


def _last_content_token(trace: Trace, step, starts: list[int]) -> int:
    chunk = trace.completion[step.char_start : step.char_end]
    end = len(trace.prompt) + step.char_start + len(chunk.rstrip())
    if end <= len(trace.prompt) + step.char_start:  # whitespace-only step: its boundary is its content
        return step.boundary_token
    tok = bisect_right(starts, end - 1) - 1
    return min(max(tok, step.token_start), step.token_end - 1)


def _plan_trace(trace: Trace, ids: list[int], offsets: list[tuple[int, int]], max_len: int) -> PlannedTrace:
    trace = align_trace(trace, None, n_ctx=max_len, offsets=offsets)
    starts = [s for s, _ in offsets]
    status, last = [], []
    for step in trace.steps:
        if step.beyond_context:
            status.append(BEYOND_CONTEXT)
        elif step.token_end <= step.token_start or step.boundary_token is None:
            status.append(NO_TOKENS)
        else:
            status.append(CAPTURED)
        last.append(_last_content_token(trace, step, starts) if status[-1] == CAPTURED else -1)
    return PlannedTrace(
        trace=trace,
        ids=np.asarray(ids[:max_len], dtype=np.int64),
        n_tokens_full=len(ids),
        status=tuple(status),
        last_token=tuple(last),
    )


def _cut(planned: list[PlannedTrace], max_batch_tokens: int, batch_size: int) -> list[list[PlannedTrace]]:
    """Greedy length buckets: longest first; a batch grows while its padded size fits the token budget."""
    order = sorted(planned, key=lambda p: -len(p.ids))  # stable: equal lengths keep input order
    batches: list[list[PlannedTrace]] = []
    for p in order:
        cur = batches[-1] if batches else None
        # sorted longest first, so the batch's padded width is its first sequence's length
        if cur and len(cur) < batch_size and (len(cur) + 1) * max(len(cur[0].ids), 1) <= max_batch_tokens:
            cur.append(p)
        else:
            batches.append([p])
    return batches


def plan_batches(
    traces: Iterable[Trace],
    tokenizer,
    *,
    max_len: int,
    window: int,
    max_batch_tokens: int,
    batch_size: int,
) -> Iterator[PlannedBatch]:
    """Batches of planned traces for the whole input, in a deterministic order (a sequence longer than
    ``max_batch_tokens`` gets a batch of its own)."""
    it = iter(traces)
    number = 0
    while chunk := list(islice(it, window)):
        texts = [t.text for t in chunk]
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        planned = [
            _plan_trace(t, ids, [tuple(o) for o in offs], max_len)
            for t, ids, offs in zip(chunk, enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
        for batch in _cut(planned, max_batch_tokens, batch_size):
            yield PlannedBatch(number=number, traces=tuple(batch))
            number += 1
