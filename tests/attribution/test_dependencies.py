"""Ground-truth step dependencies on hand-written toy traces (workbench.labels.dependencies)."""

from __future__ import annotations

import pytest

from workbench.labels import dependency_labels, join_labels, step_dependencies, trace_from_text
from workbench.toy.checker import parse_prompt

PROMPT = "b48,i68,c71;n=i+c;y=c+n;d=b+b;?y\n"


def deps(completion: str):
    return step_dependencies(parse_prompt(PROMPT), completion)


def test_clean_trace_reads_defining_steps_and_prompt():
    out = deps("n=i68+c71=n39\ny=c71+n39=y10\nd=b48+b48=d96\nans=10\n")
    assert [d.depends_on for d in out] == [(-1,), (-1, 0), (-1,), (1,)]
    assert [d.kind for d in out] == ["compute", "compute", "compute", "answer"]
    # d is never used by the answer; n feeds y feeds the answer
    assert [d.on_answer_path for d in out] == [True, True, False, True]
    assert [d.read_later for d in out] == [True, True, False, False]
    assert all(d.corrects is None for d in out)


def test_wait_correction_becomes_the_defining_step():
    completion = "n=i68+c71=n40\nwait n39\ny=c71+n39=y10\ncheck y10\nans=10\n"
    out = deps(completion)
    # the wait recomputes n from i and c (prompt); y then reads n from the wait, not from the wrong step 0
    assert [d.depends_on for d in out] == [(-1,), (-1,), (-1, 1), (2,), (2,)]
    assert out[1].corrects == 0 and out[1].kind == "wait"
    # the corrected error is off the answer path, its correction is on it; a check is read by nothing
    assert [d.on_answer_path for d in out] == [False, True, True, False, True]
    assert [d.read_later for d in out] == [False, True, True, False, False]
    # read spans: operand digits of compute lines, the value of wait/check/answer lines
    assert [completion[a:b] for a, b in out[2].read_chars] == ["71", "39"]
    assert [completion[a:b] for a, b in out[1].read_chars] == ["39"]
    assert [completion[a:b] for a, b in out[3].read_chars] == ["10"]
    assert [completion[a:b] for a, b in out[4].read_chars] == ["10"]


def test_uncorrected_error_stays_the_source_and_on_the_path():
    out = deps("n=i68+c71=n40\ny=c71+n40=y11\nans=11\n")
    assert [d.depends_on for d in out] == [(-1,), (-1, 0), (1,)]
    assert [d.on_answer_path for d in out] == [True, True, True]


def test_check_lines_define_nothing_and_garbled_lines_read_nothing():
    out = deps("n=i68+c71=n39\ncheck n39\nzzz\ny=c71+n39=y10\nans=10\n")
    assert out[1].depends_on == (0,)
    assert out[2].kind == "garbled" and out[2].depends_on == ()
    assert out[3].depends_on == (-1, 0)  # n comes from step 0, not from the check line


def test_no_answer_line_means_nothing_is_on_the_path_and_last_answer_wins():
    assert not any(d.on_answer_path for d in deps("n=i68+c71=n39\ny=c71+n39=y10\n"))
    out = deps("n=i68+c71=n39\nans=39\ny=c71+n39=y10\nans=10\n")
    assert [d.on_answer_path for d in out] == [True, False, True, True]


def test_labels_join_onto_traces_with_leading_whitespace_lines():
    problem = parse_prompt(PROMPT, problem_id="p0")
    completion = "n=i68+c71=n39\n\n  y=c71+n39=y10\nans=10\n"
    trace = trace_from_text(problem, completion, trace_id="t0")
    table = dependency_labels([trace])
    (labelled,) = join_labels([trace], table)
    assert [s.labels["depends_on"] for s in labelled.steps] == [[-1], [-1, 0], [1]]
    a, b = labelled.steps[1].labels["read_chars"][1]
    assert completion[a:b] == "39"
    with pytest.raises(ValueError, match="newline"):
        dependency_labels([trace.with_steps(trace.steps[:2])])


def test_stated_source_reads_the_nearest_copy_of_each_value():
    def stated(completion: str):
        return [d.depends_on for d in step_dependencies(parse_prompt(PROMPT), completion, source="stated")]

    # y reads c from step 0 (which wrote c71 as an operand), not from the prompt; the answer reads y's line
    assert stated("n=i68+c71=n39\ny=c71+n39=y10\nd=b48+b48=d96\nans=10\n") == [(-1,), (0,), (-1,), (1,)]
    # the wait reads i and c where they were just written: the line it corrects; the answer reads the check
    completion = "n=i68+c71=n40\nwait n39\ny=c71+n39=y10\ncheck y10\nans=10\n"
    assert stated(completion) == [(-1,), (0,), (0, 1), (2,), (3,)]
    out = step_dependencies(parse_prompt(PROMPT), completion, source="stated")
    assert out[1].corrects == 0  # the corrected line is still the one the wait replaces
    # an uncorrected wrong value is what later lines copy
    assert stated("n=i68+c71=n40\ny=c71+n40=y11\nans=11\n") == [(-1,), (0,), (1,)]
    with pytest.raises(ValueError, match="source"):
        step_dependencies(parse_prompt(PROMPT), completion, source="nearest")
