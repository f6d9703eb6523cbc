"""Attention suppression: how much each later step's predictions change when no token may attend to step k.

Thought Anchors' causal step×step matrix. For each step ``k`` the trace is run once more with attention to
``k``'s tokens masked out for every later query (all layers and heads, or only the chosen ``(layer, head)``
pairs); entry ``(q, k)`` is the mean, over the positions that predict step ``q``'s tokens, of
``KL(p_plain || p_masked)`` between the next-token distributions without and with the mask
(``token_reduce="max"``: the largest of them — one sharply changed prediction, such as a value looked up
from ``k``, is not diluted by the rest of the line). ``kl_read``
averages only over the positions that predict the values ``q`` read from earlier steps (the ``read_chars``
label of :func:`workbench.labels.dependency_labels`): where a data dependency should show, not the
bookkeeping of the line.

Batched: a trace of S steps becomes S + 1 rows of one forward (row 0 masks nothing and is the reference),
rows of several traces share a forward up to ``max_batch_tokens``, and the suppression is a float 4-D
attention mask (:mod:`workbench.attribution.masks`) under eager attention. Positions before the end of ``k``
see exactly the plain mask, so their logits are unchanged (tested bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from workbench.attribution.layout import TraceTokens, pad_right, token_batches, trace_tokens
from workbench.attribution.masks import causal_mask, eager_attention, layer_masks
from workbench.traces.types import Trace

__all__ = [
    "TOKEN_REDUCTIONS",
    "SuppressionConfig",
    "StepSuppression",
    "suppression_rows",
    "masked_logits",
    "token_kl",
    "step_suppression",
    "suppression_frame",
]

TOKEN_REDUCTIONS = ("mean", "max")


@dataclass(frozen=True, kw_only=True)
class SuppressionConfig:
    """Where to suppress attention and how large a forward may be."""

    heads: tuple[tuple[int, int], ...] | None = None
    """(layer, head) pairs whose attention to the masked step is suppressed (None: every layer and head)."""
    token_reduce: str = "mean"
    """How the token KLs of q's positions combine into the (q, k) entry: 'mean' (Thought Anchors) or 'max'."""
    max_batch_tokens: int = 2048
    """Padded tokens per forward (rows × longest trace); logits of that many positions are held at once. On
    CPU small forwards stay in cache (2048 measured fastest of 256–16384 on the embedded model); raise it on
    a GPU."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.token_reduce not in TOKEN_REDUCTIONS:
            raise ValueError(f"token_reduce={self.token_reduce!r}: use one of {TOKEN_REDUCTIONS}")
        if self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens={self.max_batch_tokens}: must be at least 1")
        if self.heads is not None:
            heads = tuple((int(a), int(b)) for a, b in self.heads)
            if not heads:
                raise ValueError("heads=(): give at least one (layer, head) pair, or None for all heads")
            object.__setattr__(self, "heads", heads)


class StepSuppression(NamedTuple):
    """One trace's suppression matrices (completion steps 0..S-1 on both axes; NaN where ``q <= k``)."""

    trace_id: str
    kl: Float[np.ndarray, "q k"]
    """Mean (or max) KL over the positions predicting ``q``'s tokens when attention to ``k`` is suppressed."""
    kl_read: Float[np.ndarray, "q k"]
    """The same over the positions predicting the values ``q`` read (NaN when ``q`` reads none)."""


