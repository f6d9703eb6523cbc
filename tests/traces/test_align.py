"""Token alignment with a real byte-level BPE (trained here) where ``.\\n\\n`` is one token."""

from __future__ import annotations

import pytest

from workbench.traces import Trace, align_trace, segment_trace, token_offsets


def test_the_trained_bpe_merges_the_delimiter_with_the_period(bpe_tokenizer):
    ids = bpe_tokenizer("the one.\n\nSo", add_special_tokens=False)["input_ids"]
    assert ".\n\n" in [bpe_tokenizer.decode([i]) for i in ids]


@pytest.mark.parametrize("segmenter", ["double_newline", {"name": "spae", "mode": "tokens"}])
def test_boundary_token_is_the_merged_delimiter_token(bpe_tokenizer, segmenter):
    prompt = "Q: add.\n\n"
    completion = "We add the numbers.\n\nThen we carry the one.\n\nSo the sum is 12."
    t = segment_trace(
        Trace(trace_id="t", problem_id="p", prompt=prompt, completion=completion), segmenter, tokenizer=bpe_tokenizer
    )
    text = prompt + completion
    offsets = token_offsets(bpe_tokenizer, text)
    pieces = [text[a:b] for a, b in offsets]
    assert [s.text for s in t.steps] == ["We add the numbers.", "Then we carry the one.", "So the sum is 12."]
    for s in t.steps[:2]:
        assert pieces[s.boundary_token] == ".\n\n"  # the merged token, RISE's and SPAE's read-out position
        assert s.boundary_token == s.token_end - 1
        assert "".join(pieces[s.token_start : s.token_end]) == completion[s.char_start : s.char_end]
    assert pieces[t.steps[-1].boundary_token] == "."
    assert t.steps[0].token_start == pieces.index("We")  # the prompt's own ".\n\n" stays in the prompt
    assert t.steps[-1].token_end == len(offsets)


def test_byte_level_tokens_inside_one_character(bpe_tokenizer):
    # "ü" is two byte-level tokens with the same character span; both belong to the step.
    t = segment_trace(
        Trace(trace_id="t", problem_id="p", prompt="", completion="x ü.\n\nyü"),
        "double_newline",
        tokenizer=bpe_tokenizer,
    )
    offsets = token_offsets(bpe_tokenizer, t.text)
    last = t.steps[-1]
    assert offsets[last.token_end - 1] == offsets[last.token_end - 2] == (len(t.text) - 1, len(t.text))
    assert last.boundary_token == last.token_end - 1
    assert t.steps[0].token_end == last.token_start


def test_alignment_flags_steps_beyond_context_and_keeps_them(bpe_tokenizer):
    completion = "".join(f"Step {i} is done.\n\n" for i in range(12))
    t = Trace(trace_id="t", problem_id="p", prompt="", completion=completion)
    full = segment_trace(t, "double_newline", tokenizer=bpe_tokenizer)
    n_ctx = full.steps[5].token_end  # step 5 ends exactly at the context limit
    cut = align_trace(full, bpe_tokenizer, n_ctx=n_ctx)
    assert len(cut.steps) == 12
    assert [s.beyond_context for s in cut.steps] == [False] * 6 + [True] * 6
    assert [s.token_end for s in cut.steps] == [s.token_end for s in full.steps]


def test_slow_tokenizers_are_refused_with_a_clear_error():
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        token_offsets(Slow(), "x")
