"""Receiver heads on hand-made attention frames; dependency pairs and AUC tables on hand-written traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.attribution.attention import StepAttention, attention_frame
from workbench.attribution.evaluate import auc_table, dependency_pairs, per_query
from workbench.attribution.receivers import head_kurtosis, receiver_scores, top_heads, vertical_scores


def _frame(n_steps: int = 8) -> pd.DataFrame:
    """Two heads: head 0 spreads attention evenly, head 1 sends every query to step 1 (a receiver)."""
    n = n_steps + 1
    m = np.full((1, 2, n, n), np.nan)
    for q in range(n):
        m[0, 0, q, : q + 1] = 1.0 / (q + 1)
        m[0, 1, q, : q + 1] = 0.01
        if q > 2:
            m[0, 1, q, 2] = 0.9  # slot 2 = step 1
    return attention_frame([StepAttention("t", (3,), m), StepAttention("u", (3,), m.copy())])


def test_vertical_scores_kurtosis_and_receiver_scores():
    frame = _frame()
    vert = vertical_scores(frame, min_distance=2)
    assert list(vert.columns) == ["trace_id", "layer", "head", "k", "vertical", "n_receivers"]
    assert vert.k.min() == 0  # prompt left out by default
    one = vert.query("trace_id == 't' and head == 1 and k == 1").iloc[0]
    assert one.vertical == pytest.approx(0.9) and one.n_receivers == 5  # steps 3..7 lie at least 2 after it
    # head 0, step 0 (slot 1): mean of 1/(slot+1) over the slots 3..8 of steps 2..7
    h0 = vert.query("trace_id == 't' and head == 0 and k == 0").vertical.item()
    assert h0 == pytest.approx(np.mean([1 / (q + 1) for q in range(3, 9)]))
    kurt = head_kurtosis(vert)
    assert list(kurt.columns) == ["layer", "head", "kurtosis", "n_traces"]
    assert top_heads(kurt, 1) == [(3, 1)] and (kurt.n_traces == 2).all()
    scores = receiver_scores(vert, [(3, 1)])
    best = scores.loc[scores.groupby("trace_id").receiver_score.idxmax()]
    assert (best.step == 1).all()
    with pytest.raises(ValueError, match="min_distance"):
        vertical_scores(frame, min_distance=0)


def test_dependency_pairs_and_auc_table(toy_traces):
    pairs = dependency_pairs(toy_traces)
    t1 = pairs[pairs.trace_id == "t1"].set_index(["q", "k"])
    # y (step 2) reads n from the wait (step 1); d (step 4) reads y (step 2); the answer reads d
    assert t1.loc[(2, 1), "data"] and not t1.loc[(2, 0), "data"]
    assert t1.loc[(4, 2), "data"] and t1.loc[(5, 4), "data"] and t1.loc[(5, 4), "is_answer"]
    assert t1.loc[(3, 2), "control"] and not t1.loc[(3, 1), "control"]
    # last *stated*: the wait reads its operands from the line it corrects, d reads y from the check line
    assert t1.loc[(1, 0), "data_stated"] and not t1.loc[(1, 0), "data"]
    assert t1.loc[(4, 3), "data_stated"] and not t1.loc[(4, 2), "data_stated"]
    assert len(pairs) == sum(len(t.steps) * (len(t.steps) - 1) // 2 for t in toy_traces)
    assert (pairs.inverse_distance == 1 / pairs.distance).all()
    pairs["oracle"] = pairs["data"].astype(float)
    table = auc_table(pairs, ["oracle", "adjacent"], length_edges=(2, 4))
    assert list(table.columns) == ["method", "target", "subset", "length", "n_pairs", "n_positive", "auc"]
    row = table.query("method == 'oracle' and target == 'data' and subset == 'non-answer' and length == 'all'")
    assert row.auc.item() == 1.0
    adj = table.query("method == 'adjacent' and target == 'control' and subset == 'non-answer' and length == 'all'")
    assert adj.auc.item() == 1.0
    assert set(table.length) == {"all", "2-3", "4+"}


def test_per_query_rescales_within_each_row():
    pairs = pd.DataFrame(
        {
            "trace_id": ["a", "a", "a", "a", "b", "b"],
            "q": [1, 2, 2, 2, 1, 1],
            "k": [0, 0, 1, 1, 0, 0],
            "score": [2.0, 1.0, 3.0, np.nan, 4.0, 4.0],
        }
    )
    np.testing.assert_allclose(per_query(pairs, "score", "sum"), [1.0, 0.25, 0.75, np.nan, 0.5, 0.5])
    np.testing.assert_allclose(per_query(pairs, "score", "max"), [1.0, 1 / 3, 1.0, np.nan, 1.0, 1.0])
    np.testing.assert_allclose(per_query(pairs, "score", "rank"), [1.0, 0.5, 1.0, np.nan, 0.75, 0.75])
    with pytest.raises(ValueError, match="how"):
        per_query(pairs, "score", "median")