def suppression_rows(
    toks: Sequence[TraceTokens], n_pos: int, *, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> Float[Tensor, "batch 1 pos pos"]:
    """Masks of each trace's ``S + 1`` rows: row 0 plain causal, row ``k + 1`` keeps later queries off ``k``."""
    mask = causal_mask(sum(t.n_steps + 1 for t in toks), n_pos, dtype=dtype, device=device)
    row = 0
    for t in toks:
        for k, (a, b) in enumerate(t.spans):
            mask[row + 1 + k, 0, b:, a:b] = torch.finfo(dtype).min
        row += t.n_steps + 1
    return mask


@torch.no_grad()
def masked_logits(
    model,
    input_ids: Int[Tensor, "batch pos"],
    mask: Float[Tensor, "batch 1 pos pos"],
    *,
    heads: Sequence[tuple[int, int]] | None = None,
) -> Float[Tensor, "batch pos vocab"]:
    """Logits of an eager forward under the float 4-D ``mask``; with ``heads``, only those heads see it.

    Call inside :func:`~workbench.attribution.masks.eager_attention`.
    """
    dev = model.device
    input_ids, mask = input_ids.to(dev), mask.to(dev)
    ctx = nullcontext()
    if heads is not None:
        plain = causal_mask(mask.shape[0], mask.shape[-1], dtype=mask.dtype, device=dev)
        n_heads = int(model.config.num_attention_heads)
        chosen: dict[int, Tensor] = {}
        for layer, head in heads:
            if not (0 <= layer < model.n_layers and 0 <= head < n_heads):
                raise ValueError(f"heads: ({layer}, {head}) is not a (layer, head) of this model")
            chosen.setdefault(layer, torch.zeros(n_heads, dtype=torch.bool, device=dev))[head] = True
        ctx = layer_masks(model, {i: torch.where(sel[None, :, None, None], mask, plain) for i, sel in chosen.items()})
        mask = plain
    with ctx:
        return model.hf_model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits


def token_kl(
    reference: Float[Tensor, "pos vocab"], other: Float[Tensor, "batch pos vocab"]
) -> Float[Tensor, "batch pos"]:
    """``KL(p_reference || p_other)`` of the next-token distribution at every position (float32)."""
    ref = torch.log_softmax(reference.float(), -1)
    return (ref.exp() * (ref - torch.log_softmax(other.float(), -1))).sum(-1).clamp_min(0)


def _matrices(t: TraceTokens, kl: Float[Tensor, "k pos"], token_reduce: str) -> tuple[np.ndarray, np.ndarray]:
    kl = kl.cpu().double().numpy()
    reduce = np.mean if token_reduce == "mean" else np.max
    s = t.n_steps
    full, read = np.full((s, s), np.nan), np.full((s, s), np.nan)
    for q in range(s):
        pos = list(t.predicting(q))
        rpos = [r - 1 for r in t.read_tokens[q] if r >= 1]
        if pos and q > 0:
            full[q, :q] = reduce(kl[:q, pos], 1)
        if rpos and q > 0:
            read[q, :q] = reduce(kl[:q, rpos], 1)
    return full, read


def step_suppression(
    model, traces: Sequence[Trace], config: SuppressionConfig = SuppressionConfig()
) -> list[StepSuppression]:
    """Suppression matrices of ``traces`` (in order)."""
    toks = [trace_tokens(t, model.tokenizer, n_ctx=model.n_ctx) for t in traces]
    out: list[StepSuppression | None] = [None] * len(toks)
    batches = token_batches([t.n_tokens for t in toks], [t.n_steps + 1 for t in toks], config.max_batch_tokens)
    bar = tqdm(total=len(toks), desc="suppression", unit="trace", disable=not config.progress)
    with eager_attention(model.hf_model):
        for batch in batches:
            part = [toks[i] for i in batch]
            ids = pad_right([t.input_ids for t in part for _ in range(t.n_steps + 1)], model.tokenizer.pad_token_id)
            mask = suppression_rows(part, ids.shape[1], dtype=model.dtype, device=model.device)
            logits = masked_logits(model, ids, mask, heads=config.heads)
            row = 0
            for i, t in zip(batch, part, strict=True):
                n = t.n_tokens
                kl = token_kl(logits[row, :n], logits[row + 1 : row + 1 + t.n_steps, :n])
                out[i] = StepSuppression(t.trace_id, *_matrices(t, kl, config.token_reduce))
                row += t.n_steps + 1
            bar.update(len(batch))
    bar.close()
    return out  # type: ignore[return-value]


def suppression_frame(results: Sequence[StepSuppression]) -> pd.DataFrame:
    """Long format, one row per pair ``q > k``: ``trace_id, q, k, distance, kl, kl_read``."""
    frames = []
    for r in results:
        q, k = np.nonzero(np.tril(np.ones_like(r.kl, dtype=bool), -1))
        frames.append(
            pd.DataFrame(
                {
                    "trace_id": r.trace_id,
                    "q": q,
                    "k": k,
                    "distance": q - k,
                    "kl": r.kl[q, k],
                    "kl_read": r.kl_read[q, k],
                }
            )
        )
    cols = ["trace_id", "q", "k", "distance", "kl", "kl_read"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
