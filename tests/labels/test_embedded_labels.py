"""On the embedded model: greedy traces solve the task, rollout labels agree with the checker, Φ rises.

Small samples on purpose (seconds on 2 CPU cores); ``benchmarks/labels.py`` measures the same on more
traces. The injected-error traces are the task's own renderings, so uncorrected errors are guaranteed.
"""

from __future__ import annotations

import pytest

from workbench.labels import (
    PotentialConfig,
    RolloutConfig,
    forced_answer_labels,
    generate_toy_traces,
    join_labels,
    rollout_labels,
    traces_from_samples,
)
from workbench.labels.agreement import potential_trend, rollout_agreement
from workbench.toy import TaskConfig, generate_samples
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig


def test_greedy_traces_are_mostly_right_and_fully_labelled(embedded):
    problems = heldout_problems(TaskConfig(), 16, seed=40_000)
    traces = generate_toy_traces(embedded, problems, config=GenerationConfig(temperature=0, max_new_tokens=160))
    assert sum(t.answer_correct for t in traces) >= 6  # the model card: about 2 in 3 right
    for t in traces:
        assert t.steps[-1].kind == "answer" and t.generation["finish"] == "eos"
        assert all(s.boundary_token is not None and not s.beyond_context for s in t.steps)


@pytest.fixture(scope="module")
def injected(embedded):
    samples = generate_samples(TaskConfig(p_error=0.3, p_correct=0.4, p_check=0.1), 10, seed=41_000, prefix="inj")
    return traces_from_samples(samples, tokenizer=embedded.tokenizer, n_ctx=embedded.n_ctx)


@pytest.mark.slow  # about 10 s on 2 CPU cores: 54 step prefixes x 4 rollouts
def test_rollout_soft_labels_agree_with_the_checker(embedded, injected):
    cfg = RolloutConfig(n_rollouts=4, generation=GenerationConfig(max_new_tokens=160, batch_size=256))
    traces = join_labels(injected, rollout_labels(embedded, injected, cfg, progress=False))
    agreement = rollout_agreement(traces)
    assert agreement.n_after_error >= 3
    assert agreement.auc_viable >= 0.75
    assert agreement.mean_soft_after_error <= 0.2
    assert agreement.mean_soft_solved_correct >= 0.5


def test_forced_answer_potential_rises_over_correctly_solved_traces(embedded):
    samples = generate_samples(TaskConfig().clean(), 10, seed=42_000, prefix="clean")
    traces = traces_from_samples(samples, tokenizer=embedded.tokenizer, n_ctx=embedded.n_ctx)
    traces = join_labels(traces, forced_answer_labels(embedded, traces, PotentialConfig(), progress=False))
    trend = potential_trend(traces)
    assert trend.n_traces == 10
    assert trend.mean_spearman > 0.4 and trend.frac_rising >= 0.8
    first, _, last = trend.mean_phi_by_third
    assert last > first + 0.5
