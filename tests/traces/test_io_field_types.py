"""Trace files with a field of the wrong type: the error names the file, the line and the field path."""

from __future__ import annotations

import json

import pytest

from workbench.traces import Step, Trace, TraceFormatError, load_traces, save_traces, trace_to_dict


def _write(tmp_path, record: dict):
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


@pytest.fixture
def record():
    step = Step(index=0, text="x=1", char_start=0, char_end=4)
    return trace_to_dict(Trace(trace_id="t", problem_id="p", prompt="Q\n", completion="x=1\n", steps=(step,)))


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("steps", 0, "char_end"), "4", r"steps\[0\]\.char_end must be an int, got str"),
        (("steps", 0, "char_end"), None, r"steps\[0\]\.char_end must be an int, got NoneType"),
        (("steps", 0, "index"), True, r"steps\[0\]\.index must be an int, got bool"),
        (("steps", 0, "text"), 3, r"steps\[0\]\.text must be a str"),
        (("steps", 0, "token_start"), 1.5, r"steps\[0\]\.token_start must be an int or null"),
        (("steps", 0, "labels"), [], r"steps\[0\]\.labels must be a dict"),
        (("trace_id",), 7, r"trace_id must be a str"),
        (("answer_correct",), "yes", r"answer_correct must be a bool or null"),
    ],
)
def test_a_wrong_type_names_the_field(tmp_path, record, path, value, field):
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(TraceFormatError, match=field) as err:
        load_traces(_write(tmp_path, record))
    assert "line 1" in str(err.value)


def test_right_types_still_load(tmp_path, record):
    (trace,) = load_traces(_write(tmp_path, record))
    assert trace.steps[0].char_end == 4
    save_traces([trace], tmp_path / "again.parquet")
    assert load_traces(tmp_path / "again.parquet") == [trace]
