"""load_model: architectures, the embedded default, errors for missing and corrupted folders."""

import json

import pytest
import torch

from tests.conftest import attached_hooks, make_tiny_model_dir
from workbench.models import ModelLoadError, ModelNotFoundError, UnknownHookError, load_model


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gpt2"])
def test_tiny_architectures_load_and_run_forward(tmp_path, arch):
    model = load_model(make_tiny_model_dir(tmp_path / arch, arch), device="cpu")
    assert model.n_layers == 2 and model.d_model == 32 and model.device.type == "cpu"
    assert model.dtype == torch.float32
    text = "a=1,b=2;c=a+b;?c\nans=3 ok\n"
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and model.tokenizer.decode(ids) == text  # newlines and spaces survive loading
    enc = model.tokenize(["a=1,b=2;c=a+b;?c\n", "x=5;?x\n"])
    logits = model.forward(enc["input_ids"], enc["attention_mask"])
    assert logits.shape == (2, enc["input_ids"].shape[1], len(model.tokenizer))
    assert torch.isfinite(logits).all()
    seen = {}
    with model.hooks([("blocks.1.hook_resid_post", lambda t, hook: seen.update({hook.name: t.shape}))]):
        model.forward(enc["input_ids"], enc["attention_mask"])
    assert seen == {"blocks.1.hook_resid_post": (2, enc["input_ids"].shape[1], 32)}
    with pytest.raises(TypeError, match="return a tensor"), model.hooks([("blocks.0.hook_mlp_out", lambda t, hook: 1)]):
        model.forward(enc["input_ids"])


def test_provenance_records_backend_hash_and_versions(tiny_model, tiny_model_dir):
    prov = tiny_model.provenance()
    assert prov["backend"] == "hf-torch-hooks" and prov["source"] == "local"
    assert prov["path"] == str(tiny_model_dir.resolve()) and len(prov["weights_sha256"]) == 64
    assert prov["architecture"] == "Qwen2ForCausalLM" and prov["bridge_compatibility_mode"] is False
    assert prov["transformer_lens"].startswith("3.")


def test_dtype_override(tiny_model_dir):
    assert load_model(tiny_model_dir, device="cpu", dtype="bfloat16").hf_model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype="):
        load_model(tiny_model_dir, device="cpu", dtype="float77")


def test_missing_folder_says_where_it_looked(tmp_path):
    with pytest.raises(ModelNotFoundError, match="looked in") as err:
        load_model(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value) and "Nothing is downloaded" in str(err.value)


def test_uncached_hub_name_fails_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotFoundError, match="Hugging Face cache"):
        load_model("someone/not-a-cached-model")


def test_hub_name_in_local_cache_loads(monkeypatch, tmp_path):
    # Lay out a folder the way huggingface_hub caches a snapshot, then ask for it by name.
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny"
    make_tiny_model_dir(repo / "snapshots" / "abc123", "llama")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    import workbench.models.resolve as resolve

    monkeypatch.setattr(
        resolve,
        "_from_hf_cache",
        lambda name: resolve.Path(
            __import__("huggingface_hub").snapshot_download(repo_id=name, local_files_only=True, cache_dir=cache)
        ),
    )
    model = load_model("acme/tiny", device="cpu")
    assert model.resolved.source == "hf-cache" and model.config.model_type == "llama"


def test_corrupted_folders_give_clear_errors(tmp_path):
    good = make_tiny_model_dir(tmp_path / "m", "qwen2")
    (good / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not valid JSON"):
        load_model(good)
    good = make_tiny_model_dir(tmp_path / "m2", "qwen2")
    weights = good / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="incomplete or corrupted"):
        load_model(good)
    good = make_tiny_model_dir(tmp_path / "m3", "qwen2")
    (good / "model.safetensors").rename(good / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickled weights are never loaded"):
        load_model(good)
    good = make_tiny_model_dir(tmp_path / "m4", "qwen2")
    (good / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(good)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_model(tmp_path / "file")


def test_unknown_hook_lists_valid_names(tiny_model):
    with pytest.raises(UnknownHookError, match=r"Valid names: hook_embed, blocks\.\{0\.\.1\}"):
        tiny_model.validate_hooks(["blocks.7.hook_resid_post"])
    with pytest.raises(UnknownHookError):
        with tiny_model.hooks([("blocks.0.hook_nonsense", lambda t, hook: None)]):
            pass


def test_hooks_are_removed_even_when_the_forward_raises(tiny_model):
    enc = tiny_model.tokenize(["a=1;?a\n"])
    before = attached_hooks(tiny_model)

    def boom(t, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with tiny_model.hooks([("blocks.0.hook_resid_post", boom)]):
            tiny_model.forward(enc["input_ids"])
    assert attached_hooks(tiny_model) == before
    tiny_model.forward(enc["input_ids"])  # runs clean afterwards


def test_editing_hook_changes_the_output_only_inside_the_block(tiny_model):
    enc = tiny_model.tokenize(["a=1,b=2;c=a+b;?c\n"])
    base = tiny_model.forward(enc["input_ids"])
    with tiny_model.hooks([("blocks.0.hook_resid_post", lambda t, hook: t + 1.0)]):
        edited = tiny_model.forward(enc["input_ids"])
    assert not torch.allclose(base, edited)
    assert torch.equal(base, tiny_model.forward(enc["input_ids"]))


def test_stop_at_layer_ends_the_pass_early(tiny_model):
    enc = tiny_model.tokenize(["a=1;?a\n"])
    fired = []
    with tiny_model.hooks([("blocks.1.hook_resid_pre", lambda t, hook: fired.append(hook.name))]):
        assert tiny_model.forward(enc["input_ids"], stop_at_layer=0) is None
    assert fired == []
    with pytest.raises(ValueError, match="stop_at_layer"):
        tiny_model.forward(enc["input_ids"], stop_at_layer=5)


def test_embedded_default_env_override(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("WORKBENCH_EMBEDDED_MODEL", str(tiny_model_dir))
    assert load_model(device="cpu").resolved.source == "embedded"
    monkeypatch.setenv("WORKBENCH_EMBEDDED_MODEL", "/nonexistent/embedded")
    with pytest.raises(ModelNotFoundError, match="embedded model is missing"):
        load_model()


def test_model_card_fields_exist_for_the_shipped_model():
    from workbench.models import embedded_model_dir

    card = json.loads((embedded_model_dir() / "evaluation.json").read_text())
    assert {"greedy_in_distribution", "greedy_out_of_distribution", "sampled_t1"} <= set(card)
