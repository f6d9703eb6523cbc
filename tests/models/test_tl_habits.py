"""TransformerLens habits on the hot path: ``fn(activation, hook)``, to_tokens/to_string, __call__,
run_with_cache and run_with_hooks, checked against the TransformerBridge on the same tokens."""

import pytest
import torch

from workbench.models import ActivationCache, HookPoint, UnknownHookError

TEXTS = ["a=1,b=2;c=a+b;?c\n", "x=5;?x\n"]
HOOKS = ["hook_embed", "blocks.0.hook_attn_out", "blocks.1.hook_resid_post", "ln_final.hook_normalized"]


def test_hook_functions_get_a_hook_point_with_name_and_layer(tiny_model):
    seen = []

    def hook_fn(activation, hook):
        seen.append((hook.name, hook.layer(), tuple(activation.shape)))

    tiny_model(TEXTS[0], return_type=None)  # no hooks: nothing recorded
    with tiny_model.hooks([("blocks.1.hook_resid_post", hook_fn)]):
        tiny_model(TEXTS[0], return_type=None)
    assert seen == [("blocks.1.hook_resid_post", 1, (1, len(TEXTS[0]), tiny_model.d_model))]
    with pytest.raises(ValueError, match="not inside a block"):
        HookPoint("hook_embed").layer()


def test_to_tokens_pads_right_and_to_string_round_trips(tiny_model):
    tokens = tiny_model.to_tokens(TEXTS)
    assert tokens.shape == (2, len(TEXTS[0]))
    for row, text in zip(tokens, TEXTS, strict=True):
        ids = tiny_model.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert row[: len(ids)].tolist() == ids  # position i is the text's token i: no left padding
    assert tiny_model.to_string(tiny_model.to_tokens(TEXTS[0])[0]) == TEXTS[0]
    assert tiny_model.to_string(tiny_model.to_tokens(TEXTS[:1])) == TEXTS[:1]
    assert tiny_model.to_tokens(TEXTS[0]).tolist() == tiny_model.bridge.to_tokens(TEXTS[0]).tolist()


def test_call_matches_forward(tiny_model):
    tokens = tiny_model.to_tokens(TEXTS[0])
    torch.testing.assert_close(tiny_model(TEXTS[0]), tiny_model.forward(tokens), rtol=0, atol=0)
    torch.testing.assert_close(tiny_model(tokens[0]), tiny_model.forward(tokens), rtol=0, atol=0)
    with pytest.raises(ValueError, match="return_type"):
        tiny_model(tokens, return_type="loss")


def test_run_with_cache_equals_the_bridge_on_the_same_tokens(tiny_model):
    tokens = tiny_model.to_tokens(TEXTS[0])
    logits, cache = tiny_model.run_with_cache(tokens, names_filter=lambda n: n in HOOKS)
    b_logits, b_cache = tiny_model.bridge.run_with_cache(tokens, names_filter=lambda n: n in HOOKS)
    assert list(cache) == HOOKS and isinstance(cache, ActivationCache)
    for name in HOOKS:
        torch.testing.assert_close(cache[name], b_cache[name], atol=1e-5, rtol=1e-5, msg=name)
    torch.testing.assert_close(logits, b_logits, atol=1e-5, rtol=1e-5)


def test_run_with_cache_on_a_padded_batch_equals_the_bridge_at_real_positions(tiny_model):
    enc = tiny_model.tokenize(TEXTS, padding_side="left")  # padding first and a mask, passed to both
    _, cache = tiny_model.run_with_cache(
        enc["input_ids"], attention_mask=enc["attention_mask"], names_filter="blocks.1.hook_resid_post"
    )
    _, b_cache = tiny_model.bridge.run_with_cache(
        enc["input_ids"], attention_mask=enc["attention_mask"], names_filter="blocks.1.hook_resid_post"
    )
    real = enc["attention_mask"].bool()
    name = "blocks.1.hook_resid_post"
    torch.testing.assert_close(cache[name][real], b_cache[name][real], atol=1e-5, rtol=1e-5)


def test_run_with_cache_accepts_text_names_and_the_tl_shorthand(tiny_model):
    logits, cache = tiny_model.run_with_cache(TEXTS, names_filter=["blocks.0.hook_resid_post"])
    assert logits.shape[:2] == (2, len(TEXTS[0])) and list(cache) == ["blocks.0.hook_resid_post"]
    assert cache["resid_post", 0] is cache["blocks.0.hook_resid_post"]
    with pytest.raises(KeyError, match=r"it holds \['blocks.0.hook_resid_post'\]"):
        cache["blocks.1.hook_resid_post"]
    _, everything = tiny_model.run_with_cache(TEXTS[0])
    assert list(everything) == tiny_model.hook_names


def test_names_filter_matching_nothing_raises_with_the_valid_names(tiny_model):
    with pytest.raises(UnknownHookError, match=r"matches none.*blocks\.0\.hook_resid_pre"):
        tiny_model.run_with_cache(TEXTS[0], names_filter=lambda n: n.endswith("hook_pattern"))
    with pytest.raises(UnknownHookError, match="Valid names"):
        tiny_model.run_with_cache(TEXTS[0], names_filter=["blocks.0.attn.hook_pattern"])
    with pytest.raises(UnknownHookError, match="matches none"):
        tiny_model.run_with_cache(TEXTS[0], names_filter=[])


def test_run_with_hooks_returns_edited_logits_and_detaches(tiny_model):
    base = tiny_model(TEXTS[0])

    def add_one(activation, hook):
        return activation + 1.0

    edited = tiny_model.run_with_hooks(TEXTS[0], fwd_hooks=[("blocks.0.hook_resid_post", add_one)])
    b_edited = tiny_model.bridge.run_with_hooks(
        tiny_model.to_tokens(TEXTS[0]), fwd_hooks=[("blocks.0.hook_resid_post", add_one)]
    )
    torch.testing.assert_close(edited, b_edited, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base, edited)
    torch.testing.assert_close(tiny_model(TEXTS[0]), base, rtol=0, atol=0)  # nothing left attached
    names = []
    tiny_model.run_with_hooks(
        TEXTS[0], fwd_hooks=[(lambda n: n.endswith("resid_post"), lambda a, hook: names.append(hook.name))]
    )
    assert names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
