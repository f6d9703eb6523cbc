"""Live step scores from the generating forward passes equal an offline pass over the finished traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.capture import CaptureConfig, TokenFeatureConfig, capture
from workbench.heads import HeadConfig, UncertaintyHead, incremental, load_sequences, score_sequences
from workbench.heads.live import LiveStepScorer, generate_scored
from workbench.labels import trace_from_text
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig

HOOK = "blocks.2.hook_resid_post"


@pytest.mark.parametrize(
    ("n_layers", "grow", "pool", "offload", "hooks"),
    [
        (2, 64, "mean", True, (HOOK,)),
        (1, 4, "max", False, (HOOK,)),
        (1, 64, "attention", True, (HOOK,)),
        (1, 64, "mean", False, (HOOK, "blocks.0.hook_resid_post")),  # features in another order than hooks fire
    ],
)
def test_live_scores_equal_offline_scores(embedded, tmp_path, monkeypatch, n_layers, grow, pool, offload, hooks):
    # grow=4: the feature buffer and the key/value caches start tiny and must double many times (in this
    # process: a scoring process imports the module afresh, and its caches double from 64 at 90 tokens)
    monkeypatch.setattr(incremental, "_GROW", grow)
    if grow < 64:  # and the features buffer: size it from _GROW, not from max_new_tokens
        sized = LiveStepScorer.attached
        monkeypatch.setattr(LiveStepScorer, "attached", lambda self, n, m=None: sized(self, n))
    torch.manual_seed(0)
    cfg = HeadConfig(hooks=hooks, width=32, n_heads=4, n_layers=n_layers, pool=pool)
    n_feats = embedded.d_model * len(hooks)
    head = UncertaintyHead.build(cfg, n_feats).eval()
    head.set_normalisation(torch.randn(n_feats), torch.rand(n_feats) + 0.5)  # folded live
    with torch.no_grad():  # non-trivial norm scales and shifts: live folds them into the next matrix
        for norm in (m for m in head.modules() if isinstance(m, torch.nn.LayerNorm)):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0.0, 0.2)
    problems = heldout_problems(TaskConfig(), 6)
    with LiveStepScorer(embedded, head, offload=offload) as scorer:
        gen_cfg = GenerationConfig(max_new_tokens=90, seed=1)
        res = generate_scored(embedded, head, [p.prompt for p in problems], gen_cfg, scorer=scorer)
        assert (scorer._process is not None) == offload
    traces = [
        trace_from_text(p, c, trace_id=f"r{i}", tokenizer=embedded.tokenizer, n_ctx=embedded.n_ctx)
        for i, (p, c) in enumerate(zip(problems, res.completions, strict=True))
    ]
    finished = [t for t in traces if res.completions[int(t.trace_id[1:])].endswith("\n")]
    assert finished, "no trace finished within max_new_tokens"
    cfg = CaptureConfig(poolings=(), token_features=TokenFeatureConfig(hooks=hooks), progress=False)
    capture(finished, embedded, tmp_path / "s", cfg)
    store = open_store(tmp_path / "s")
    offline = score_sequences(head, load_sequences(store, store.index, head.cfg, target=None))
    live = res.steps.assign(trace_id=lambda d: "r" + d.row.astype(str))
    both = offline.merge(live, on=["trace_id", "step_index"], suffixes=("_offline", "_live"))
    assert len(both) == len(offline)  # every step of a finished trace was scored live
    np.testing.assert_allclose(both.head_score_live, both.head_score_offline, atol=2e-4)
    texts = {(t.trace_id, s.index): s.text for t in finished for s in t.steps}
    assert all(texts[(r.trace_id, r.step_index)] == r.text for r in both.itertuples())
    if offload:  # collected at a later token's callback (or after the last token)
        assert (both.scored_after_tokens >= both.token_end + 1).all()
    else:  # ready one token after the step's end
        assert (both.scored_after_tokens == both.token_end + 1).all()
    shared = res.steps.groupby("scored_after_tokens").row.nunique()
    assert (shared > 1).any()  # some calls scored several rows at once (the batched path)


def test_live_scoring_refuses_heads_it_cannot_serve(embedded):
    cfg = HeadConfig(hooks=(HOOK,), logit_features=True, width=32, n_heads=4)
    with pytest.raises(ValueError, match="hidden states only"):
        LiveStepScorer(embedded, UncertaintyHead.build(cfg, embedded.d_model + 2))


def _small_head(embedded, **kw):
    torch.manual_seed(0)
    return UncertaintyHead.build(HeadConfig(hooks=(HOOK,), width=32, n_heads=4, **kw), embedded.d_model).eval()


def test_scoring_process_gives_the_in_process_scores_and_is_reused(embedded, monkeypatch):
    head = _small_head(embedded)
    monkeypatch.setattr(incremental, "_GROW", 8)  # the features file starts at 8 slots and is remade 3 times
    sized = LiveStepScorer.attached
    monkeypatch.setattr(LiveStepScorer, "attached", lambda self, n, m=None: sized(self, n))
    prompts = [p.prompt for p in heldout_problems(TaskConfig(), 5)]
    cfg = GenerationConfig(max_new_tokens=60, seed=3)
    local = generate_scored(embedded, head, prompts, cfg, scorer=LiveStepScorer(embedded, head, offload=False))
    with LiveStepScorer(embedded, head, offload=True) as scorer:
        first = generate_scored(embedded, head, prompts, cfg, scorer=scorer)
        proc = scorer._process.proc
        second = generate_scored(embedded, head, prompts, cfg, scorer=scorer)  # same process, fresh caches
        assert scorer._process.proc is proc
    assert proc.poll() is not None  # closing the scorer stopped the process
    for res in (first, second):
        assert res.completions == local.completions
        cols = ["row", "step_index", "token_start", "token_end"]
        pd.testing.assert_frame_equal(res.steps[cols], local.steps[cols])
        np.testing.assert_allclose(res.steps.head_score, local.steps.head_score, rtol=0, atol=1e-6)


def test_scoring_process_errors_reach_the_generating_process(embedded):
    head = _small_head(embedded, max_len=8)  # steps run past 8 tokens: the incremental head refuses them
    prompts = [p.prompt for p in heldout_problems(TaskConfig(), 2)]
    with LiveStepScorer(embedded, head, offload=True) as scorer:
        with pytest.raises(RuntimeError, match="max_len=8"):
            generate_scored(embedded, head, prompts, GenerationConfig(max_new_tokens=40), scorer=scorer)
    with pytest.raises(ValueError, match="different head"):
        generate_scored(embedded, _small_head(embedded), prompts, scorer=LiveStepScorer(embedded, head, offload=False))


def test_scorer_recovers_from_an_interrupted_call_and_a_dead_process(embedded):
    head = _small_head(embedded)
    prompts = [p.prompt for p in heldout_problems(TaskConfig(), 4)]
    cfg = GenerationConfig(max_new_tokens=60, seed=5)
    local = generate_scored(embedded, head, prompts, cfg, scorer=LiveStepScorer(embedded, head, offload=False))

    class Interrupting(LiveStepScorer):
        fail = True

        def on_records(self, records):
            if self.fail:
                raise KeyboardInterrupt  # the user stops the cell while steps are still being scored

    with Interrupting(embedded, head, offload=True) as scorer:
        with pytest.raises(KeyboardInterrupt):
            generate_scored(embedded, head, prompts, cfg, scorer=scorer)
        scorer.fail = False
        again = generate_scored(embedded, head, prompts, cfg, scorer=scorer)  # late answers are dropped
        np.testing.assert_allclose(again.steps.head_score, local.steps.head_score, rtol=0, atol=1e-6)
        scorer._process.proc.kill()
        scorer._process.proc.wait()
        restarted = generate_scored(embedded, head, prompts, cfg, scorer=scorer)  # a new process
        np.testing.assert_allclose(restarted.steps.head_score, local.steps.head_score, rtol=0, atol=1e-6)
