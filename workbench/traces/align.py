"""Token alignment: map each step's character span to token positions through the offset mapping.

Works with any fast tokenizer. With byte-level BPE a delimiter is often merged with its neighbour
(``.\\n\\n`` as one token); the step's ``boundary_token`` is then the merged token, because it is the
token that contains the step's last character. Steps reaching past the model's context are flagged
``beyond_context`` and kept (never silently dropped).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import replace

from workbench.traces.types import Trace

__all__ = ["token_offsets", "align_trace"]


def token_offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every token of ``text`` (no special tokens)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tokenizer: a fast tokenizer is needed for offset mappings (save a tokenizer.json)")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [tuple(o) for o in enc["offset_mapping"]]


def align_trace(
    trace: Trace, tokenizer, *, n_ctx: int | None = None, offsets: list[tuple[int, int]] | None = None
) -> Trace:
    """Fill ``token_start``/``token_end``/``boundary_token``/``beyond_context`` for every step of ``trace``."""
    offsets = offsets if offsets is not None else token_offsets(tokenizer, trace.text)
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    base = len(trace.prompt)
    steps = []
    for step in trace.steps:
        a, b = base + step.char_start, base + step.char_end
        t0 = bisect_right(ends, a)  # first token ending after the step starts
        t1 = max(t0, bisect_left(starts, b))  # first token starting at or after the step's end
        boundary = bisect_right(starts, b - 1) - 1 if b > a else None
        if boundary is not None and boundary < t0:
            boundary = None
        beyond = n_ctx is not None and t1 > n_ctx
        steps.append(replace(step, token_start=t0, token_end=t1, boundary_token=boundary, beyond_context=beyond))
    return trace.with_steps(steps)
