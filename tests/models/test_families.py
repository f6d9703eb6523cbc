"""Hook meanings on every model family the loader accepts: TransformerLens's, checked three ways.

``hook_attn_out``/``hook_mlp_out`` are what the block adds to the residual stream (after Gemma's
post-attention/post-feedforward norms), ``hook_resid_mid`` the stream between the two, and
``ln_final.hook_normalized`` the final norm before its weight. Each tiny random model gets random norm
weights, so a hook on the wrong side of a norm cannot pass by accident. Checked: the residual identities,
that an edit of ``attn_out``/``mlp_out`` reaches the stream unchanged, and the bridge on every hot-path name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.models import UnknownHookError, load_model
from workbench.toy.tokenizer import build_char_tokenizer

FAMILIES = ["qwen2", "qwen3", "llama", "mistral", "gemma2", "gemma3", "olmo2", "gpt2"]
TEXT = "a=1,b=2;c=a+b;?c\nans=3\n"


def make_family_dir(path: Path, family: str, *, n_layers: int = 2, d_model: int = 32, seed: int = 0) -> Path:
    """A tiny random causal LM of ``family`` with the char tokenizer and non-trivial norm weights."""
    import transformers as tf

    tok = build_char_tokenizer()
    ids = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}
    dec = {
        "hidden_size": d_model,
        "intermediate_size": 2 * d_model,
        "num_hidden_layers": n_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": tok.bos_token_id,
        **ids,
    }
    head = {"head_dim": d_model // 4}
    torch.manual_seed(seed)
    model = {
        "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**dec)),
        "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**dec, **head)),
        "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**dec)),
        "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**dec)),
        "gemma2": lambda: tf.Gemma2ForCausalLM(tf.Gemma2Config(**dec, **head)),
        "gemma3": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**dec, **head)),
        "olmo2": lambda: tf.Olmo2ForCausalLM(tf.Olmo2Config(**dec)),
        "gpt2": lambda: tf.GPT2LMHeadModel(
            tf.GPT2Config(n_embd=d_model, n_layer=n_layers, n_head=4, n_positions=256, **ids)
        ),
        "gpt_neox": lambda: tf.GPTNeoXForCausalLM(
            tf.GPTNeoXConfig(
                hidden_size=d_model,
                intermediate_size=2 * d_model,
                num_hidden_layers=n_layers,
                num_attention_heads=4,
                max_position_embeddings=256,
                use_parallel_residual=True,
                **ids,
            )
        ),  # fmt: skip
    }[family]()
    with torch.no_grad():  # norms start at 1 (Gemma: 1 + 0); random ones make every norm matter
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name or "ln_f" in name:
                p.add_(0.5 * torch.randn_like(p))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    path = make_family_dir(tmp_path_factory.mktemp(request.param), request.param)
    return load_model(path, device="cpu")


def _read_all(model, names, edits=()):
    """Every ``names`` activation of one forward over TEXT, with optional ``(name, fn)`` edits attached first."""
    got = {}

    def rec(activation, hook):
        got[getattr(hook, "name", hook)] = activation.detach().clone()

    ids = model.tokenize([TEXT])["input_ids"]
    with model.hooks([*edits, *((n, rec) for n in names)]):
        logits = model.forward(ids)
    return got, logits


def test_residual_identities_hold_on_the_hot_path(family_model):
    got, _ = _read_all(family_model, family_model.hook_names)
    for i in range(family_model.n_layers):
        b = f"blocks.{i}."
        scale = got[b + "hook_resid_post"].abs().max()
        torch.testing.assert_close(got[b + "hook_resid_pre"] + got[b + "hook_attn_out"], got[b + "hook_resid_mid"])
        torch.testing.assert_close(got[b + "hook_resid_mid"] + got[b + "hook_mlp_out"], got[b + "hook_resid_post"])
        assert got[b + "hook_attn_out"].abs().max() > 1e-3 * scale  # not trivially zero
        if i:
            torch.testing.assert_close(got[f"blocks.{i - 1}.hook_resid_post"], got[b + "hook_resid_pre"])
    # TransformerLens's ln_final.hook_normalized: the last stream centred (LayerNorm) and scaled, no weight
    x = got[f"blocks.{family_model.n_layers - 1}.hook_resid_post"]
    cfg = family_model.config
    if cfg.model_type == "gpt2":
        x = x - x.mean(-1, keepdim=True)
    eps = getattr(cfg, "rms_norm_eps", None) or cfg.layer_norm_epsilon
    torch.testing.assert_close(got["ln_final.hook_normalized"], x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def test_lm_head_reads_ln_final_hook_out(family_model):
    got, logits = _read_all(family_model, ["ln_final.hook_out"])
    out = family_model.hf_model.get_output_embeddings()(got["ln_final.hook_out"])
    cap = getattr(family_model.config, "final_logit_softcapping", None)
    torch.testing.assert_close(torch.tanh(out / cap) * cap if cap else out, logits)


@pytest.mark.parametrize("kind, downstream", [("hook_attn_out", "hook_resid_mid"), ("hook_mlp_out", "hook_resid_post")])
def test_an_edit_of_a_block_output_reaches_the_residual_stream_unchanged(family_model, kind, downstream):
    v = torch.linspace(-1, 1, family_model.d_model)
    name, after = f"blocks.0.{kind}", f"blocks.0.{downstream}"
    clean, _ = _read_all(family_model, [after])
    edited, _ = _read_all(family_model, [after], edits=[(name, lambda activation, hook: activation + v)])
    torch.testing.assert_close(edited[after] - clean[after], v.expand_as(clean[after]), atol=1e-5, rtol=1e-5)


def test_hot_path_equals_the_bridge_on_every_hot_path_name(family_model):
    names = family_model.hook_names
    got, logits = _read_all(family_model, names)
    ids = family_model.tokenize([TEXT])["input_ids"]
    b_logits, cache = family_model.bridge.run_with_cache(ids, names_filter=lambda n: n in names)
    assert set(names) <= set(cache.keys()), sorted(set(names) - set(cache.keys()))
    for name in names:
        torch.testing.assert_close(got[name], cache[name], atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    torch.testing.assert_close(logits, b_logits, atol=1e-5, rtol=1e-5)


def test_read_only_names_refuse_edits(family_model):
    ids = family_model.tokenize([TEXT])["input_ids"]
    for name in ("blocks.0.hook_resid_mid", "ln_final.hook_normalized"):
        with pytest.raises(RuntimeError, match="read-only"), family_model.hooks([(name, lambda a, h: a * 2)]):
            family_model.forward(ids)


def test_parallel_residual_models_refuse_resid_mid(tmp_path):
    model = load_model(make_family_dir(tmp_path / "neox", "gpt_neox"), device="cpu")
    assert "blocks.0.hook_resid_mid" not in model.hook_names
    with pytest.raises(UnknownHookError, match="parallel"):
        model.validate_hooks(["blocks.0.hook_resid_mid"])
    got, logits = _read_all(model, model.hook_names)
    b = "blocks.1."  # attention and MLP both read resid_pre and both add to it
    want = got[b + "hook_resid_pre"] + got[b + "hook_attn_out"] + got[b + "hook_mlp_out"]
    torch.testing.assert_close(want, got[b + "hook_resid_post"])
    assert {"ln_final.hook_normalized", "ln_final.hook_out"} <= set(model.hook_names)
    ids = model.tokenize([TEXT])["input_ids"]
    b_logits, cache = model.bridge.run_with_cache(ids, names_filter=lambda n: n in model.hook_names)
    for name in model.hook_names:
        torch.testing.assert_close(got[name], cache[name], atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    torch.testing.assert_close(logits, b_logits, atol=1e-5, rtol=1e-5)
