"""Segmenters: properties every segmenter must keep (hypothesis), and each segmenter's own rules."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.traces.conftest import completions, prompts
from workbench.traces import Trace, get_segmenter, segment_trace, segmenter_names

TEXT_SEGMENTERS = [
    {"name": "newline"},
    {"name": "newline", "merge_final_line": True},
    {"name": "double_newline"},
    {"name": "sentence"},
    {"name": "sentence", "split_newlines": True, "connectors": ["Hence"]},
    {"name": "spae", "mode": "text"},
    {"name": "spae", "mode": "tokens"},
    {"name": "marker"},
    {"name": "marker", "pattern": r"\d+", "ignore_case": True, "delimiter": r"\n\s*\n"},
]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def trace(completion: str, prompt: str = "Q\n") -> Trace:
    return Trace(trace_id="t", problem_id="p", prompt=prompt, completion=completion)


def assert_partition(t: Trace) -> None:
    """Steps cover the completion in order, without gaps or overlap, and none is blank."""
    assert t.steps, "a non-blank completion has at least one step"
    assert t.steps[0].char_start == 0 and t.steps[-1].char_end == len(t.completion)
    for a, b in zip(t.steps, t.steps[1:], strict=False):
        assert a.char_end == b.char_start
    for s in t.steps:
        assert s.char_start < s.char_end
        assert s.text == t.completion[s.char_start : s.char_end].strip() and s.text


def assert_token_spans(t: Trace, tokenizer) -> None:
    """Token spans are monotone, inside the sequence, after the prompt, and the boundary token ends the step."""
    offsets = tokenizer(t.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    n = len(offsets)
    base = len(t.prompt)
    for s in t.steps:
        assert 0 <= s.token_start <= s.token_end <= n
        assert s.token_end > s.token_start  # every non-blank step has a token
        assert offsets[s.token_start][1] > base  # no step starts in the prompt
        assert s.boundary_token is not None and s.token_start <= s.boundary_token < s.token_end
        a, b = offsets[s.boundary_token]
        assert a < base + s.char_end <= b or (a == b == base + s.char_end)  # it holds the step's last character
    for x, y in zip(t.steps, t.steps[1:], strict=False):
        assert x.token_start <= y.token_start and x.token_end <= y.token_end
        # <=, not <: a BPE token may hold the end of one step and all of the next (" So" after "x. ").
        assert x.boundary_token <= y.boundary_token
    assert t.steps[-1].token_end == n


@pytest.mark.parametrize("spec", TEXT_SEGMENTERS, ids=lambda s: "-".join(f"{v}" for v in s.values()))
@SETTINGS
@given(completion=completions(), prompt=prompts())
def test_every_segmenter_partitions_and_aligns(spec, completion, prompt, char_tokenizer, bpe_tokenizer):
    for tokenizer in (char_tokenizer, bpe_tokenizer):
        t = segment_trace(trace(completion, prompt), spec, tokenizer=tokenizer)
        assert_partition(t)
        assert_token_spans(t, tokenizer)
        assert t.segmenter == get_segmenter(spec).describe()
        assert all(t.segmenter[k] == v for k, v in spec.items())


@SETTINGS
@given(completion=completions(), prompt=prompts(), spec=st.sampled_from(TEXT_SEGMENTERS[:6]))
def test_given_steps_reproduce_any_segmentation(completion, prompt, spec, bpe_tokenizer):
    first = segment_trace(trace(completion, prompt), spec, tokenizer=bpe_tokenizer)
    again = segment_trace(
        trace(completion, prompt), "given", steps=[s.text for s in first.steps], tokenizer=bpe_tokenizer
    )
    assert_partition(again)
    assert_token_spans(again, bpe_tokenizer)
    assert [s.text for s in again.steps] == [s.text for s in first.steps]
    assert again.segmenter == {"name": "given", "field_name": "steps"}


@SETTINGS
@given(
    steps=st.lists(st.text(st.characters(codec="utf-8"), min_size=1).filter(str.strip), min_size=1, max_size=6),
    seps=st.lists(st.sampled_from(["", " ", "\n", "\n\n", " \t\n"]), min_size=6, max_size=6),
)
def test_given_steps_accept_any_whitespace_between_steps(steps, seps):
    steps = [s.strip() for s in steps]
    completion = "".join(s + sep for s, sep in zip(steps, seps, strict=False))
    t = segment_trace(trace(completion), "given", steps=steps)
    assert_partition(t)
    assert [s.text for s in t.steps] == steps


def test_newline_merges_final_line():
    t = segment_trace(trace("a=1\nb=2\n#### 42\n"), "newline", merge_final_line=True)
    assert [s.text for s in t.steps] == ["a=1", "b=2\n#### 42"]
    assert t.segmenter == {"name": "newline", "merge_final_line": True}


def test_double_newline_is_rise_segmentation():
    t = segment_trace(trace("First.\nstill first.\n\nSecond.\n\n\nThird"), "double_newline")
    assert [s.text for s in t.steps] == ["First.\nstill first.", "Second.", "Third"]


def test_sentence_keeps_display_math_whole_and_splits_on_connectors():
    text = (
        "We compute the sum. It is\n$$x = 1. y = 2.$$\nTherefore x<y. e.g. this stays. "
        "The value \\[a. B\\] holds, so it is fine. So we are done!\n\nNext"
    )
    t = segment_trace(trace(text), "sentence")
    assert [s.text for s in t.steps] == [
        "We compute the sum.",
        "It is\n$$x = 1. y = 2.$$",
        "Therefore x<y. e.g. this stays.",
        "The value \\[a. B\\] holds, so it is fine.",
        "So we are done!",
        "Next",
    ]


def test_marker_segmenter_starts_steps_at_markers():
    text = "Compute 3+4=7. Wait, 3+4 is 7 indeed. Alternatively count: 7. Waiting is not a marker."
    t = segment_trace(trace(text), "marker")
    assert [s.text for s in t.steps] == [
        "Compute 3+4=7.",
        "Wait, 3+4 is 7 indeed.",
        "Alternatively count: 7. Waiting is not a marker.",
    ]
    custom = segment_trace(trace("a\n\nb hmm c\n\nd"), "marker", markers=["HMM"], ignore_case=True, delimiter=r"\n\n")
    assert [s.text for s in custom.steps] == ["a", "b", "hmm c", "d"]
    assert custom.segmenter == {
        "name": "marker",
        "markers": ["HMM"],
        "pattern": None,
        "ignore_case": True,
        "delimiter": r"\n\n",
    }


def test_spae_token_mode_needs_tokens_and_agrees_with_text_mode_on_bpe(bpe_tokenizer, char_tokenizer):
    text = "We add the numbers.\n\nThen we carry the one.\n\nSo the sum is 12."
    by_text = segment_trace(trace(text), "spae", mode="text")
    by_tokens = segment_trace(trace(text), "spae", tokenizer=bpe_tokenizer)
    assert (
        [s.text for s in by_tokens.steps]
        == [s.text for s in by_text.steps]
        == [
            "We add the numbers.",
            "Then we carry the one.",
            "So the sum is 12.",
        ]
    )
    # With one token per character no token ends in ".\n\n": SPAE's token rule finds no boundary.
    assert len(segment_trace(trace(text), "spae", tokenizer=char_tokenizer).steps) == 1
    with pytest.raises(ValueError, match="tokenizer"):
        segment_trace(trace(text), "spae")


def test_unknown_segmenter_lists_names():
    with pytest.raises(ValueError, match="segmenter='paragraphs' is unknown") as e:
        segment_trace(trace("a"), "paragraphs")
    for name in segmenter_names():
        assert name in str(e.value)
    assert {"newline", "double_newline", "sentence", "spae", "marker", "given"} <= set(segmenter_names())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": ["a=1", "b=3"]}, r"steps\[1\]='b=3' does not match the completion at character 4"),
        ({"steps": ["a=1"]}, "completion continues after the last step"),
        ({"steps": ["a=1", "  "]}, r"steps\[1\] is empty"),
        ({"steps": []}, "step list is empty"),
        ({"steps": ["b=2", "a=1"], "field_name": "pb_steps"}, r"pb_steps\[0\]"),
        ({"steps": "a=1\nb=2"}, "give a list of step strings"),
    ],
)
def test_given_steps_that_do_not_match_raise_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        segment_trace(trace("a=1\nb=2\n"), "given", **kwargs)


def test_bad_parameters_and_empty_completion_raise_clear_errors():
    with pytest.raises(ValueError, match="completion is empty"):
        segment_trace(trace(" \n "), "newline")
    with pytest.raises(ValueError, match="pattern="):
        get_segmenter("marker", pattern="(")
    with pytest.raises(ValueError, match="mode='bytes'"):
        get_segmenter("spae", mode="bytes")
    with pytest.raises(ValueError, match="bad parameters"):
        get_segmenter("newline", merge_last=True)


def test_recorded_segmenter_rebuilds_the_same_steps(char_tokenizer):
    spec = get_segmenter("sentence", connectors=("Thus",)).describe()
    a = segment_trace(trace("One. Thus two. So three."), spec)
    b = segment_trace(trace("One. Thus two. So three."), a.segmenter)
    assert a == b and [s.text for s in a.steps] == ["One.", "Thus two.", "So three."]


def test_steps_beyond_the_context_are_flagged_not_dropped(char_tokenizer):
    completion = "".join(f"v{i}={i}\n" for i in range(10))  # 5 characters per line
    t = segment_trace(trace(completion, prompt="Q\n"), "newline", tokenizer=char_tokenizer, n_ctx=20)
    assert len(t.steps) == 10
    assert [s.beyond_context for s in t.steps] == [False] * 3 + [True] * 7  # ends at tokens 7, 12, 17, 22, ...
