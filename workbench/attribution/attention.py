"""Step attention matrices: token attention of every head, aggregated to (query step, key step) pairs.

Thought Anchors (Bogdan et al., 2025) reads a head's token attention at the level of sentences. Entry
``(q, k)`` of a head's step matrix is the mean over the tokens of step ``q`` of the attention they pay to
the tokens of step ``k`` — averaged over ``k``'s tokens as in the paper (``key_reduce="mean"``), or summed
(``"sum"``: the share of attention that lands on ``k``). The prompt is step ``-1``. Causal: entries with
``q < k`` are NaN. With ``queries="read"`` only the positions that predict the values ``q`` reads (the
``read_chars`` label of :func:`workbench.labels.dependency_labels`, as for suppression's ``kl_read``) count
as ``q``'s query tokens: where a data dependency has to be looked up; rows of steps that read nothing are NaN.

Hot path, memory-bounded: one eager forward per batch of right-padded traces; a hook on each requested
layer's attention module turns its ``[batch, head, pos, pos]`` weights into ``[batch, head, step, step]``
right away (two matmuls with a one-hot token→step matrix), so no token-level attention outlives its layer,
and the pass stops after the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from workbench.attribution.layout import PROMPT_STEP, TraceTokens, pad_right, token_batches, trace_tokens
from workbench.attribution.masks import StopForward, attention_modules, eager_attention
from workbench.traces.types import Trace

__all__ = [
    "AttentionConfig",
    "StepAttention",
    "KEY_REDUCTIONS",
    "QUERY_REDUCTIONS",
    "QUERY_TOKENS",
    "aggregate_attention",
    "step_attention",
    "attention_frame",
]

KEY_REDUCTIONS = ("mean", "sum")
QUERY_REDUCTIONS = ("mean", "max")
QUERY_TOKENS = ("all", "read")


@dataclass(frozen=True, kw_only=True)
class AttentionConfig:
    """Which layers to read and how token attention becomes step attention."""

    layers: tuple[int, ...] | None = None
    """Layers whose heads to aggregate (None: every layer)."""
    key_reduce: str = "mean"
    """How the key step's tokens combine: 'mean' (Thought Anchors' mean over token pairs) or 'sum'."""
    query_reduce: str = "mean"
    """How the query step's tokens combine: 'mean' over them, or 'max' (the one token that looks hardest at k)."""
    queries: str = "all"
    """Query tokens of a step: 'all' its tokens, or 'read' only the positions predicting the values it reads."""
    max_batch_tokens: int = 8192
    """Padded tokens per forward (rows × longest trace); bounds the eager attention's memory."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.key_reduce not in KEY_REDUCTIONS:
            raise ValueError(f"key_reduce={self.key_reduce!r}: use one of {KEY_REDUCTIONS}")
        if self.query_reduce not in QUERY_REDUCTIONS:
            raise ValueError(f"query_reduce={self.query_reduce!r}: use one of {QUERY_REDUCTIONS}")
        if self.queries not in QUERY_TOKENS:
            raise ValueError(f"queries={self.queries!r}: use one of {QUERY_TOKENS}")
        if self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens={self.max_batch_tokens}: must be at least 1")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))


class StepAttention(NamedTuple):
    """One trace's step attention for every requested layer and head."""

    trace_id: str
    layers: tuple[int, ...]
    """The model layers of ``matrix``'s first axis."""
    matrix: Float[np.ndarray, "layer head q k"]
    """Step slots on the last two axes: slot 0 is the prompt (step -1), slot ``i + 1`` is step ``i``."""

    @property
    def steps(self) -> list[int]:
        """The step index of every slot: ``[-1, 0, 1, ...]``."""
        return list(range(PROMPT_STEP, self.matrix.shape[-1] - 1))

    def head(self, layer: int, head: int) -> Float[np.ndarray, "q k"]:
        """One head's step×step matrix (slots as in ``matrix``)."""
        return self.matrix[self.layers.index(layer), head]


def _onehot(slots: Int[Tensor, "batch pos"], n_slots: int, device) -> Float[Tensor, "batch pos slot"]:
    onehot = torch.zeros(*slots.shape, n_slots + 1, dtype=torch.float32, device=device)
    onehot.scatter_(-1, (slots % (n_slots + 1)).unsqueeze(-1), 1.0)  # slot -1 lands in the extra last column
    return onehot[..., :n_slots]


