"""Step layout of a trace in token space: which step every token belongs to, and length-sorted batches.

Every attribution method works on steps, but models work on tokens. :func:`trace_tokens` tokenises
``prompt + completion`` once and records, per token, its step slot (the prompt is step ``-1``), each
step's token span, and the token positions whose *next-token prediction* is a step's token (position
``t`` predicts token ``t + 1``) — the positions the suppression KL averages over. When the steps carry a
``read_chars`` label (:func:`workbench.labels.dependency_labels`), the positions predicting those
characters are kept too (the read-restricted KL variant).

Batches are right-padded (:func:`pad_right`): a causal model never lets a real token see a later pad, so
real positions are exact without an attention mask and keep their ordinary position ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.labels.dependencies import PROMPT_STEP
from workbench.traces.align import align_trace, token_offsets
from workbench.traces.types import Trace

__all__ = ["PROMPT_STEP", "TraceTokens", "trace_tokens", "pad_right", "token_batches"]


@dataclass(frozen=True, kw_only=True)
class TraceTokens:
    """One trace in token space."""

    trace_id: str
    input_ids: tuple[int, ...]
    """Token ids of ``prompt + completion`` (no special tokens)."""
    n_prompt: int
    """Tokens before the first step (the prompt, step -1)."""
    spans: tuple[tuple[int, int], ...]
    """Half-open token span of every step (0..S-1)."""
    read_tokens: tuple[tuple[int, ...], ...]
    """Per step, the tokens holding values it read (from the ``read_chars`` label; empty without it)."""

    @property
    def n_steps(self) -> int:
        return len(self.spans)

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    def slot_of_token(self) -> list[int]:
        """Step slot of every token: 0 for the prompt, ``i + 1`` for step ``i``, -1 for a token in no step."""
        slots = [0] * self.n_prompt + [-1] * (self.n_tokens - self.n_prompt)
        for i, (a, b) in enumerate(self.spans):
            slots[a:b] = [i + 1] * (b - a)
        return slots

    def predicting(self, step: int) -> range:
        """Positions whose next-token prediction is a token of ``step`` (its first token is predicted before it)."""
        a, b = self.spans[step]
        return range(max(a - 1, 0), b - 1)


def trace_tokens(trace: Trace, tokenizer, *, n_ctx: int | None = None) -> TraceTokens:
    """Tokenise ``trace`` and locate its steps; ValueError naming the trace when it cannot be read."""
    if not trace.steps:
        raise ValueError(f"Trace {trace.trace_id}: has no steps; segment it first (workbench.traces.segment_trace)")
    offsets = token_offsets(tokenizer, trace.text)
    if any(s.token_start is None or s.token_end is None for s in trace.steps):
        trace = align_trace(trace, tokenizer, offsets=offsets)
    if n_ctx is not None and len(offsets) > n_ctx:
        raise ValueError(
            f"Trace {trace.trace_id}: {len(offsets)} tokens exceed the model's context of {n_ctx}; "
            "drop or shorten the trace"
        )
    ids = tokenizer(trace.text, add_special_tokens=False)["input_ids"]
    base = len(trace.prompt)
    reads = []
    for step in trace.steps:
        chars = [(base + a, base + b) for a, b in step.labels.get("read_chars") or ()]
        reads.append(tuple(t for t, (s, e) in enumerate(offsets) if any(s < b and e > a for a, b in chars)))
    return TraceTokens(
        trace_id=trace.trace_id,
        input_ids=tuple(ids),
        n_prompt=trace.steps[0].token_start,
        spans=tuple((s.token_start, s.token_end) for s in trace.steps),
        read_tokens=tuple(reads),
    )


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> Int[Tensor, "batch pos"]:
    """Right-padded ids (a causal model's real positions never see the pads)."""
    width = max(map(len, rows))
    return torch.tensor([list(r) + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def token_batches(lengths: Sequence[int], copies: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that a batch's padded size (rows × longest) stays within ``max_batch_tokens``.

    ``copies[i]`` is the number of rows item ``i`` puts in a batch (1 for attention, S + 1 for suppression);
    an item that alone exceeds the budget gets a batch of its own. Items are taken shortest first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    rows = 0
    for i in order:
        if batches and (rows + copies[i]) * lengths[i] <= max_batch_tokens:
            batches[-1].append(i)
            rows += copies[i]
        else:
            batches.append([i])
            rows = copies[i]
    return batches
