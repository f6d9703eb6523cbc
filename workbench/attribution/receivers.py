"""Receiver heads: heads that point many later steps at a few "broadcasting" steps (Thought Anchors).

For one head and trace, a step's **vertical score** is the mean attention it receives (its column in the
head's step matrix) from steps at least ``min_distance`` later — near-diagonal entries are left out because
every head attends to its neighbourhood. A head whose vertical scores are concentrated on few steps has a
heavy-tailed score distribution: its **kurtosis** (Fisher, 0 for a normal distribution) is high. Averaged
over traces, the heads with the highest kurtosis are the **receiver heads**, and a step's **receiver score**
is its vertical score averaged over those heads.

All functions take and return tidy DataFrames (built from :func:`~workbench.attribution.attention.attention_frame`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["vertical_scores", "head_kurtosis", "top_heads", "receiver_scores"]


def vertical_scores(attention: pd.DataFrame, *, min_distance: int = 2, include_prompt: bool = False) -> pd.DataFrame:
    """Per (trace_id, layer, head, k): ``vertical`` (mean attention received from steps ``q >= k + min_distance``).

    ``attention`` is :func:`~workbench.attribution.attention.attention_frame`'s output. Steps with no step that
    far after them are left out. Columns: ``trace_id, layer, head, k, vertical, n_receivers``.
    """
    if min_distance < 1:
        raise ValueError(f"min_distance={min_distance}: must be at least 1")
    far = attention[attention["distance"] >= min_distance]
    if not include_prompt:
        far = far[far["k"] >= 0]
    grouped = far.groupby(["trace_id", "layer", "head", "k"], sort=True)["value"]
    out = grouped.agg(vertical="mean", n_receivers="count").reset_index()
    return out


def _kurtosis(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    if len(x) < 4:
        return float("nan")
    d = x - x.mean()
    m2 = (d**2).mean()
    return float((d**4).mean() / m2**2 - 3.0) if m2 > 0 else float("nan")


def head_kurtosis(vertical: pd.DataFrame, *, min_steps: int = 4) -> pd.DataFrame:
    """Per (layer, head): kurtosis of the vertical scores within each trace, averaged over traces.

    Traces with fewer than ``min_steps`` scored steps are skipped (kurtosis of 3 numbers means little).
    Columns: ``layer, head, kurtosis, n_traces``.
    """
    counts = vertical.groupby(["trace_id", "layer", "head"])["vertical"].transform("count")
    enough = vertical[counts >= max(min_steps, 4)]
    per_trace = enough.groupby(["trace_id", "layer", "head"])["vertical"].apply(lambda s: _kurtosis(s.to_numpy()))
    per_trace = per_trace.dropna().reset_index(name="kurtosis")
    out = per_trace.groupby(["layer", "head"])["kurtosis"].agg(kurtosis="mean", n_traces="count").reset_index()
    return out.sort_values("kurtosis", ascending=False, ignore_index=True)


def top_heads(kurtosis: pd.DataFrame, k: int = 3) -> list[tuple[int, int]]:
    """The ``k`` (layer, head) pairs with the highest mean kurtosis."""
    if k < 1:
        raise ValueError(f"k={k}: choose at least one head")
    best = kurtosis.sort_values("kurtosis", ascending=False).head(k)
    return [(int(a), int(b)) for a, b in zip(best["layer"], best["head"], strict=True)]


def receiver_scores(vertical: pd.DataFrame, heads: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Per (trace_id, step): ``receiver_score``, the vertical score averaged over ``heads``."""
    pairs = pd.DataFrame(list(heads), columns=["layer", "head"])
    chosen = vertical.merge(pairs, on=["layer", "head"])
    out = chosen.groupby(["trace_id", "k"])["vertical"].mean().reset_index()
    return out.rename(columns={"k": "step", "vertical": "receiver_score"})