def aggregate_attention(
    weights: Float[Tensor, "batch head pos pos"],
    slots: Int[Tensor, "batch pos"],
    n_slots: int,
    key_reduce: str,
    query_slots: Int[Tensor, "batch pos"] | None = None,
    query_reduce: str = "mean",
) -> Float[Tensor, "batch head slot slot"]:
    """Token attention → step attention. ``slots`` gives each token's step slot (-1: in no step, e.g. padding).

    ``query_slots`` (default ``slots``) gives the slot each position counts for as a query (-1: none); a
    slot without query positions gets a NaN row. ``query_reduce``: mean or max over a slot's query positions.
    """
    keys = _onehot(slots, n_slots, weights.device)  # [batch, pos, slot]
    queries = keys if query_slots is None else _onehot(query_slots, n_slots, weights.device)
    to_keys = weights.float() @ keys.unsqueeze(1)  # [batch, head, pos(q), slot(k)]: attention mass into k
    n_q, n_k = queries.sum(1), keys.sum(1)  # [batch, slot]: query positions / tokens per step
    per_key = n_k.unsqueeze(1).unsqueeze(1) if key_reduce == "mean" else 1.0  # [batch, 1, 1, slot(k)]
    if query_reduce == "max":
        rows = []
        for s in range(n_slots):  # few slots: one masked max over positions per query slot
            off = (queries[..., s] == 0)[:, None, :, None]  # [batch, 1, pos, 1]
            rows.append(to_keys.masked_fill(off, -torch.inf).amax(2))  # [batch, head, slot(k)]
        best = torch.stack(rows, 2)  # [batch, head, slot(q), slot(k)]
        return torch.where(torch.isinf(best), torch.nan, best) / per_key
    sums = queries.transpose(1, 2).unsqueeze(1) @ to_keys  # [batch, head, slot(q), slot(k)]
    return sums / (n_q.unsqueeze(1).unsqueeze(-1) * per_key)


def _causal_nan(m: np.ndarray) -> np.ndarray:
    q, k = np.indices(m.shape[-2:])
    m[..., q < k] = np.nan
    return m


def step_attention(model, traces: Sequence[Trace], config: AttentionConfig = AttentionConfig()) -> list[StepAttention]:
    """Step attention matrices of ``traces`` (in order) for the layers and heads of ``config``."""
    layers = config.layers if config.layers is not None else tuple(range(model.n_layers))
    for i in layers:
        if not 0 <= i < model.n_layers:
            raise ValueError(f"layers: {i} is not a layer of this {model.n_layers}-layer model")
    toks = [trace_tokens(t, model.tokenizer, n_ctx=model.n_ctx) for t in traces]
    out: list[StepAttention | None] = [None] * len(toks)
    batches = token_batches([t.n_tokens for t in toks], [1] * len(toks), config.max_batch_tokens)
    bar = tqdm(total=len(toks), desc="step attention", unit="trace", disable=not config.progress)
    with eager_attention(model.hf_model):
        for batch in batches:
            mats = _attention_batch(model, [toks[i] for i in batch], layers, config)
            for i, m in zip(batch, mats, strict=True):
                out[i] = StepAttention(toks[i].trace_id, layers, m)
            bar.update(len(batch))
    bar.close()
    return out  # type: ignore[return-value]


def _read_query_slots(t: TraceTokens) -> list[int]:
    """Slot ``q + 1`` at every position predicting a value step ``q`` reads, -1 elsewhere."""
    out = [-1] * t.n_tokens
    for q, reads in enumerate(t.read_tokens):
        for r in reads:
            if r >= 1:
                out[r - 1] = q + 1
    return out


@torch.no_grad()
def _attention_batch(
    model, toks: list[TraceTokens], layers: tuple[int, ...], config: AttentionConfig
) -> list[np.ndarray]:
    device = model.device
    ids = pad_right([t.input_ids for t in toks], model.tokenizer.pad_token_id).to(device)
    slots = pad_right([t.slot_of_token() for t in toks], -1).to(device)
    query_slots = pad_right([_read_query_slots(t) for t in toks], -1).to(device) if config.queries == "read" else None
    n_slots = max(t.n_steps for t in toks) + 1
    got: dict[int, Tensor] = {}
    last = max(layers)
    modules = attention_modules(model)

    def hook_for(layer: int):
        def hook(module, args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(f"layer {layer}: the attention module returned no weights (eager attention needed)")
            got[layer] = aggregate_attention(
                weights, slots, n_slots, config.key_reduce, query_slots, config.query_reduce
            ).cpu()
            if layer == last:
                raise StopForward

        return hook

    with ExitStack() as stack:
        for i in layers:
            stack.callback(modules[i].register_forward_hook(hook_for(i)).remove)
        try:
            model.hf_model(input_ids=ids, use_cache=False)
        except StopForward:
            pass
    stacked = torch.stack([got[i] for i in layers], 1).numpy()  # [batch, layer, head, slot, slot]
    return [_causal_nan(stacked[b, ..., : t.n_steps + 1, : t.n_steps + 1].copy()) for b, t in enumerate(toks)]


def attention_frame(results: Sequence[StepAttention], *, include_diagonal: bool = True) -> pd.DataFrame:
    """Long format: one row per (trace_id, layer, head, q, k) with ``q >= k`` (``q > k`` without the diagonal).

    Columns: ``trace_id, layer, head, q, k, distance, value`` (steps numbered as in the trace, prompt -1).
    """
    frames = []
    for r in results:
        n_layers, n_heads, n, _ = r.matrix.shape
        li, hi, qi, ki = np.indices(r.matrix.shape).reshape(4, -1)
        keep = qi >= ki if include_diagonal else qi > ki
        frames.append(
            pd.DataFrame(
                {
                    "trace_id": r.trace_id,
                    "layer": np.asarray(r.layers)[li[keep]],
                    "head": hi[keep],
                    "q": qi[keep] - 1,
                    "k": ki[keep] - 1,
                    "distance": qi[keep] - ki[keep],
                    "value": r.matrix.reshape(-1)[keep],
                }
            )
        )
    cols = ["trace_id", "layer", "head", "q", "k", "distance", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
