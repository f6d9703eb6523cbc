"""Counterfactual importance by resampling: bookkeeping on a tiny random model, similarity, answer KL."""

from __future__ import annotations

import math

import pytest

from workbench.attribution.resampling import (
    HiddenStateSimilarity,
    ResamplingConfig,
    ToySimilarity,
    answer_kl,
    resampling_importance,
)
from workbench.labels.rollouts import RolloutConfig
from workbench.traces import GenerationConfig


def test_toy_similarity_compares_statements():
    sim = ToySimilarity()
    out = sim.same("y=c71+n39=y10", ["y=c71+n39=y10 ", "y=c71+n39=y11", "y=c71+n38=y10", "wait y10", "zz"])
    assert out == [True, False, False, False, False]
    assert sim.same("ans=10", ["ans=10", "ans=010", "ans=11"]) == [True, True, False]


def test_answer_kl():
    assert answer_kl(["1", "2"], ["2", "1"]) == 0.0
    assert answer_kl(["1"] * 4, ["2"] * 4) > 0
    # two answers, one pseudo-count each: P = (5/6, 1/6), Q = (1/6, 5/6)
    want = 5 / 6 * math.log(5) + 1 / 6 * math.log(1 / 5)
    assert answer_kl(["1"] * 4, ["2"] * 4) == pytest.approx(want)
    assert math.isnan(answer_kl([], ["1"]))


def test_resampling_bookkeeping_on_tiny_model(tiny_model, toy_traces):
    gen = GenerationConfig(max_new_tokens=6, temperature=1.0, batch_size=64)
    cfg = ResamplingConfig(rollouts=RolloutConfig(n_rollouts=3, generation=gen), progress=False)
    frame = resampling_importance(tiny_model, toy_traces, cfg)
    cols = ["trace_id", "step", "kind", "n_keep", "n_resampled", "n_different", "acc_keep", "acc_different"]
    assert list(frame.columns) == [*cols, "importance_acc", "importance_kl", "n_rollouts"]
    assert len(frame) == sum(len(t.steps) for t in toy_traces)
    assert (frame.n_keep == 3).all() and (frame.n_resampled == 3).all() and (frame.n_rollouts == 3).all()
    assert (frame.n_different <= frame.n_resampled).all()
    # keeping the (correct) answer line keeps the answer, whatever a random model writes after it
    answers = frame[frame.kind == "answer"]
    assert (answers.acc_keep == 1.0).all()
    # a random model never rewrites a toy statement exactly, so every resample counts as different
    assert (frame.n_different == 3).all()
    same = ResamplingConfig(rollouts=cfg.rollouts, similarity=HiddenStateSimilarity(tiny_model, threshold=-2.0))
    frame2 = resampling_importance(tiny_model, toy_traces[:1], same)
    assert (frame2.n_different == 0).all() and frame2.acc_different.isna().all()
    with pytest.raises(ValueError, match="gold_answer"):
        resampling_importance(tiny_model, [toy_traces[0].__class__(**{**toy_traces[0].__dict__, "gold_answer": None})])
