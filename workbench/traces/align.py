"""Token alignment: map each step's character span to token positions through the offset mapping.

Works with any fast tokenizer. With byte-level BPE a delimiter is often merged with its neighbour
(``.\\n\\n`` as one token); the step's ``boundary_token`` is then the merged token, because it is the
token that contains the step's last character. Steps reaching past the model's context are flagged
``beyond_context`` and kept (never silently dropped).

No token belongs to two steps. Where two steps meet inside a token (GPT-2/Llama-3 BPEs glue a word to
the space before it, ``ĠNext``; Qwen's glues punctuation to the next word, ``,Wait``) the cut moves to
the token's start, so the token goes with the later step's word; to its end instead when the earlier
step would be left with nothing but whitespace. The steps' character spans (and ``text``, if its content
changed) move with the cut, so a step's boundary token always lies inside the step.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import replace

from workbench.traces.types import Step, Trace

__all__ = ["token_offsets", "align_trace"]


def token_offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every token of ``text`` (no special tokens)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tokenizer: a fast tokenizer is needed for offset mappings (save a tokenizer.json)")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [tuple(o) for o in enc["offset_mapping"]]


def _snap_cuts(trace: Trace, starts: list[int], ends: list[int]) -> list[Step]:
    """The steps with every cut shared by two steps moved out of the token it falls inside."""
    text, base = trace.completion, len(trace.prompt)
    steps = list(trace.steps)
    for i in range(1, len(steps)):
        prev, nxt = steps[i - 1], steps[i]
        cut = nxt.char_start
        k = bisect_left(starts, base + cut) - 1  # the last token starting before the cut
        if prev.char_end != cut or k < 0 or ends[k] <= base + cut:
            continue  # the steps do not meet, or the cut is a token edge already
        back, fwd = starts[k] - base, ends[k] - base
        if back >= prev.char_start and text[prev.char_start : back].strip():
            new = back
        elif fwd <= nxt.char_end and text[fwd : nxt.char_end].strip():
            new = fwd
        else:  # one token holds all of one step's content: nothing to move to
            continue
        steps[i - 1] = _respan(prev, prev.char_start, new, text)
        steps[i] = _respan(nxt, new, nxt.char_end, text)
    return steps


def _respan(step: Step, start: int, end: int, text: str) -> Step:
    """``step`` over ``[start, end)``; its text follows only if the content (not just whitespace) changed."""
    content = text[start:end].strip()
    changed = content != text[step.char_start : step.char_end].strip()
    return replace(step, char_start=start, char_end=end, text=content if changed else step.text)


def align_trace(
    trace: Trace, tokenizer, *, n_ctx: int | None = None, offsets: list[tuple[int, int]] | None = None
) -> Trace:
    """Fill ``token_start``/``token_end``/``boundary_token``/``beyond_context`` for every step of ``trace``."""
    offsets = offsets if offsets is not None else token_offsets(tokenizer, trace.text)
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    base = len(trace.prompt)
    steps = []
    for step in _snap_cuts(trace, starts, ends):
        a, b = base + step.char_start, base + step.char_end
        t0 = bisect_right(ends, a)  # first token ending after the step starts
        t1 = max(t0, bisect_left(starts, b))  # first token starting at or after the step's end
        boundary = bisect_right(starts, b - 1) - 1 if b > a else None
        if boundary is not None and boundary < t0:
            boundary = None
        beyond = n_ctx is not None and t1 > n_ctx
        steps.append(replace(step, token_start=t0, token_end=t1, boundary_token=boundary, beyond_context=beyond))
    return trace.with_steps(steps)
