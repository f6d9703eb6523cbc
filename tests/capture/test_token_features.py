"""Token-level features and per-step logit statistics equal their definitions on a full forward / the bridge."""

from __future__ import annotations

import torch

from workbench.capture import STEP_STATS, CaptureConfig, TokenFeatureConfig, capture
from workbench.store import open_store


def _full_forward(model, trace):
    ids = torch.tensor([model.tokenizer(trace.text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logp = model.hf_model(input_ids=ids).logits[0].float().log_softmax(-1)  # [pos, vocab]
    return ids[0], logp


def test_token_features_and_logit_stats(tiny_model, traces, tmp_path):
    tf = TokenFeatureConfig(hooks=("blocks.0.hook_resid_post",), top_k=3, attn_prev=2, attn_layers=(1,))
    cfg = CaptureConfig(layers=(1,), poolings=("mean",), logit_stats=True, token_features=tf, progress=False)
    impl = tiny_model.hf_model.config._attn_implementation
    capture(traces[:3], tiny_model, tmp_path / "s", cfg)
    assert tiny_model.hf_model.config._attn_implementation == impl, "eager attention was not switched back"
    store = open_store(tmp_path / "s")
    df = store.index
    assert (df.n_token_rows == df.token_end - df.token_start).all()
    names = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"]
    for trace in traces[:3]:
        ids, logp = _full_forward(tiny_model, trace)
        _, cache = tiny_model.bridge.run_with_cache(ids[None], names_filter=names)
        steps = df[df.trace_id == trace.trace_id]
        hidden = store.step_tokens("blocks.0.hook_resid_post", steps)
        topk = store.step_tokens("topk_probs", steps)
        top_ids = store.step_tokens("topk_ids", steps)
        entropy = store.step_tokens("entropy", steps)
        attn = store.step_tokens("attn_prev.L1", steps)
        for i, (_, s) in enumerate(steps.iterrows()):
            t = torch.arange(s.token_start, s.token_end)
            dist = logp[t - 1]  # token t was drawn from the prediction at t-1
            lp = dist.gather(1, ids[t, None]).squeeze(1)
            torch.testing.assert_close(hidden[i], cache["blocks.0.hook_resid_post"][0, t], atol=1e-6, rtol=0)
            torch.testing.assert_close(topk[i], dist.topk(3).values.exp(), atol=1e-6, rtol=1e-5)
            assert torch.equal(top_ids[i], dist.topk(3).indices)
            torch.testing.assert_close(entropy[i], -(dist.exp() * dist).sum(-1), atol=1e-5, rtol=1e-5)
            pattern = cache["blocks.1.attn.hook_pattern"][0]  # [head, q, k]
            want = torch.stack([pattern[:, t, t - 1], pattern[:, t, t - 2]], dim=-1).transpose(0, 1)
            torch.testing.assert_close(attn[i], want, atol=1e-6, rtol=0)
            stats = dict(zip(STEP_STATS, s[list(STEP_STATS)].astype(float), strict=True))
            assert abs(stats["logit_seq_logprob"] - lp.sum().item()) < 1e-3
            assert abs(stats["logit_perplexity"] - torch.exp(-lp.mean()).item()) < 1e-3
            assert abs(stats["logit_max_prob"] - dist.max(-1).values.exp().mean().item()) < 1e-5
            assert abs(stats["logit_mean_entropy"] - (-(dist.exp() * dist).sum(-1)).mean().item()) < 1e-4


def test_first_token_of_a_sequence_has_no_distribution(tiny_model, tmp_path):
    from workbench.traces import Trace, segment_trace

    trace = segment_trace(Trace(trace_id="t0", problem_id="p", prompt="", completion="a=1\nb=2\n"), "newline")
    cfg = CaptureConfig(layers=(0,), logit_stats=True, token_features=TokenFeatureConfig(top_k=2), progress=False)
    capture([trace], tiny_model, tmp_path / "s", cfg)
    store = open_store(tmp_path / "s")
    first = store.index.iloc[[0]]
    probs = store.step_tokens("topk_probs", first)[0]
    assert torch.isnan(probs[0]).all() and not torch.isnan(probs[1:]).any()
    assert store.step_tokens("topk_ids", first)[0][0].tolist() == [-1, -1]
    assert not first[list(STEP_STATS)].isna().any(axis=None), "stats average over the tokens that have one"
