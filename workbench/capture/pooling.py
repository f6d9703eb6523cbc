"""Step pooling on the device: from one activation ``[batch, pos, d_model]`` to per-step vectors.

Runs inside a forward hook, so only the rows a step needs ever leave the activation: ``boundary`` and
``last`` are single-row gathers; ``mean`` and ``max`` gather the steps' tokens once (``[tok, d_model]``,
about the completion's size, never the padded batch) and reduce them by segment with ``index_add_`` /
``scatter_reduce_``. Means accumulate in float32 even when the model runs in bf16.

Sequences are right-padded and fed without an attention mask: a causal model never lets a real token
see a later pad, so real positions are exact, positions need no shifting, and attention keeps its fast
causal kernel (flash/sdpa ``is_causal``) instead of a dense mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.capture.plan import CAPTURED, PlannedTrace

__all__ = ["StepIndex", "HostBatch", "make_batch", "pool_steps", "gather_tokens", "attention_to_previous"]


@dataclass(frozen=True, kw_only=True)
class StepIndex:
    """Where a batch's captured steps and their tokens sit in the padded batch (device tensors)."""

    step_row: Int[Tensor, " step"]
    """Batch row of each captured step."""
    boundary: Int[Tensor, " step"]
    last: Int[Tensor, " step"]
    n_tokens: Int[Tensor, " step"]
    tok_row: Int[Tensor, " tok"]
    """Batch row of every token of every captured step, steps in order."""
    tok_pos: Int[Tensor, " tok"]
    tok_step: Int[Tensor, " tok"]
    """Which captured step (0..step-1) each token belongs to."""

    @property
    def n_steps(self) -> int:
        return int(self.step_row.shape[0])

    def to(self, device: torch.device) -> StepIndex:
        nb = device.type == "cuda"
        return StepIndex(**{k: v.to(device, non_blocking=nb) for k, v in self.__dict__.items()})


@dataclass(frozen=True, kw_only=True)
class HostBatch:
    """A padded batch on the host and the index of its captured steps."""

    input_ids: Int[Tensor, "batch pos"]
    index: StepIndex


def make_batch(traces: Sequence[PlannedTrace], pad_id: int, *, pin: bool = False) -> HostBatch:
    """Right-pad the traces' ids and index their captured steps (vectorised; no per-token Python)."""
    width = max(1, max(len(p.ids) for p in traces))
    ids = np.full((len(traces), width), pad_id, dtype=np.int64)
    rows, starts, ends, bounds, lasts = [], [], [], [], []
    for b, p in enumerate(traces):
        ids[b, : len(p.ids)] = p.ids
        for step, status, last in zip(p.trace.steps, p.status, p.last_token, strict=True):
            if status == CAPTURED:
                rows.append(b)
                starts.append(step.token_start)
                ends.append(step.token_end)
                bounds.append(step.boundary_token)
                lasts.append(last)
    step_row, start, end = (np.asarray(x, dtype=np.int64) for x in (rows, starts, ends))
    lens = end - start
    tok_step = np.repeat(np.arange(len(lens)), lens)
    first = np.cumsum(lens) - lens  # offset of each step's first token in the flat token list
    tok_pos = np.repeat(start, lens) + np.arange(int(lens.sum())) - np.repeat(first, lens)
    index = StepIndex(
        step_row=torch.from_numpy(step_row),
        boundary=torch.as_tensor(bounds, dtype=torch.int64),
        last=torch.as_tensor(lasts, dtype=torch.int64),
        n_tokens=torch.from_numpy(lens),
        tok_row=torch.from_numpy(step_row[tok_step]),
        tok_pos=torch.from_numpy(tok_pos),
        tok_step=torch.from_numpy(tok_step),
    )
    input_ids = torch.from_numpy(ids)
    if pin:
        input_ids = input_ids.pin_memory()
        index = StepIndex(**{k: v.pin_memory() for k, v in index.__dict__.items()})
    return HostBatch(input_ids=input_ids, index=index)


def pool_steps(
    act: Float[Tensor, "batch pos d_model"], idx: StepIndex, poolings: Sequence[str], dtype: torch.dtype
) -> dict[str, Float[Tensor, "step d_model"]]:
    """Every requested pooling of every captured step, cast to ``dtype``."""
    out: dict[str, Tensor] = {}
    if "boundary" in poolings:
        out["boundary"] = act[idx.step_row, idx.boundary].to(dtype)  # [step, d_model]
    if "last" in poolings:
        out["last"] = act[idx.step_row, idx.last].to(dtype)
    if "mean" in poolings or "max" in poolings:
        x = act[idx.tok_row, idx.tok_pos]  # [tok, d_model]: only the steps' tokens leave the activation
        shape = (idx.n_steps, act.shape[-1])
        if "mean" in poolings:
            total = torch.zeros(shape, dtype=torch.float32, device=act.device).index_add_(0, idx.tok_step, x.float())
            out["mean"] = (total / idx.n_tokens.unsqueeze(1)).to(dtype)
        if "max" in poolings:
            init = torch.full(shape, float("-inf"), dtype=x.dtype, device=act.device)
            seg = idx.tok_step.unsqueeze(1).expand_as(x)
            out["max"] = init.scatter_reduce_(0, seg, x, reduce="amax").to(dtype)
    return {p: out[p] for p in poolings}


def gather_tokens(act: Float[Tensor, "batch pos d_model"], idx: StepIndex) -> Float[Tensor, "tok d_model"]:
    """The activation at every token of every captured step (token-level features)."""
    return act[idx.tok_row, idx.tok_pos]


def attention_to_previous(
    weights: Float[Tensor, "batch head q k"], idx: StepIndex, k: int
) -> Float[Tensor, "tok head k"]:
    """Each head's attention weight from every step token ``t`` to tokens ``t-1 … t-k`` (NaN before position 0)."""
    back = torch.arange(1, k + 1, device=weights.device)
    key_pos = idx.tok_pos.unsqueeze(1) - back  # [tok, k]
    valid = key_pos >= 0
    # advanced indices split by the head slice: numpy rules put the broadcast dims first → [tok, k, head]
    w = weights[idx.tok_row.unsqueeze(1), :, idx.tok_pos.unsqueeze(1), key_pos.clamp(min=0)]
    w = w.float().masked_fill(~valid.unsqueeze(-1), float("nan"))
    return w.transpose(1, 2)  # [tok, head, k]
