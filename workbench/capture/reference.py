"""The straightforward capture the hot path is checked against (tests) and timed against (benchmarks).

A full ``run_with_cache`` of each batch on the TransformerBridge (every position of every requested
hook kept), then pooling step by step in Python from the traces' own token alignment. Slow by design;
it shares no code with the hot path's planning or pooling, only the traces layer's ``align_trace``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.models import WorkbenchModel
from workbench.traces import Trace, align_trace

__all__ = ["ReferenceResult", "naive_capture"]


@dataclass(frozen=True, kw_only=True)
class ReferenceResult:
    """Reference step vectors, one row per step that has vectors."""

    steps: list[tuple[str, int]]
    """``(trace_id, step_index)`` of each row."""
    vectors: dict[str, Float[Tensor, "step d_model"]]
    """``{hook}/{pooling}`` → rows."""


def _pool(a: Float[Tensor, "pos d_model"], start: int, end: int, boundary: int, last: int, pooling: str) -> Tensor:
    if pooling == "boundary":
        return a[boundary]
    if pooling == "last":
        return a[last]
    if pooling == "mean":
        return a[start:end].mean(0)
    if pooling == "max":
        return a[start:end].max(0).values
    raise ValueError(f"pooling={pooling!r}")


def _last_content(trace: Trace, step, offsets: list[tuple[int, int]]) -> int:
    """The token holding the step's last non-whitespace character."""
    content = trace.completion[step.char_start : step.char_end].rstrip()
    if not content:
        return step.boundary_token
    char = len(trace.prompt) + step.char_start + len(content) - 1
    tok = bisect_right([s for s, _ in offsets], char) - 1
    return min(max(tok, step.token_start), step.token_end - 1)


@torch.no_grad()  # not inference_mode: the bridge caches tensors that later autograd calls reuse
def naive_capture(
    model: WorkbenchModel,
    traces: Sequence[Trace],
    hooks: Sequence[str],
    poolings: Sequence[str] = ("boundary", "last", "mean", "max"),
    *,
    max_len: int | None = None,
    batches: Sequence[Sequence[int]] | None = None,
    cache_all: bool = False,
) -> ReferenceResult:
    """Reference vectors of ``traces``; ``batches`` (lists of positions in ``traces``) default to one trace each.

    ``cache_all`` caches every hook point (``run_with_cache`` without a ``names_filter``, its default).
    """
    max_len = min(max_len or model.n_ctx, model.n_ctx)
    batches = batches if batches is not None else [[i] for i in range(len(traces))]
    tok = model.tokenizer
    steps: list[tuple[str, int]] = []
    rows: dict[str, list[Tensor]] = {f"{h}/{p}": [] for h in hooks for p in poolings}
    for batch in batches:
        group = [traces[i] for i in batch]
        enc = tok([t.text for t in group], add_special_tokens=False, return_offsets_mapping=True)
        ids = [x[:max_len] for x in enc["input_ids"]]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for b, x in enumerate(ids):
            input_ids[b, : len(x)] = torch.tensor(x)
            mask[b, : len(x)] = 1
        _, cache = model.bridge.run_with_cache(
            input_ids.to(model.device),
            attention_mask=mask.to(model.device),
            names_filter=None if cache_all else list(hooks),
        )
        for b, trace in enumerate(group):
            offsets = [tuple(o) for o in enc["offset_mapping"][b]]
            aligned = align_trace(trace, None, n_ctx=max_len, offsets=offsets)
            for step in aligned.steps:
                if step.beyond_context or step.token_end <= step.token_start or step.boundary_token is None:
                    continue
                steps.append((trace.trace_id, step.index))
                last = _last_content(aligned, step, offsets)
                for h in hooks:
                    a = cache[h][b]
                    for p in poolings:
                        rows[f"{h}/{p}"].append(
                            _pool(a, step.token_start, step.token_end, step.boundary_token, last, p)
                        )
    vectors = {k: torch.stack(v).cpu() if v else torch.empty(0, model.d_model) for k, v in rows.items()}
    return ReferenceResult(steps=steps, vectors=vectors)
