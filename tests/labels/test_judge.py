"""Judges: the protocol, the local-model judge against a plain forward pass, the checker as a judge."""

from __future__ import annotations

import pytest
import torch

from workbench.labels import (
    CheckerJudge,
    JudgeVerdict,
    LocalModelJudge,
    StepJudge,
    StepKey,
    judge_labels,
    traces_from_samples,
)
from workbench.labels.judge import judge_requests
from workbench.toy import TaskConfig, generate_samples


@pytest.fixture(scope="module")
def toy_traces():
    return traces_from_samples(generate_samples(TaskConfig(p_error=0.4), 4, seed=21))


def test_local_model_judge_reads_yes_versus_no_from_one_forward_pass(tiny_model, toy_traces):
    judge = LocalModelJudge(model=tiny_model, yes="y", no="n", batch_size=3)
    assert isinstance(judge, StepJudge)
    labels = judge_labels(toy_traces[:2], judge)
    tok = tiny_model.tokenizer
    y, n = tok("y", add_special_tokens=False)["input_ids"][0], tok("n", add_special_tokens=False)["input_ids"][0]
    for request in judge_requests(toy_traces[:2]):
        ids = torch.tensor([tok(judge.prompt(request), add_special_tokens=False)["input_ids"]])
        logits = tiny_model.hf_model(input_ids=ids).logits[0, -1]
        ref = torch.softmax(logits[[y, n]], -1)[0].item()
        got = labels[StepKey(request.trace_id, request.step_index)]
        assert got["judge_score"] == pytest.approx(ref, abs=1e-5)
        assert got["judge_correct"] == (ref > 0.5)


def test_prompt_template_fills_problem_previous_steps_and_step(tiny_model, toy_traces):
    judge = LocalModelJudge(model=tiny_model, template="{problem}|{previous}|{step}|{gold_answer}")
    first, second = judge_requests(toy_traces[:1])[:2]
    t = toy_traces[0]
    assert judge.prompt(first) == f"{t.prompt}|(none)|{t.steps[0].text}|{t.gold_answer}"
    assert judge.prompt(second) == f"{t.prompt}|{t.steps[0].text}|{t.steps[1].text}|{t.gold_answer}"
    with pytest.raises(ValueError, match="one tokenizes as a prefix of the other"):
        LocalModelJudge(model=tiny_model, yes=" yes", no=" yesss")


def test_shared_leading_tokens_of_the_answer_words_join_the_prompt(tiny_model, toy_traces):
    judge = LocalModelJudge(model=tiny_model)  # " yes" / " no": the char tokenizer splits off the space
    common, yes, no = judge.verdict_tokens()
    tok = tiny_model.tokenizer
    assert tok.decode(common) == " " and tok.decode([yes]) == "y" and tok.decode([no]) == "n"
    request = judge_requests(toy_traces[:1])[0]
    ids = torch.tensor([tok(judge.prompt(request) + " ", add_special_tokens=False)["input_ids"]])
    logits = tiny_model.hf_model(input_ids=ids).logits[0, -1]
    ref = torch.softmax(logits[[yes, no]], -1)[0].item()
    assert judge([request])[0].score == pytest.approx(ref, abs=1e-5)


def test_checker_judge_agrees_with_the_checker_labels(toy_traces):
    labels = judge_labels(toy_traces, CheckerJudge(), name="oracle")
    expected = {StepKey(t.trace_id, s.index): s.labels["correct"] for t in toy_traces for s in t.steps}
    assert {k: v["oracle_correct"] for k, v in labels.items()} == expected
    assert not all(expected.values())  # the sample has wrong steps, so agreement is not trivial


def test_a_judge_returning_the_wrong_number_of_verdicts_is_refused(toy_traces):
    def lazy(requests):
        return [JudgeVerdict(1.0, True)]

    with pytest.raises(ValueError, match="returned 1 verdicts for"):
        judge_labels(toy_traces, lazy)
