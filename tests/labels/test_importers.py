"""Importers: server JSONL (lossless), ProcessBench, per-step ratings; bad input names file, line and field."""

from __future__ import annotations

import json

import pytest

from workbench.labels import import_completions, import_processbench, import_rated_steps
from workbench.traces import TraceFormatError, load_jsonl, load_parquet, save_jsonl, save_parquet


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


SERVER = [
    {
        "id": "cmpl-1",
        "prompt": "Solve: 2+2 ünï\r\n",
        "completion": "  First, 2+2.\n\nSo it is 4 ✓.\n\n\n",
        "sampling_params": {"temperature": 0.6, "top_p": 0.95, "seed": 7},
        "model": "deepseek-r1-distill-qwen-1.5b",
        "usage": {"completion_tokens": 12},
    },
    {
        "id": "cmpl-2",
        "prompt": "Q",
        "completion": "a=1\nb=2\n",
        "steps": ["a=1", "b=2"],
        "answer": 2,
    },
    {"id": "cmpl-3", "prompt": "Q", "completion": "x\n\ny", "steps": None},
]


def test_server_jsonl_imports_losslessly_and_survives_our_formats(tmp_path, bpe_tokenizer):
    traces = import_completions(write_jsonl(tmp_path / "server.jsonl", SERVER), tokenizer=bpe_tokenizer)
    a, b, c = traces
    assert (a.trace_id, a.prompt, a.completion) == ("cmpl-1", SERVER[0]["prompt"], SERVER[0]["completion"])
    assert a.meta == {k: SERVER[0][k] for k in ("id", "sampling_params", "model", "usage")}
    assert [s.text for s in a.steps] == ["First, 2+2.", "So it is 4 ✓."]
    assert a.segmenter == {"name": "double_newline"}
    assert [s.text for s in b.steps] == ["a=1", "b=2"] and b.segmenter == {"name": "given", "field_name": "steps"}
    assert b.meta == {"id": "cmpl-2", "answer": 2}
    assert [s.text for s in c.steps] == ["x", "y"]  # "steps": null means no given steps
    assert all(s.token_start is not None for t in traces for s in t.steps)
    assert load_jsonl(save_jsonl(traces, tmp_path / "t.jsonl")) == traces
    assert load_parquet(save_parquet(traces, tmp_path / "t.parquet")) == traces


def test_nested_fields_and_gold_answers(tmp_path):
    record = {"request": {"prompt": "P: "}, "choices": [{"text": "x\n\ny"}], "gold": 3, "problem": "p7"}
    path = write_jsonl(tmp_path / "openai.jsonl", [record])
    (t,) = import_completions(
        path,
        prompt_field="request.prompt",
        completion_field="choices.0.text",
        gold_field="gold",
        problem_id_field="problem",
    )
    assert (t.prompt, t.completion, t.gold_answer, t.problem_id, t.trace_id) == ("P: ", "x\n\ny", "3", "p7", "openai:1")
    assert t.meta == record  # nested fields keep the whole record


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "Q", "completion": " \n"}, r"line 1: field 'completion' is empty"),
        ({"prompt": "Q"}, r"line 1: field 'completion' is missing"),
        ({"prompt": 3, "completion": "a"}, r"line 1: field 'prompt' must be str, got int"),
        (
            {"prompt": "Q", "completion": "a=1\nb=2\n", "steps": ["a=1", "b=3"]},
            r"line 1: steps\[1\]='b=3' does not match",
        ),
        ({"prompt": "Q", "completion": "a=1\nb=2\n", "steps": ["a=1"]}, r"line 1: steps: the completion continues"),
        ({"prompt": "Q", "completion": "a", "steps": "a"}, r"line 1: field 'steps' must be list"),
    ],
)
def test_bad_records_name_line_and_field(tmp_path, record, message):
    with pytest.raises(TraceFormatError, match=message):
        import_completions(write_jsonl(tmp_path / "bad.jsonl", [record]))


