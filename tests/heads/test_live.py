"""Live step scores from the generating forward passes equal an offline pass over the finished traces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.capture import CaptureConfig, TokenFeatureConfig, capture
from workbench.heads import HeadConfig, UncertaintyHead, load_sequences, score_sequences
from workbench.heads import live as live_module
from workbench.heads.live import LiveStepScorer, generate_scored
from workbench.labels import trace_from_text
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig

HOOK = "blocks.2.hook_resid_post"


@pytest.mark.parametrize(("n_layers", "grow", "pool"), [(2, 64, "mean"), (1, 4, "max"), (1, 64, "attention")])
def test_live_scores_equal_offline_scores(embedded, tmp_path, monkeypatch, n_layers, grow, pool):
    # grow=4: the feature buffer and the key/value caches start tiny and must double many times
    monkeypatch.setattr(live_module, "_GROW", grow)
    torch.manual_seed(0)
    cfg = HeadConfig(hooks=(HOOK,), width=32, n_heads=4, n_layers=n_layers, pool=pool)
    head = UncertaintyHead.build(cfg, embedded.d_model).eval()
    head.set_normalisation(torch.randn(embedded.d_model), torch.rand(embedded.d_model) + 0.5)  # folded live
    with torch.no_grad():  # non-trivial norm scales and shifts: live folds them into the next matrix
        for norm in (m for m in head.modules() if isinstance(m, torch.nn.LayerNorm)):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0.0, 0.2)
    problems = heldout_problems(TaskConfig(), 6)
    res = generate_scored(embedded, head, [p.prompt for p in problems], GenerationConfig(max_new_tokens=90, seed=1))
    traces = [
        trace_from_text(p, c, trace_id=f"r{i}", tokenizer=embedded.tokenizer, n_ctx=embedded.n_ctx)
        for i, (p, c) in enumerate(zip(problems, res.completions, strict=True))
    ]
    finished = [t for t in traces if res.completions[int(t.trace_id[1:])].endswith("\n")]
    assert finished, "no trace finished within max_new_tokens"
    cfg = CaptureConfig(poolings=(), token_features=TokenFeatureConfig(hooks=(HOOK,)), progress=False)
    capture(finished, embedded, tmp_path / "s", cfg)
    store = open_store(tmp_path / "s")
    offline = score_sequences(head, load_sequences(store, store.index, head.cfg, target=None))
    live = res.steps.assign(trace_id=lambda d: "r" + d.row.astype(str))
    both = offline.merge(live, on=["trace_id", "step_index"], suffixes=("_offline", "_live"))
    assert len(both) == len(offline)  # every step of a finished trace was scored live
    np.testing.assert_allclose(both.head_score_live, both.head_score_offline, atol=2e-4)
    texts = {(t.trace_id, s.index): s.text for t in finished for s in t.steps}
    assert all(texts[(r.trace_id, r.step_index)] == r.text for r in both.itertuples())
    assert (both.scored_after_tokens == both.token_end + 1).all()  # ready one token after the step's end
    shared = res.steps.groupby("scored_after_tokens").row.nunique()
    assert (shared > 1).any()  # some calls scored several rows at once (the batched path)


def test_live_scoring_refuses_heads_it_cannot_serve(embedded):
    cfg = HeadConfig(hooks=(HOOK,), logit_features=True, width=32, n_heads=4)
    with pytest.raises(ValueError, match="hidden states only"):
        LiveStepScorer(embedded, UncertaintyHead.build(cfg, embedded.d_model + 2))
