"""Trace files: lossless JSONL/Parquet round trips (hypothesis), refusals that name the field, DataFrames."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.traces.conftest import completions, prompts
from workbench.labels import traces_from_samples
from workbench.toy import TaskConfig, generate_samples
from workbench.traces import (
    Trace,
    TraceFormatError,
    load_jsonl,
    load_parquet,
    load_traces,
    save_jsonl,
    save_parquet,
    save_traces,
    segment_trace,
    to_dataframe,
    trace_from_dict,
    trace_to_dict,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
json_dicts = st.dictionaries(st.text(min_size=1), json_values, max_size=4)


@st.composite
def traces(draw) -> Trace:
    """A segmented trace with arbitrary labels, settings, provenance and trace-level fields."""
    t = Trace(
        trace_id=draw(st.text(min_size=1)),
        problem_id=draw(st.text()),
        prompt=draw(prompts() | st.text()),
        completion=draw(completions()),
        answer=draw(st.none() | st.text()),
        answer_correct=draw(st.none() | st.booleans()),
        gold_answer=draw(st.none() | st.text()),
        generation=draw(json_dicts),
        model=draw(json_dicts),
        meta=draw(json_dicts),
    )
    t = segment_trace(t, draw(st.sampled_from(["newline", "double_newline", "sentence", "marker"])))
    steps = [s.with_labels(**draw(json_dicts)) for s in t.steps]
    return t.with_steps(steps)


@SETTINGS
@given(batch=st.lists(traces(), max_size=4))
def test_jsonl_and_parquet_round_trips_are_lossless(batch, tmp_path):
    for suffix in (".jsonl", ".parquet"):
        path = save_traces(batch, tmp_path / f"traces{suffix}")
        assert load_traces(path) == batch
    assert [trace_from_dict(json.loads(json.dumps(trace_to_dict(t)))) for t in batch] == batch


def test_toy_traces_round_trip_with_token_spans_and_labels(tmp_path, char_tokenizer):
    batch = traces_from_samples(generate_samples(TaskConfig(), 5, seed=2), tokenizer=char_tokenizer, n_ctx=40)
    assert any(s.beyond_context for t in batch for s in t.steps)
    assert load_jsonl(save_jsonl(batch, tmp_path / "a.jsonl")) == batch
    assert load_parquet(save_parquet(batch, tmp_path / "a.parquet")) == batch


def test_saving_refuses_values_that_would_come_back_changed(tmp_path):
    t = segment_trace(Trace(trace_id="t", problem_id="p", prompt="", completion="a\nb\n"), "newline")
    bad = t.with_steps([t.steps[0].with_labels(span=(1, 2)), t.steps[1]])
    with pytest.raises(TypeError, match=r"steps\[0\]\.labels\['span'\]: tuple is not a JSON value"):
        save_jsonl([bad], tmp_path / "x.jsonl")
    with pytest.raises(TypeError, match="meta: key 1 is not a string"):
        save_parquet(
            [Trace(trace_id="t", problem_id="p", prompt="", completion="a", meta={1: "x"})], tmp_path / "y.parquet"
        )
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_numpy_scalars_are_saved_as_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    t = Trace(trace_id="t", problem_id="p", prompt="", completion="a", meta={"x": np.float32(0.5), "n": np.int64(3)})
    back = load_jsonl(save_jsonl([t], tmp_path / "n.jsonl"))[0]
    assert back.meta == {"x": 0.5, "n": 3} and type(back.meta["n"]) is int


def test_reading_bad_files_names_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(trace_to_dict(Trace(trace_id="t", problem_id="p", prompt="", completion="a")))
    path.write_bytes(good.encode() + b"\n" + b'{"trace_id": "u", "prompt": "caf\xe9"}\n')
    with pytest.raises(TraceFormatError, match=r"line 2: field 'prompt' holds bytes that are not valid UTF-8"):
        load_jsonl(path)
    path.write_text(good + "\n" + good.replace('"prompt"', '"promt"') + "\n")
    with pytest.raises(TraceFormatError, match=r"line 2: unknown field\(s\) \['promt'\]"):
        load_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(TraceFormatError, match="line 1 must be a JSON object"):
        load_jsonl(path)
    record = json.loads(good) | {"steps": [{"index": 0, "text": "a", "char_start": 0, "char_end": 9}]}
    with pytest.raises(TraceFormatError, match=r"steps\[0\]\.char_end=9 is beyond the completion"):
        trace_from_dict(record)
    with pytest.raises(ValueError, match="use a .jsonl or .parquet suffix"):
        save_traces([], tmp_path / "x.csv")


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = save_jsonl([Trace(trace_id="old", problem_id="p", prompt="", completion="a")], tmp_path / "t.jsonl")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_jsonl([Trace(trace_id="new", problem_id="p", prompt="", completion="b")], path)
    monkeypatch.undo()
    assert [t.trace_id for t in load_jsonl(path)] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_dataframe_has_one_row_per_step_with_label_columns(char_tokenizer):
    batch = traces_from_samples(generate_samples(TaskConfig(), 4, seed=7), tokenizer=char_tokenizer)
    df = to_dataframe(batch)
    assert len(df) == sum(len(t.steps) for t in batch)
    first = df.iloc[0]
    step = batch[0].steps[0]
    assert (first.trace_id, first.step_index, first.text, first.token_start) == (
        batch[0].trace_id,
        0,
        step.text,
        step.token_start,
    )
    labels = {"label_correct", "label_logical", "label_first_error", "label_prefix_correct", "label_viable"}
    assert labels | {"label_kind", "kind"} <= set(df.columns)  # one vocabulary with the store's index
    assert not {"correct", "viable"} & set(df.columns)
    assert df.groupby("trace_id").size().to_dict() == {t.trace_id: len(t.steps) for t in batch}
    assert df["n_steps"].tolist() == [len(t.steps) for t in batch for _ in t.steps]
    assert list(to_dataframe([]).columns)[:3] == ["trace_id", "problem_id", "step_index"]
