"""The synthetic task generator: determinism, format, configuration errors."""

import pytest

from workbench.toy import TaskConfig, generate_samples, parse_prompt
from workbench.toy.checker import check_trace


def test_same_seed_same_samples_and_different_seed_differs():
    cfg = TaskConfig(p_error=0.3)
    a = generate_samples(cfg, 50, seed=7)
    b = generate_samples(cfg, 50, seed=7)
    c = generate_samples(cfg, 50, seed=8)
    assert [(s.problem.prompt, s.completion) for s in a] == [(s.problem.prompt, s.completion) for s in b]
    assert [s.problem.prompt for s in a] != [s.problem.prompt for s in c]


def test_clean_samples_execute_the_program_exactly():
    cfg = TaskConfig(min_statements=3, max_statements=6, modulus=100).clean()
    for s in generate_samples(cfg, 100, seed=1):
        labels = check_trace(s.problem, s.completion)
        assert labels.answer_correct and labels.first_error_index == -1
        assert all(st.correct and st.logical for st in labels.steps)
        assert len([st for st in labels.steps if st.kind == "compute"]) == len(s.problem.program)
        assert 3 <= len(s.problem.program) <= 6
        assert all(0 <= v < 100 for v in s.problem.values.values())


def test_prompt_round_trips_through_parse_prompt():
    for s in generate_samples(TaskConfig(), 30, seed=3):
        parsed = parse_prompt(s.problem.prompt)
        assert parsed.values == s.problem.values and parsed.query == s.problem.query


def test_behaviour_rates_follow_the_config():
    cfg = TaskConfig(p_error=0.2, p_correct=0.5, p_check=0.25, min_statements=4, max_statements=4)
    samples = generate_samples(cfg, 400, seed=0)
    lines = [ln for s in samples for ln in s.completion.splitlines()]
    computes = [ln for ln in lines if not ln.startswith(("wait", "check", "ans"))]
    waits = [ln for ln in lines if ln.startswith("wait")]
    checks = [ln for ln in lines if ln.startswith("check")]
    wrong = sum(
        not st.correct
        for s in samples
        for st in check_trace(s.problem, s.completion).steps
        if st.kind == "compute" and st.logical is False and st.first_error
    )
    assert len(computes) == 1600
    assert 0.2 < len(checks) / len(computes) < 0.3
    assert 0.06 < len(waits) / len(computes) < 0.14  # p_error * p_correct = 0.1
    assert wrong > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_inputs": 0}, "n_inputs"),
        ({"min_statements": 4, "max_statements": 2}, "min_statements"),
        ({"ops": "*"}, "ops"),
        ({"modulus": 1}, "modulus"),
        ({"p_error": 1.5}, "p_error"),
        ({"n_inputs": 10, "max_statements": 20}, "max_statements"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TaskConfig(**kwargs)


def test_shared_tens_share_makes_that_share_of_prompts_share_one_tens_digit():
    samples = generate_samples(TaskConfig(shared_tens_share=0.5), 600, seed=5)
    shared = [len({v // 10 for v in s.problem.inputs.values()}) == 1 for s in samples]
    # uniform inputs share a tens digit by chance with p = 1/100; half the problems are drawn that way
    assert 0.43 < sum(shared) / len(shared) < 0.57
    for s in samples:  # still a valid program whose solution the checker accepts
        assert check_trace(s.problem, s.completion).answer_correct in (True, False)


def test_shared_tens_share_zero_leaves_existing_seeds_unchanged_and_clean_resets_it():
    base = [s.problem.prompt for s in generate_samples(TaskConfig(), 50, seed=9)]
    again = [s.problem.prompt for s in generate_samples(TaskConfig(shared_tens_share=0.0), 50, seed=9)]
    assert base == again
    assert TaskConfig(shared_tens_share=0.7).clean().shared_tens_share == 0.0
    with pytest.raises(ValueError, match="shared_tens_share"):
        TaskConfig(shared_tens_share=1.5)
