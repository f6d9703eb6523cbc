"""Shared fixtures: tiny random Hugging Face folders of several architectures, and the embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.toy.tokenizer import build_char_tokenizer

torch.set_num_threads(1)  # tests are small; one thread is fastest on the 2-core CI machine


def make_tiny_model_dir(
    path: Path, arch: str = "qwen2", *, n_layers: int = 2, d_model: int = 32, seed: int = 0
) -> Path:
    """Write a randomly initialised causal LM of ``arch`` (qwen2, llama, gpt2) with the char tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = build_char_tokenizer()
    ids = {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    torch.manual_seed(seed)
    # Qwen2 and Llama take the same config fields; GPT-2 names them differently.
    decoder = {
        "hidden_size": d_model,
        "intermediate_size": 2 * d_model,
        "num_hidden_layers": n_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        **ids,
    }
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**decoder))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**decoder))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=d_model, n_layer=n_layers, n_head=4, n_positions=256, **ids))
    else:
        raise ValueError(f"arch={arch!r}")
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2 folder (2 layers, d_model 32) shared by the session."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "qwen2")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny Qwen2 loaded through ``load_model`` on CPU."""
    from workbench.models import load_model

    return load_model(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def embedded():
    """The shipped embedded model, loaded through ``load_model()`` with no argument."""
    from workbench.models import load_model

    return load_model(device="cpu")


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


def attached_hooks(model) -> dict[str, tuple]:
    """Every forward hook and pre-hook on ``model.hf_model``'s modules, by module name.

    transformers itself installs output-capturing hooks the first time a model runs with
    ``output_attentions=True`` and keeps them; tests compare snapshots before and after instead of
    expecting none at all.
    """
    return {
        name: (tuple(m._forward_hooks.values()), tuple(m._forward_pre_hooks.values()))
        for name, m in model.hf_model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks
    }


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (skipped when none is installed; a failure in CI).

    Playwright's sync API allows one running instance per thread, so every browser test shares this one.
    """
    from tests.browser import launch_chromium

    with launch_chromium() as b:
        yield b
