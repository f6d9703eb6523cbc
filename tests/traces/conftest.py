"""Fixtures for the trace tests: the char tokenizer, a byte-level BPE trained here, hypothesis text strategies."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from workbench.toy.tokenizer import build_char_tokenizer

# Qwen2's pre-tokenizer pattern: punctuation keeps the newlines after it, so ".\n\n" can become one token.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
BPE_CORPUS = [
    "We add the numbers.\n\nThen we carry the one.\n\nSo the sum is 12.\n\n",
    "Wait, that is wrong. Let me check it again.\n\nAlternatively, subtract first.\n\n",
    "Therefore $$x = 1.$$ and \\[y = 2.\\] hold.\n\n",
]

# Fragments that exercise every segmenter: delimiters, connectors, markers, math, non-ASCII, odd whitespace.
FRAGMENTS = [
    "We add the numbers",
    "x=1+2=3",
    ".",
    ". ",
    ".\n\n",
    ".\n\n\n",
    "\n",
    "\n\n",
    " \n \n",
    "  ",
    "Therefore ",
    "So ",
    "so ",
    "Wait, ",
    "Alternatively ",
    "e.g. the ",
    "$$a = b. c$$",
    "\\[u. V\\]",
    "$y. Z$",
    "ünïcödé ",
    "ans=42",
    "! ",
    "? ",
    "\t",
]


def completions() -> st.SearchStrategy[str]:
    """Completions built from :data:`FRAGMENTS` (never blank)."""
    return st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map("".join).filter(lambda s: s.strip())


def prompts() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "Q: 1+2?\n", "a=1,b=2;c=a+b;?c\n", "Problem. ", "ü"])


@pytest.fixture(scope="session")
def char_tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE trained here, with Qwen2's pre-tokenizer: ``.\\n\\n`` is a single token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(BPE_CORPUS * 30, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")
