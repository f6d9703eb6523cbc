"""Rollout labels and the forced-answer potential on the tiny model, checked against plain reference passes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from workbench.labels import (
    PotentialConfig,
    RolloutConfig,
    StepKey,
    forced_answer_labels,
    rollout_labels,
    step_potential,
    traces_from_samples,
)
from workbench.labels.potential import answer_entropy, answer_logprob
from workbench.labels.rollouts import step_prefixes
from workbench.toy import TaskConfig, generate_samples
from workbench.traces import GenerationConfig


@pytest.fixture(scope="module")
def gold_traces(tiny_model):
    samples = generate_samples(TaskConfig(min_statements=2, max_statements=3), 3, seed=9)
    return traces_from_samples(samples, tokenizer=tiny_model.tokenizer)


def test_step_prefixes_end_with_each_steps_delimiter(gold_traces):
    t = gold_traces[0]
    prefixes = step_prefixes(t)
    assert prefixes[-1] == t.prompt + t.completion
    assert all(p.endswith("\n") for p in prefixes)
    assert [p[len(t.prompt) :].count("\n") for p in prefixes] == list(range(1, len(t.steps) + 1))


def test_rollout_labels_cover_every_step_and_judge_the_answer_step_by_its_answer(tiny_model, gold_traces):
    wrong = replace(gold_traces[1], trace_id="unreachable", gold_answer="-1")  # no trace can reach it
    cfg = RolloutConfig(n_rollouts=3, generation=GenerationConfig(max_new_tokens=12, batch_size=32))
    labels = rollout_labels(tiny_model, [*gold_traces, wrong], cfg, progress=False)
    assert set(labels) == {StepKey(t.trace_id, s.index) for t in [*gold_traces, wrong] for s in t.steps}
    for t in gold_traces:
        # The prefix through "ans=<gold>" already states the right answer (random continuations write no new one).
        assert labels[StepKey(t.trace_id, len(t.steps) - 1)] == {
            "rollout_hard": True,
            "rollout_soft": 1.0,
            "rollout_n": 3,
        }
    for v in labels.values():
        assert v["rollout_soft"] * 3 == round(v["rollout_soft"] * 3) and v["rollout_hard"] == (v["rollout_soft"] > 0)
    assert all(labels[StepKey(wrong.trace_id, s.index)]["rollout_soft"] == 0 for s in wrong.steps)


def test_rollouts_need_the_gold_answer(tiny_model, gold_traces):
    t = replace(gold_traces[0], gold_answer=None)
    with pytest.raises(ValueError, match="gold_answer is None"):
        rollout_labels(tiny_model, [t], progress=False)
    with pytest.raises(ValueError, match="appears twice"):
        rollout_labels(tiny_model, [gold_traces[0], gold_traces[0]], progress=False)


def test_step_potential_corners():
    assert step_potential(1.0, 1.0) == 1.0  # right and sure
    assert step_potential(0.0, 1.0) == -1.0  # wrong and sure
    assert step_potential(1.0, 0.0) == 0.5
    assert step_potential(0.0, 0.0) == 0.0
    grid = torch.linspace(0, 1, 11)
    phi = step_potential(grid[:, None], grid[None, :])
    assert phi.min() >= -1 and phi.max() <= 1 and (phi.diff(dim=0) >= 0).all()  # rises with Acc


def reference_logprob(model, context: list[int], answer: list[int]) -> float:
    ids = torch.tensor([context + answer])
    logp = torch.log_softmax(model.hf_model(input_ids=ids).logits[0].float(), -1)
    return sum(logp[len(context) - 1 + k, a].item() for k, a in enumerate(answer))


def test_answer_logprob_matches_unpadded_teacher_forcing(tiny_model):
    tok = tiny_model.tokenizer
    contexts = [
        tok(t, add_special_tokens=False)["input_ids"] for t in ["a=1;?a\nans=", "x=5,y=6;z=x+y;?z\nz=x+y=5+6=11\nans="]
    ]
    answers = [tok(t, add_special_tokens=False)["input_ids"] for t in ["1\n", "11\n"]]
    got = answer_logprob(tiny_model, contexts, answers)
    ref = [reference_logprob(tiny_model, c, a) for c, a in zip(contexts, answers, strict=True)]
    assert torch.allclose(got, torch.tensor(ref), atol=1e-4)


def test_answer_entropy_of_one_token_is_the_next_token_entropy(tiny_model):
    tok = tiny_model.tokenizer
    contexts = [tok(t, add_special_tokens=False)["input_ids"] for t in ["a=1;?a\nans=", "q=3,r=4;s=q-r;?s\nans="]]
    got = answer_entropy(tiny_model, contexts, PotentialConfig(n_samples=3, max_answer_tokens=1))
    for g, c in zip(got, contexts, strict=True):
        logits = tiny_model.hf_model(input_ids=torch.tensor([c])).logits[0, -1].float()
        ref = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum()
        assert math.isclose(g.item(), ref.item(), rel_tol=1e-4)


def test_forced_answer_labels_combine_acc_and_conf(tiny_model, gold_traces):
    cfg = PotentialConfig(n_samples=2, max_answer_tokens=3, batch_size=4)
    labels = forced_answer_labels(tiny_model, gold_traces, cfg, progress=False)
    assert set(labels) == {StepKey(t.trace_id, s.index) for t in gold_traces for s in t.steps}
    tok = tiny_model.tokenizer
    t = gold_traces[0]
    context = tok(step_prefixes(t)[0] + "ans=", add_special_tokens=False)["input_ids"]
    answer = tok(t.gold_answer + "\n", add_special_tokens=False)["input_ids"]
    first = labels[StepKey(t.trace_id, 0)]
    assert math.isclose(first["spae_acc"], math.exp(reference_logprob(tiny_model, context, answer)), rel_tol=1e-3)
    for v in labels.values():
        assert 0 <= v["spae_acc"] <= 1 and 0 < v["spae_conf"] <= 1
        assert math.isclose(v["spae_phi"], 1.5 * v["spae_acc"] * v["spae_conf"] + 0.5 * v["spae_acc"] - v["spae_conf"])
        assert v["spae_saturated"] == (v["spae_phi"] > 0.9)
    again = forced_answer_labels(tiny_model, gold_traces, cfg, progress=False)
    assert again == labels  # seeded
