"""Sweeps (tidy rows, control, bootstrap summary) and the confidence-vector search, on the tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.labels import traces_from_samples
from workbench.steering import SaeWeights, SteeringError, SteeringVector
from workbench.steering.confidence import ConfidenceConfig, boundary_entropy, search
from workbench.steering.sweep import METRICS, TRACE_COLUMNS, SweepConfig, run_sweep, summarise
from workbench.toy import TaskConfig, generate_samples

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def sweep_rows(tiny_model):
    problems = [s.problem for s in generate_samples(TaskConfig(max_statements=2), 2, seed=5)]
    prov = {"source": "test", "read_hook": "blocks.0.hook_resid_post", "pooling": "boundary"}
    v = SteeringVector(vector=torch.randn(32, generator=torch.Generator().manual_seed(0)), hook=HOOK, provenance=prov)
    cfg = SweepConfig(alphas=(0.0, 4.0), seeds=(0, 1), max_new_tokens=16, progress=False)
    return run_sweep(tiny_model, v, problems, cfg)


def test_sweep_rows_are_tidy_and_carry_the_control(sweep_rows):
    df = sweep_rows
    assert list(df.columns) == list(TRACE_COLUMNS)
    assert len(df) == 2 * 2 * 2 * 2  # directions x alphas x seeds x problems
    assert set(df.direction) == {"steered", "random"}
    norms = df.groupby("direction").vector_norm.unique()
    np.testing.assert_allclose(norms["steered"], norms["random"], rtol=1e-6)  # control of equal norm
    assert (df.read_hook == "blocks.0.hook_resid_post").all() and (df.hook == HOOK).all()
    assert (df.positions == "boundary").all()
    # alpha = 0 is the unsteered model for both directions: identical samples
    a0 = df[df.alpha == 0].sort_values(["direction", "seed", "problem_id"])
    assert a0[a0.direction == "steered"].n_tokens.tolist() == a0[a0.direction == "random"].n_tokens.tolist()
    rate = np.where(df.n_compute > 0, df.n_wait / df.n_compute.clip(lower=1), np.nan)
    np.testing.assert_allclose(df.wait_rate.to_numpy(), rate, equal_nan=True)
    assert df.attrs["sweep"]["alphas"] == (0.0, 4.0)


def test_summary_is_a_ratio_of_sums_with_a_bracketing_interval(sweep_rows):
    s = summarise(sweep_rows, n_boot=200)
    assert set(s.metric) == set(METRICS)
    assert list(s.columns[:5]) == ["vector", "direction", "edit", "alpha", "metric"]
    g = sweep_rows[(sweep_rows.direction == "steered") & (sweep_rows.alpha == 4.0)]
    row = s[(s.direction == "steered") & (s.alpha == 4.0)].set_index("metric")
    assert row.loc["length", "value"] == pytest.approx(g.n_tokens.mean())
    assert row.loc["accuracy", "value"] == pytest.approx(g.answer_correct.mean())
    ok = s.dropna(subset=["value", "lo", "hi"])
    assert ((ok.lo <= ok.value + 1e-12) & (ok.value <= ok.hi + 1e-12)).all()
    assert (s.n_problems == 2).all() and (s.n_traces == 4).all()


def test_summary_bootstrap_resamples_problems():
    rows = pd.DataFrame(
        {"vector": "v", "direction": "steered", "edit": "additive", "alpha": 1.0,
         "problem_id": ["a", "a", "b", "b"], "n_wait": [2, 2, 0, 0], "n_compute": [4, 4, 4, 4],
         "n_check": 0, "n_fresh_error": 0, "answer_correct": [True, True, False, False], "n_tokens": 10}
    )  # fmt: skip
    s = summarise(rows, n_boot=500).set_index("metric")
    assert s.loc["wait_rate", "value"] == pytest.approx(0.25)
    # whole problems are resampled: the interval reaches both extremes 0 and 0.5
    assert s.loc["wait_rate", "lo"] == pytest.approx(0.0) and s.loc["wait_rate", "hi"] == pytest.approx(0.5)


def test_sweep_rejects_bad_input_before_sampling(tiny_model):
    with pytest.raises(SteeringError, match="alphas"):
        SweepConfig(alphas=())
    with pytest.raises(SteeringError, match="edit"):
        SweepConfig(edit="multiply")
    bad = SteeringVector(vector=torch.ones(8), hook=HOOK)
    with pytest.raises(SteeringError, match="d_model"):
        run_sweep(tiny_model, bad, [object()], SweepConfig(progress=False))


def test_confidence_search_lowers_boundary_entropy_and_leaves_the_model_alone(embedded):
    """On the embedded model (a random tiny model's logits are near-uniform whatever is added)."""
    g = torch.Generator().manual_seed(0)
    d, n = embedded.d_model, 48
    w_dec = torch.randn(n, d, generator=g)
    w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True)
    sae = SaeWeights(W_enc=w_dec.T.clone(), b_enc=torch.zeros(n), W_dec=w_dec, b_dec=torch.zeros(d))
    hook = f"blocks.{embedded.n_layers - 2}.hook_resid_post"
    samples = generate_samples(TaskConfig(p_error=0.3, p_check=0.3), 8, seed=2)
    traces = traces_from_samples(samples, tokenizer=embedded.tokenizer, n_ctx=embedded.n_ctx)
    params = {k: p.detach().clone() for k, p in embedded.hf_model.named_parameters()}
    before = boundary_entropy(embedded, traces)
    cfg = ConfidenceConfig(steps=25, lr=0.1, batch_size=8, progress=False)
    res = search(embedded, sae, traces, cfg, hook=hook)
    after = boundary_entropy(embedded, traces, res.vector)
    assert after < 0.9 * before
    assert res.history.entropy.iloc[-1] < res.history.entropy.iloc[0]
    assert len(res.top) == 8 and res.vector.hook == hook and res.vector.provenance["source"] == "confidence_search"
    torch.testing.assert_close(res.vector.vector, res.coefficients @ w_dec)
    for k, p in embedded.hf_model.named_parameters():
        assert torch.equal(p, params[k]) and p.grad is None
