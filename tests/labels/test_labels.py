"""Label tables: joining by (trace id, step index), keyword behaviours, the checker's path-viability label."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workbench.labels import (
    KeywordConfig,
    StepKey,
    checker_labels,
    join_labels,
    keyword_labels,
    labels_frame,
    labels_of,
    trace_from_text,
)
from workbench.toy import parse_prompt
from workbench.traces import Trace, segment_trace

PROMPT = "b48,i68,c71;n=i+c;y=c+n;d=b+n;?d\n"  # n=39, y=10, d=87


def toy(completion: str, trace_id: str = "t") -> Trace:
    return trace_from_text(parse_prompt(PROMPT, problem_id="p"), completion, trace_id=trace_id)


def prose(completion: str, trace_id: str = "r") -> Trace:
    return segment_trace(Trace(trace_id=trace_id, problem_id="q", prompt="", completion=completion), "double_newline")


def test_prefix_correct_and_viable_track_uncorrected_errors():
    corrected = toy("n=i68+c71=n40\nwait n39\ny=c71+n39=y10\ncheck y11\nd=b48+n39=d87\nans=87\n")
    assert [s.labels["correct"] for s in corrected.steps] == [False, True, True, False, True, True]
    assert [s.labels["prefix_correct"] for s in corrected.steps] == [False, True, True, True, True, True]
    propagated = toy("n=i68+c71=n40\ny=c71+n40=y11\nd=b48+n40=d88\nans=88\n")
    assert [s.labels["prefix_correct"] for s in propagated.steps] == [False] * 4
    assert [s.labels["viable"] for s in propagated.steps] == [False] * 4
    assert [s.labels["logical"] for s in propagated.steps] == [False, True, True, True]
    # d = b + n never reads y: a wrong y is an uncorrected error, yet the path stays viable.
    harmless = toy("n=i68+c71=n39\ny=c71+n39=y11\nd=b48+n39=d87\nans=87\n")
    assert [s.labels["prefix_correct"] for s in harmless.steps] == [True, False, False, True]
    assert [s.labels["viable"] for s in harmless.steps] == [True] * 4


def test_checker_labels_table_matches_the_labelled_traces():
    t = toy("n=i68+c71=n39\ny=c71+n39=y11\nd=b48+n39=d87\nans=87\n")
    bare = t.with_steps([replace(s, labels={}) for s in t.steps])
    table = checker_labels([bare])
    assert table[StepKey("t", 1)] == {
        "kind": "compute",
        "correct": False,
        "logical": False,
        "first_error": True,
        "prefix_correct": False,
        "viable": True,
    }
    assert join_labels([bare], table) == [t]


def test_keyword_labels_flag_reflection_backtracking_verification():
    t = prose("Add 3 and 4.\n\nWait, I misread.\n\nAlternatively, count up.\n\nLet me verify: 7.\n\nAwaiting nothing.")
    flags = [tuple(v.values()) for v in keyword_labels([t]).values()]
    assert flags == [
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (False, False, False),  # "Awaiting" is not the word "wait"
    ]
    strict = KeywordConfig(reflection=["Wait"], ignore_case=False, at_start=True)
    t2 = prose("wait here.\n\nWait, here.\n\nNo, Wait.")
    assert [v["reflection"] for v in keyword_labels([t2], strict).values()] == [False, True, False]
    toy_trace = toy("n=i68+c71=n40\nwait n39\ncheck n39\ny=c71+n39=y10\nd=b48+n39=d87\nans=87\n")
    toy_flags = keyword_labels([toy_trace])
    assert [k.step_index for k, v in toy_flags.items() if v["reflection"]] == [1]
    assert [k.step_index for k, v in toy_flags.items() if v["verification"]] == [2]
    with pytest.raises(ValueError, match="reflection='wait'"):
        KeywordConfig(reflection="wait")


def test_join_merges_sources_by_key_and_refuses_unknown_keys():
    a, b = prose("One.\n\nTwo.", "a"), prose("Three.", "b")
    first = {StepKey("a", 0): {"x": 1}, StepKey("b", 0): {"x": 2}}
    second = {("a", 0): {"x": 10, "y": True}}
    joined = join_labels([a, b], first, second)
    assert [s.labels for s in joined[0].steps] == [{"x": 10, "y": True}, {}]
    assert joined[1].steps[0].labels == {"x": 2}
    assert labels_of(joined, ["y"]) == {StepKey("a", 0): {"y": True}, StepKey("a", 1): {}, StepKey("b", 0): {}}
    with pytest.raises(ValueError, match=r"key \('a', 5\) matches no step"):
        join_labels([a, b], {StepKey("a", 5): {"x": 1}})
    frame = labels_frame(first)
    assert frame.to_dict("records") == [
        {"trace_id": "a", "step_index": 0, "x": 1},
        {"trace_id": "b", "step_index": 0, "x": 2},
    ]
