"""Logit baselines equal their definitions on the stored statistics and point the right way."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.probes.logits import BASELINES, baseline_table, logit_baselines


def test_baselines_from_a_store(toy_store):
    idx = toy_store.index[toy_store.index.row >= 0]
    b = logit_baselines(toy_store, idx)
    assert list(b.columns) == ["trace_id", "problem_id", "step_index", *BASELINES]
    np.testing.assert_allclose(b.one_minus_max_prob, 1 - idx.logit_max_prob.to_numpy(), rtol=1e-6)
    lp = toy_store.step_tokens("logprob", idx.iloc[:3])
    for i, t in enumerate(lp):
        assert b.one_minus_min_prob[i] == pytest.approx(1 - float(t[~t.isnan()].min().exp()), rel=1e-6)
    # the smallest token probability is at most the mean top probability
    assert (b.one_minus_min_prob >= b.one_minus_max_prob - 1e-6).all()
    y = (~idx.label_correct.astype(bool)).to_numpy().astype(int)
    table = baseline_table(b, y)
    assert table.scorer.tolist() == list(BASELINES)
    assert table.roc_auc.between(0, 1).all() and table.brier.isna().all()
