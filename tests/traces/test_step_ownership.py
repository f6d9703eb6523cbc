"""Every token belongs to exactly one step, and each step's boundary token lies inside it.

Byte-level BPEs glue a word to the space before it (GPT-2/Llama-3: ``ĠNext``), Qwen's also glues
punctuation to the word after it (``,Wait``). A cut between steps that falls inside such a token is moved
to the token's edge, so the whitespace between steps is owned by whichever step holds its token: checked
for every segmenter with a Qwen-style and a GPT-2-style tokenizer, on segmentation and on re-alignment.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import BPE_CORPUS, QWEN2_PATTERN
from tests.traces.conftest import completions, prompts
from tests.traces.test_segmenters import TEXT_SEGMENTERS
from workbench.traces import Step, Trace, align_trace, segment_trace

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _train_bpe(pre_tokenizer, extra: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizer
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator([*BPE_CORPUS, extra] * 30, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    """A byte-level BPE with GPT-2's own pre-tokenizer: a word carries its leading space (``ĠNext``)."""
    from tokenizers import pre_tokenizers

    return _train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), "We add the sum. Next we")


@pytest.fixture(scope="module")
def qwen_glue_tokenizer():
    """Qwen2's pre-tokenizer (as the ``bpe_tokenizer`` fixture), trained until ``,Wait`` is one token."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated")
    pre = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return _train_bpe(pre, "x=1,Wait x=2,Wait")


def _offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    return [tuple(o) for o in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]


def assert_each_token_in_one_step(t: Trace, tokenizer) -> None:
    offsets = _offsets(tokenizer, t.text)
    base = len(t.prompt)
    for s in t.steps:
        assert s.token_start < s.token_end and s.token_start <= s.boundary_token < s.token_end, s
        a, b = offsets[s.boundary_token]
        assert a < base + s.char_end <= b, f"boundary token {s.boundary_token} {(a, b)} does not end step {s}"
        assert s.text == t.completion[s.char_start : s.char_end].strip() and s.text
    for x, y in zip(t.steps, t.steps[1:], strict=False):
        assert x.char_end == y.char_start
        assert x.token_end == y.token_start, f"steps {x.index} and {y.index} share tokens"
        cut = base + x.char_end
        assert not any(a < cut < b for a, b in offsets), f"a token straddles the cut at {cut}"


@pytest.mark.parametrize("spec", [*TEXT_SEGMENTERS], ids=lambda s: "-".join(f"{v}" for v in s.values()))
@FEW
@given(completion=completions(), prompt=prompts())
def test_no_token_belongs_to_two_steps(spec, completion, prompt, bpe_tokenizer, gpt2_tokenizer):
    for tokenizer in (bpe_tokenizer, gpt2_tokenizer):
        t = segment_trace(
            Trace(trace_id="t", problem_id="p", prompt=prompt, completion=completion), spec, tokenizer=tokenizer
        )
        assert_each_token_in_one_step(t, tokenizer)
        again = segment_trace(t, "given", steps=[s.text for s in t.steps], tokenizer=tokenizer)
        assert [(s.char_start, s.char_end) for s in again.steps] == [(s.char_start, s.char_end) for s in t.steps]


@FEW
@given(completion=completions(), prompt=prompts())
def test_realigning_text_only_steps_gives_the_same_ownership(completion, prompt, bpe_tokenizer, gpt2_tokenizer):
    """Capture re-aligns steps cut without a tokenizer: the same rule applies there."""
    plain = segment_trace(Trace(trace_id="t", problem_id="p", prompt=prompt, completion=completion), "sentence")
    for tokenizer in (bpe_tokenizer, gpt2_tokenizer):
        aligned = align_trace(plain, tokenizer)
        assert_each_token_in_one_step(aligned, tokenizer)
        direct = segment_trace(plain, "sentence", tokenizer=tokenizer)
        assert aligned.steps == direct.steps


def test_gpt2_style_sentence_boundary_is_the_full_stop_not_the_next_word(gpt2_tokenizer):
    t = Trace(trace_id="t", problem_id="p", prompt="", completion="We add the sum. Next we carry.")
    t = segment_trace(t, "sentence", tokenizer=gpt2_tokenizer)
    offsets = _offsets(gpt2_tokenizer, t.text)
    first, second = t.steps
    assert t.text[slice(*offsets[first.boundary_token])] == "."
    assert t.text[slice(*offsets[second.token_start])] == " Next"  # the space travels with its word
    assert (first.text, second.text) == ("We add the sum.", "Next we carry.")
    assert first.token_end == second.token_start


def test_qwen_style_glued_punctuation_goes_with_the_marker_word(qwen_glue_tokenizer):
    text = "x=1,Wait x=2"
    assert any(text[a:b] == ",Wait" for a, b in _offsets(qwen_glue_tokenizer, text))  # Qwen's pattern glues them
    t = Trace(trace_id="t", problem_id="p", prompt="", completion=text)
    t = segment_trace(t, "marker", tokenizer=qwen_glue_tokenizer)
    assert [s.text for s in t.steps] == ["x=1", ",Wait x=2"]
    assert_each_token_in_one_step(t, qwen_glue_tokenizer)


def test_steps_that_do_not_meet_are_left_alone(gpt2_tokenizer):
    """Only shared cuts move; a step list with a gap keeps its spans."""
    steps = (
        Step(index=0, text="We add.", char_start=0, char_end=7),
        Step(index=1, text="one.", char_start=13, char_end=17),
    )
    t = Trace(trace_id="t", problem_id="p", prompt="", completion="We add. Next one.", steps=steps)
    out = align_trace(t, gpt2_tokenizer)
    assert [(s.char_start, s.char_end) for s in out.steps] == [(0, 7), (13, 17)]
