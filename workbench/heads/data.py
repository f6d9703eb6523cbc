"""Traces as token sequences for the uncertainty head: features, step membership and step labels.

A trace's sequence is its captured steps' tokens in order (the prompt is not part of it: capture stores
token features for step tokens only). :func:`load_sequences` reads every needed ``tokens/*`` key of a store
once and cuts it per trace; :func:`collate` right-pads a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.heads.model import HeadConfig

__all__ = ["TraceSequence", "Batch", "load_sequences", "collate", "feature_keys"]


@dataclass(frozen=True, kw_only=True)
class TraceSequence:
    """One trace: token features, which step each token belongs to, and the steps' labels."""

    trace_id: str
    problem_id: str
    feats: Float[Tensor, "tok feat"]
    token_step: Int[Tensor, " tok"]
    """Step number (0..n_steps-1, in order) of each token."""
    in_step: Int[Tensor, " tok"]
    """Position of each token inside its step."""
    step_index: np.ndarray
    """The trace's ``step_index`` of each step number."""
    labels: Float[Tensor, " step"]
    """1 = wrong, 0 = right, NaN = no label."""


@dataclass(frozen=True, kw_only=True)
class Batch:
    feats: Float[Tensor, "batch tok feat"]
    token_step: Int[Tensor, "batch tok"]
    in_step: Int[Tensor, "batch tok"]
    labels: Float[Tensor, "batch step"]
    """NaN where a trace has fewer steps or a step has no label."""


def feature_keys(cfg: HeadConfig) -> list[str]:
    """Store keys (under ``tokens/``) the head reads, in feature order."""
    keys = list(cfg.hooks)
    if cfg.logit_features:
        keys += ["entropy", "logprob"] + (["topk_probs"] if cfg.top_k else [])
    return keys


def token_features(parts: dict[str, Tensor], cfg: HeadConfig) -> Float[Tensor, "tok feat"]:
    """Concatenate per-key token tensors into the head's feature layout (NaN → 0)."""
    cols = [parts[h].float() for h in cfg.hooks]
    if cfg.logit_features:
        cols += [parts["entropy"].float().view(-1, 1), parts["logprob"].float().view(-1, 1)]
        if cfg.top_k:
            cols.append(parts["topk_probs"].float()[:, : cfg.top_k])
    return torch.cat(cols, dim=1).nan_to_num(0.0)


def load_sequences(
    store, steps: pd.DataFrame, cfg: HeadConfig, target: str | None, positive=False
) -> list[TraceSequence]:
    """Per-trace sequences of ``steps`` (rows of the store's index); ``target`` value ``positive`` = wrong (1)."""
    missing = [f"tokens/{k}" for k in feature_keys(cfg) if f"tokens/{k}" not in store.keys]
    if missing:
        extra = ", top_k=..." if cfg.logit_features else ""
        raise KeyError(f"the store has no {missing}; capture with TokenFeatureConfig(hooks=...{extra})")
    if target is not None and target not in steps.columns:
        labels = [c for c in steps.columns if c.startswith("label_")]
        raise KeyError(f"target column {target!r} is not in the index; label columns: {labels}")
    steps = steps[steps["token_row"] >= 0].sort_values(["trace_id", "step_index"], kind="stable")
    if len(steps) == 0:
        raise ValueError("no steps with token features among the selected rows")
    flat = {k: torch.cat(store.step_tokens(k, steps)) for k in feature_keys(cfg)}
    feats = token_features(flat, cfg)
    counts = steps["n_token_rows"].to_numpy()
    if target is None:
        lab = np.full(len(steps), np.nan, dtype=np.float32)
    else:
        col = steps[target]
        lab = np.where(col.isna(), np.nan, (col == positive).astype(np.float32)).astype(np.float32)
    out, tok0, step0 = [], 0, 0
    for (tid, pid), grp in steps.groupby(["trace_id", "problem_id"], sort=False):
        n = len(grp)
        c = np.array(counts[step0 : step0 + n])
        ntok = int(c.sum())
        token_step = torch.repeat_interleave(torch.arange(n), torch.as_tensor(c))
        starts = torch.repeat_interleave(torch.as_tensor(np.cumsum(c) - c), torch.as_tensor(c))
        out.append(
            TraceSequence(
                trace_id=tid, problem_id=pid, feats=feats[tok0 : tok0 + ntok], token_step=token_step,
                in_step=torch.arange(ntok) - starts, step_index=grp["step_index"].to_numpy(),
                labels=torch.as_tensor(lab[step0 : step0 + n]),
            )
        )  # fmt: skip
        tok0, step0 = tok0 + ntok, step0 + n
    return out


def collate(seqs: list[TraceSequence]) -> Batch:
    """Right-pad sequences into a batch (padding: token_step −1, labels NaN)."""
    b, t = len(seqs), max(len(s.token_step) for s in seqs)
    s_max = max(len(s.labels) for s in seqs)
    feats = torch.zeros((b, t, seqs[0].feats.shape[1]))
    token_step = torch.full((b, t), -1, dtype=torch.int64)
    in_step = torch.zeros((b, t), dtype=torch.int64)
    labels = torch.full((b, s_max), float("nan"))
    for i, s in enumerate(seqs):
        n = len(s.token_step)
        feats[i, :n], token_step[i, :n], in_step[i, :n] = s.feats, s.token_step, s.in_step
        labels[i, : len(s.labels)] = s.labels
    return Batch(feats=feats, token_step=token_step, in_step=in_step, labels=labels)
