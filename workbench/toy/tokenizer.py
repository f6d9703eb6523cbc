"""The embedded model's character tokenizer: one token per printable ASCII character.

Built with the ``tokenizers`` library and saved as a standard ``tokenizer.json`` so that it loads through
``transformers.AutoTokenizer`` exactly like a real model's tokenizer, offset mapping included.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "build_char_tokenizer"]

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
_CHARS = "\n" + "".join(c for c in string.printable if c.isprintable())  # 95 printable ASCII + newline


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A fast tokenizer mapping each character to one id; unknown characters map to ``<unk>``."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for ch in _CHARS:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    # Split into single characters, newlines included ("(?s)" is not supported, so use a class).
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    # Generation pads on the left; saved in tokenizer_config.json so every loader agrees.
    return PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", model_max_length=512, **SPECIAL_TOKENS)
