"""Linear probes agree with scikit-learn; layer sweeps split by problem; the MLP probe learns what a line cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from workbench.probes.data import Standardizer, Target, assert_disjoint, derived_columns, grouped_folds, make_target
from workbench.probes.linear import ProbeConfig, fit_linear, layer_sweep
from workbench.probes.metrics import roc_auc
from workbench.probes.mlp import MLPProbeConfig, fit_mlp

F64 = ProbeConfig(l2=1.0, float64=True, tol=1e-9, max_iter=500, device="cpu")


def _data(n=300, d=8, readouts=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(readouts, n, d, generator=g) * torch.linspace(0.5, 3, d)
    w = torch.randn(d, generator=g)
    y = ((x[0] @ w + 0.8 * torch.randn(n, generator=g)) > 0).float().numpy()
    return x, y


def test_batched_logistic_equals_sklearn_per_readout():
    x, y = _data()
    probe = fit_linear(x, y, F64)
    for j in range(x.shape[0]):
        xs = ((x[j].double() - probe.standardizer.mean[j]) / probe.standardizer.scale[j]).numpy()
        ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=2000).fit(xs, y)
        np.testing.assert_allclose(probe.weight[j, :, 0].numpy(), ref.coef_[0], atol=1e-4)
        assert probe.bias[j, 0].item() == pytest.approx(ref.intercept_[0], abs=1e-4)
        auc = roc_auc(y, probe.scores(x)[j].numpy())
        assert abs(auc - roc_auc(y, ref.decision_function(xs))) < 0.01


def test_softmax_and_ridge_equal_sklearn():
    x, y = _data(readouts=1)
    xs = Standardizer.fit(x.double())(x.double())[0].numpy()
    cls = (xs[:, 1] > 0).astype(int) + (xs[:, 2] > 0.5).astype(int)  # 3 classes
    t = Target(column="c", task="multiclass", values=cls, classes=(0, 1, 2), keep=np.ones(len(cls), bool))
    probe = fit_linear(x, t, F64)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=5000).fit(xs, cls)
    want = ref.predict_proba(xs)
    np.testing.assert_allclose(probe.probabilities(x)[0].numpy(), want, atol=1e-4)
    yr = xs @ np.arange(8.0) + 0.1
    tr = Target(column="r", task="regression", values=yr, classes=(), keep=np.ones(len(yr), bool))
    ridge = fit_linear(x, tr, ProbeConfig(l2=3.0, float64=True, device="cpu"))
    ref = Ridge(alpha=3.0).fit(xs, yr)
    np.testing.assert_allclose(ridge.weight[0, :, 0].numpy(), ref.coef_, atol=1e-8)
    np.testing.assert_allclose(ridge.scores(x)[0].numpy(), ref.predict(xs), atol=1e-8)


def test_standardisation_uses_train_rows_only():
    x, y = _data(readouts=1)
    probe = fit_linear(x[:, :200], y[:200], F64)
    torch.testing.assert_close(probe.standardizer.mean[0, 0], x[0, :200].double().mean(0))


def test_layer_sweep_on_a_store(toy_store):
    res = layer_sweep(toy_store, "label_correct", positive=False, poolings=("boundary", "mean"), config=F64)
    t = res.table
    assert set(t.split) == {"val", "test"} and len(t) == 2 * 4  # 2 hooks × 2 poolings, val and test
    assert {"hook", "layer", "pooling", "target", "split", "n", "roc_auc", "pr_auc", "brier", "ece"} <= set(t.columns)
    assert sorted(t.layer.unique()) == [0, 1]
    assert res.probe.weight.shape[:2] == (4, toy_store.index.row.ge(0).sum() and 32)
    assert set(res.scores.split) == {"val", "test"}
    splits = toy_store.split(index=toy_store.index[toy_store.index.row >= 0])
    per_split = res.scores.groupby("split").problem_id.agg(set)
    assert not per_split["val"] & per_split["test"]
    assert not per_split["test"] & set(splits["train"].problem_id)


def test_problem_splits_never_share_a_problem(toy_store):
    idx = toy_store.index[toy_store.index.row >= 0]
    for train, test in grouped_folds(idx, 4):
        assert not set(idx.problem_id.iloc[train]) & set(idx.problem_id.iloc[test])
    bad = {"train": idx.iloc[::2], "test": idx.iloc[1::2]}  # a step-level split
    with pytest.raises(ValueError, match="split by problem"):
        assert_disjoint(**bad)
    with pytest.raises(ValueError, match="split by problem"):
        layer_sweep(toy_store, "label_correct", splits=bad)


def test_missing_target_column_is_a_clear_error(toy_store):
    with pytest.raises(KeyError, match="label_wrongness.*label columns: \\[.*label_correct"):
        layer_sweep(toy_store, "label_wrongness")


def test_other_targets(toy_store):
    df = derived_columns(toy_store.index)
    first = df.sort_values(["trace_id", "step_index"]).groupby("trace_id").head(2)
    a, b = first.iloc[0], first.iloc[1]
    assert a.next_first_char == b.text[0] and a.step_length == a.token_end - a.token_start
    assert make_target(df, "label_kind").task == "multiclass"
    assert make_target(df, "step_length").task == "regression"
    assert make_target(df, "label_logical", positive=False).values.mean() < 0.5
    splits = toy_store.split(index=df[df.row >= 0], fractions={"train": 0.7, "test": 0.3})
    kind = layer_sweep(toy_store, "label_kind", splits=splits, config=F64).table
    assert {"accuracy", "perplexity"} <= set(kind.columns)
    length = layer_sweep(toy_store, "step_length", splits=splits, config=F64).table
    assert {"mse", "r2"} <= set(length.columns)


def test_mlp_probe_learns_what_a_linear_probe_cannot():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1200, 4, generator=g)
    y = ((x[:, 0] * x[:, 1]) > 0).float().numpy()  # XOR of two signs: no linear read-out
    tr, va, te = slice(0, 800), slice(800, 1000), slice(1000, 1200)

    def tgt(s):
        return Target(column="y", task="binary", values=y[s], classes=(0, 1), keep=np.ones(len(y[s]), bool))

    mlp = fit_mlp(x[tr], tgt(tr), x[va], tgt(va), MLPProbeConfig(hidden=32, epochs=150, device="cpu"))
    assert roc_auc(y[te], mlp.scores(x[te]).numpy()) > 0.95
    assert roc_auc(y[te], fit_linear(x[tr], y[tr], F64).scores(x[te]).numpy()) < 0.65
    assert mlp.history and pd.DataFrame(mlp.history).val_loss.min() < mlp.history[0]["val_loss"]
