"""Attention suppression: the 4-D masks are exact (nothing masked = plain forward; earlier logits unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution.layout import pad_right, trace_tokens
from workbench.attribution.masks import attention_modules, causal_mask, eager_attention
from workbench.attribution.suppression import (
    SuppressionConfig,
    masked_logits,
    step_suppression,
    suppression_frame,
    suppression_rows,
    token_kl,
)


def test_masking_nothing_is_the_plain_forward_bit_for_bit(tiny_model, toy_traces):
    toks = [trace_tokens(t, tiny_model.tokenizer) for t in toy_traces]
    ids = pad_right([t.input_ids for t in toks], tiny_model.tokenizer.pad_token_id)
    with eager_attention(tiny_model.hf_model), torch.no_grad():
        plain = tiny_model.hf_model(input_ids=ids, use_cache=False).logits
        masked = masked_logits(tiny_model, ids, causal_mask(len(toks), ids.shape[1], dtype=torch.float32))
    assert torch.equal(plain, masked)


def test_masking_k_keeps_earlier_logits_and_gives_zero_attention_into_k(tiny_model, toy_traces):
    t = trace_tokens(toy_traces[1], tiny_model.tokenizer)
    ids = torch.tensor([t.input_ids] * (t.n_steps + 1))
    mask = suppression_rows([t], ids.shape[1], dtype=torch.float32)
    weights = {}
    hooks = [
        m.register_forward_hook(lambda mod, a, out, i=i: weights.__setitem__(i, out[1]))
        for i, m in enumerate(attention_modules(tiny_model))
    ]
    try:
        with eager_attention(tiny_model.hf_model):
            logits = masked_logits(tiny_model, ids, mask)
    finally:
        for h in hooks:
            h.remove()
    for k, (a, b) in enumerate(t.spans):
        row = k + 1
        assert torch.equal(logits[row, :b], logits[0, :b])  # nothing before the end of k changes
        if b < t.n_tokens:  # the last step has nothing after it
            assert not torch.equal(logits[row, b:], logits[0, b:])
        for w in weights.values():
            assert (w[row, :, b:, a:b] == 0).all()  # no later token attends to k, in any layer or head
            assert (w[row, :, :b] == w[0, :, :b]).all()


def test_suppression_matrix_is_causal_and_batching_does_not_change_it(tiny_model, toy_traces):
    one = [step_suppression(tiny_model, [t], SuppressionConfig(progress=False))[0] for t in toy_traces]
    batched = step_suppression(tiny_model, toy_traces, SuppressionConfig(progress=False))
    for a, b, trace in zip(one, batched, toy_traces, strict=True):
        s = len(trace.steps)
        assert a.kl.shape == (s, s) and a.trace_id == b.trace_id == trace.trace_id
        upper = np.triu_indices(s)
        assert np.isnan(a.kl[upper]).all()
        lower = np.tril_indices(s, -1)
        assert (a.kl[lower] >= 0).all() and (a.kl[lower] > 0).any()
        np.testing.assert_allclose(a.kl, b.kl, rtol=1e-4, atol=1e-7, equal_nan=True)
        np.testing.assert_allclose(a.kl_read, b.kl_read, rtol=1e-4, atol=1e-7, equal_nan=True)
    # the check line (step 3 of trace 1) reads y's value: its read-restricted KL exists for k < 3
    assert not np.isnan(batched[1].kl_read[3, :3]).any()
    frame = suppression_frame(batched)
    assert list(frame.columns) == ["trace_id", "q", "k", "distance", "kl", "kl_read"]
    assert len(frame) == sum(len(t.steps) * (len(t.steps) - 1) // 2 for t in toy_traces)


def test_suppressing_only_some_heads(tiny_model, toy_traces):
    t = toy_traces[0]
    (all_heads,) = step_suppression(tiny_model, [t], SuppressionConfig(progress=False))
    (one_head,) = step_suppression(tiny_model, [t], SuppressionConfig(heads=((1, 0),), progress=False))
    every = tuple((layer, h) for layer in range(2) for h in range(4))
    (listed,) = step_suppression(tiny_model, [t], SuppressionConfig(heads=every, progress=False))
    np.testing.assert_allclose(listed.kl, all_heads.kl, rtol=1e-5, equal_nan=True)
    lower = np.tril_indices(len(t.steps), -1)
    assert not np.allclose(one_head.kl[lower], all_heads.kl[lower])
    with pytest.raises(ValueError, match="heads"):
        step_suppression(tiny_model, [t], SuppressionConfig(heads=((5, 0),), progress=False))


@pytest.mark.parametrize("token_reduce", ["mean", "max"])
def test_token_reduce_equals_a_loop_over_masked_forwards(tiny_model, toy_traces, token_reduce):
    trace = toy_traces[1]
    (res,) = step_suppression(tiny_model, [trace], SuppressionConfig(token_reduce=token_reduce, progress=False))
    t = trace_tokens(trace, tiny_model.tokenizer)
    ids = torch.tensor([t.input_ids])
    mask = suppression_rows([t], ids.shape[1], dtype=torch.float32)
    with eager_attention(tiny_model.hf_model):
        rows = [masked_logits(tiny_model, ids, mask[r : r + 1])[0] for r in range(t.n_steps + 1)]
    reduce = max if token_reduce == "max" else (lambda v: sum(v) / len(v))
    for q in range(1, t.n_steps):
        for k in range(q):
            kl = token_kl(rows[0], rows[k + 1].unsqueeze(0))[0].double().numpy()
            assert res.kl[q, k] == pytest.approx(reduce([kl[p] for p in t.predicting(q)]), rel=1e-4, abs=1e-7)
            read = [kl[r - 1] for r in t.read_tokens[q] if r >= 1]
            assert res.kl_read[q, k] == pytest.approx(reduce(read), rel=1e-4, abs=1e-7)
    with pytest.raises(ValueError, match="token_reduce"):
        SuppressionConfig(token_reduce="sum")