def test_non_utf8_bytes_name_the_field(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "Q", "completion": "x"}\n{"prompt": "Q", "completion": "caf\xe9 \xff"}\n')
    with pytest.raises(TraceFormatError, match=r"line 2: field 'completion' holds bytes that are not valid UTF-8"):
        import_completions(path)
    path.write_bytes(b'{"id": "1", "problem": "\xe9", "steps": ["a"], "label": -1}\n')
    with pytest.raises(TraceFormatError, match=r"line 1: field 'problem'"):
        import_processbench(path)


def test_duplicate_ids_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "prompt": "Q", "completion": "a"}] * 2)
    with pytest.raises(TraceFormatError, match="line 2: field 'id'='1' repeats"):
        import_completions(path)


PROCESSBENCH = [
    {
        "id": "gsm8k-0",
        "generator": "Qwen2-7B-Instruct",
        "problem": "Tom has 3 apples and buys 2. How many?",
        "steps": ["Tom starts with 3 apples.", "He buys 2, so 3 + 2 = 6.", "The answer is 6."],
        "final_answer_correct": False,
        "label": 1,
    },
    {
        "id": "gsm8k-1",
        "generator": "Llama-3.1-8B",
        "problem": "1+1?",
        "steps": ["1 + 1 = 2.\n\nThat is all.", "The answer is 2."],
        "final_answer_correct": True,
        "label": -1,
    },
]


def test_processbench_steps_and_earliest_error_labels(tmp_path):
    wrong, right = import_processbench(write_jsonl(tmp_path / "pb.jsonl", PROCESSBENCH))
    assert wrong.prompt == PROCESSBENCH[0]["problem"] + "\n\n"
    assert wrong.completion == "\n\n".join(PROCESSBENCH[0]["steps"])
    assert [s.text for s in wrong.steps] == PROCESSBENCH[0]["steps"]
    assert [s.labels for s in wrong.steps] == [
        {"first_error": False, "correct": True},
        {"first_error": True, "correct": False},
        {"first_error": False, "correct": None},  # ProcessBench does not judge steps after the first error
    ]
    assert wrong.answer_correct is False and wrong.meta["generator"] == "Qwen2-7B-Instruct"
    assert wrong.meta["label"] == 1 and wrong.meta["problem"] == PROCESSBENCH[0]["problem"]
    # A given step may itself contain a blank line: the list, not the delimiter, decides.
    assert [s.text for s in right.steps] == PROCESSBENCH[1]["steps"]
    assert all(s.labels["correct"] for s in right.steps) and right.answer_correct is True
    bad = [{**PROCESSBENCH[0], "label": 3}]
    with pytest.raises(TraceFormatError, match=r"field 'label'=3 is outside \[-1, 2\]"):
        import_processbench(write_jsonl(tmp_path / "bad.jsonl", bad))
    empty_step = [{**PROCESSBENCH[0], "steps": ["a", " ", "b"]}]
    with pytest.raises(TraceFormatError, match=r"field 'steps\[1\]' must be a non-empty string"):
        import_processbench(write_jsonl(tmp_path / "bad2.jsonl", empty_step))


def test_rated_steps_in_both_layouts(tmp_path):
    records = [
        {"id": "a", "problem": "2*3?", "steps": ["2*3 = 5", "so 5"], "ratings": [-1, 0]},
        {"id": "b", "problem": "2*3?", "steps": [{"text": "2*3 = 6", "rating": 1}, {"text": "so 6", "rating": True}]},
    ]
    a, b = import_rated_steps(write_jsonl(tmp_path / "rated.jsonl", records))
    assert [s.labels for s in a.steps] == [{"rating": -1, "correct": False}, {"rating": 0, "correct": False}]
    assert [s.labels for s in b.steps] == [{"rating": 1, "correct": True}, {"rating": True, "correct": True}]
    assert b.completion == "2*3 = 6\n\nso 6"
    with pytest.raises(TraceFormatError, match="field 'ratings' has 1 ratings for 2 steps"):
        import_rated_steps(write_jsonl(tmp_path / "bad.jsonl", [{**records[0], "ratings": [1]}]))
