"""Hot path vs TransformerBridge: the same activations for every hot-path hook, padding included."""

import torch

HOOKS = [
    "hook_embed",
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_attn_out",
    "blocks.0.hook_resid_mid",
    "blocks.0.hook_mlp_out",
    "blocks.1.hook_resid_post",
    "ln_final.hook_normalized",
]


def test_hot_path_matches_bridge_activations(tiny_model):
    enc = tiny_model.tokenize(["a=1,b=2;c=a+b;?c\n", "x=5;?x\n"], padding_side="left")  # padding first
    got = {}
    with tiny_model.hooks([(h, lambda t, hook: got.__setitem__(hook.name, t.clone())) for h in HOOKS]):
        logits = tiny_model.forward(enc["input_ids"], enc["attention_mask"])
    bridge_logits, cache = tiny_model.bridge.run_with_cache(
        enc["input_ids"], attention_mask=enc["attention_mask"], names_filter=lambda n: n in HOOKS
    )
    real = enc["attention_mask"].bool()
    for h in HOOKS:
        torch.testing.assert_close(got[h][real], cache[h][real], atol=1e-5, rtol=1e-5, msg=h)
    torch.testing.assert_close(logits[real], bridge_logits[real], atol=1e-5, rtol=1e-5)


def test_bridge_does_not_touch_the_hot_path_model(tiny_model):
    bridge = tiny_model.bridge
    assert bridge.original_model is not tiny_model.hf_model
    assert "bridge" not in type(tiny_model.hf_model).__name__.lower()
    assert tiny_model.bridge is bridge  # booted once


def test_bridge_tokenizes_exactly_like_the_model(tiny_model):
    text = "a=1,b=2;c=a+b;?c\nans=3\n"
    ids = tiny_model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_model.bridge.to_tokens(text)[0].tolist() == ids
    assert tiny_model.bridge.to_string(tiny_model.bridge.to_tokens(text)[0]) == text
