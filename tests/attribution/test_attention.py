"""Step attention matrices against a plain loop over tokens, on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution.attention import AttentionConfig, attention_frame, step_attention
from workbench.attribution.layout import trace_tokens
from workbench.attribution.masks import eager_attention


def reference_matrix(model, trace, key_reduce: str, queries: str = "all", query_reduce: str = "mean") -> np.ndarray:
    """[layer, head, slot, slot] by looping over heads, step pairs and tokens (one trace, no batching)."""
    tt = trace_tokens(trace, model.tokenizer)
    with eager_attention(model.hf_model), torch.no_grad():
        out = model.hf_model(input_ids=torch.tensor([tt.input_ids]), output_attentions=True, use_cache=False)
    spans = [(0, tt.n_prompt), *tt.spans]
    n = len(spans)
    if queries == "all":
        query_positions = [list(range(a, b)) for a, b in spans]
    else:  # the positions predicting the value tokens a step reads; the prompt reads nothing
        query_positions = [[], *([r - 1 for r in reads if r >= 1] for reads in tt.read_tokens)]
    ref = np.full((len(out.attentions), out.attentions[0].shape[1], n, n), np.nan)
    for layer, att in enumerate(out.attentions):
        a = att[0].double().numpy()
        for h in range(a.shape[0]):
            for qi in range(n):
                if not query_positions[qi]:
                    continue
                for ki, (k0, k1) in enumerate(spans[: qi + 1]):
                    per_query = [sum(a[h, t, s] for s in range(k0, k1)) for t in query_positions[qi]]
                    per_query = [v / (k1 - k0) for v in per_query] if key_reduce == "mean" else per_query
                    reduced = max(per_query) if query_reduce == "max" else sum(per_query) / len(per_query)
                    ref[layer, h, qi, ki] = reduced
    return ref


@pytest.mark.parametrize("query_reduce", ["mean", "max"])
@pytest.mark.parametrize("queries", ["all", "read"])
@pytest.mark.parametrize("key_reduce", ["mean", "sum"])
def test_batched_aggregation_equals_token_loop(tiny_model, toy_traces, key_reduce, queries, query_reduce):
    impl = tiny_model.hf_model.config._attn_implementation
    # a small token budget forces several batches with padding
    cfg = AttentionConfig(
        key_reduce=key_reduce, queries=queries, query_reduce=query_reduce, max_batch_tokens=150, progress=False
    )
    results = step_attention(tiny_model, toy_traces, cfg)
    assert tiny_model.hf_model.config._attn_implementation == impl  # eager only inside the call
    for trace, res in zip(toy_traces, results, strict=True):
        assert res.trace_id == trace.trace_id and res.steps == list(range(-1, len(trace.steps)))
        ref = reference_matrix(tiny_model, trace, key_reduce, queries, query_reduce)
        np.testing.assert_allclose(res.matrix, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    m = results[1].matrix
    if queries == "read":  # the prompt reads nothing; every step of this trace reads a value
        assert np.isnan(m[:, :, 0]).all()
        assert all(not np.isnan(m[:, :, q, : q + 1]).any() for q in range(1, m.shape[-1]))
    elif key_reduce == "sum" and query_reduce == "mean":  # every query's attention sums to 1 over the slots it can see
        np.testing.assert_allclose(np.nansum(m, -1), 1.0, rtol=1e-5)


def test_layers_subset_and_long_frame(tiny_model, toy_traces):
    (res,) = step_attention(tiny_model, toy_traces[:1], AttentionConfig(layers=(1,), progress=False))
    full = step_attention(tiny_model, toy_traces[:1], AttentionConfig(progress=False))[0]
    assert res.layers == (1,) and res.matrix.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(res.head(1, 2), full.head(1, 2), rtol=1e-6, equal_nan=True)
    frame = attention_frame([res])
    assert list(frame.columns) == ["trace_id", "layer", "head", "q", "k", "distance", "value"]
    assert len(frame) == 4 * (4 * 5 // 2) and (frame.q >= frame.k).all() and frame.k.min() == -1
    row = frame.query("head == 2 and q == 1 and k == 0").value.item()
    assert row == pytest.approx(res.head(1, 2)[2, 1])
    with pytest.raises(ValueError, match="layers"):
        step_attention(tiny_model, toy_traces[:1], AttentionConfig(layers=(7,)))
    with pytest.raises(ValueError, match="key_reduce"):
        AttentionConfig(key_reduce="max")
    with pytest.raises(ValueError, match="query_reduce"):
        AttentionConfig(query_reduce="median")
    with pytest.raises(ValueError, match="queries"):
        AttentionConfig(queries="reads")
