"""In-memory step activations: the store's values without a store, positions that cannot be off by padding."""

import pandas as pd
import pytest
import torch

from workbench.capture import CaptureConfig, TokenFeatureConfig, capture, step_activations
from workbench.labels import traces_from_samples
from workbench.store import open_store
from workbench.toy import TaskConfig, generate_samples

CFG = CaptureConfig(
    layers=(0, 1),
    poolings=("boundary", "last", "mean", "max"),
    logit_stats=True,
    token_features=TokenFeatureConfig(hooks=("blocks.0.hook_resid_post",), top_k=2),
    max_batch_tokens=300,  # several batches, so batch order differs from input order
    progress=False,
)


@pytest.fixture(scope="module")
def aligned(tiny_model):
    """Six toy traces aligned to the tiny model's tokenizer."""
    return traces_from_samples(generate_samples(TaskConfig(), 6, seed=3), tokenizer=tiny_model.tokenizer)


def test_in_memory_activations_equal_the_store(tiny_model, aligned, tmp_path):
    acts = step_activations(aligned, tiny_model, CFG)
    capture(aligned, tiny_model, tmp_path / "store", CFG)
    store = open_store(tmp_path / "store")
    assert list(acts.index.trace_id.unique()) == [t.trace_id for t in aligned]  # input order, not batch order
    mem = acts.index.sort_values(["trace_id", "step_index"], ignore_index=True)
    disk = store.index.sort_values(["trace_id", "step_index"], ignore_index=True)
    same_cols = [c for c in disk.columns if c not in ("row", "token_row", "shard")]
    assert set(acts.index.columns) == set(disk.columns) - {"shard"}
    pd.testing.assert_frame_equal(mem[same_cols], disk[same_cols])
    captured_mem, captured_disk = mem[mem.row >= 0], disk[disk.row >= 0]
    assert len(captured_mem) > 0 and acts.hooks == store.hooks and acts.poolings == store.poolings
    for hook in store.hooks:
        for pooling in store.poolings:
            torch.testing.assert_close(
                acts.tensors(hook, pooling, captured_mem), store.tensors(hook, pooling, captured_disk), rtol=0, atol=0
            )
    for name in ("blocks.0.hook_resid_post", "entropy"):
        rows_mem = acts.index.sort_values(["trace_id", "step_index"]).query("token_row >= 0")
        spans = zip(rows_mem.token_row, rows_mem.n_token_rows, strict=True)
        got = torch.cat([acts.vectors[f"tokens/{name}"][r : r + n] for r, n in spans])
        want = torch.cat(store.step_tokens(name, captured_disk[captured_disk.n_token_rows > 0]))
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_tensors_follow_the_index_order(tiny_model, aligned):
    acts = step_activations(aligned, tiny_model, CaptureConfig(layers=(1,), poolings=("boundary",), progress=False))
    captured = acts.index[acts.index.row >= 0]
    assert captured.row.tolist() == list(range(len(captured)))
    all_rows = acts.tensors("blocks.1.hook_resid_post", "boundary")
    torch.testing.assert_close(all_rows, acts.tensors("blocks.1.hook_resid_post", "boundary", captured))
    assert "label_correct" in acts.index.columns  # one label vocabulary with the store and to_dataframe
    with pytest.raises(KeyError, match="was not captured"):
        acts.tensors("blocks.0.hook_resid_post", "boundary")


def test_padded_batch_positions_match_step_spans(tiny_model, aligned):
    """``model.tokenize`` pads on the right, so ``Step.boundary_token`` indexes every row of a batch."""
    hook = "blocks.1.hook_resid_post"
    acts = step_activations(aligned, tiny_model, CaptureConfig(hooks=(hook,), poolings=("boundary",), progress=False))
    _, cache = tiny_model.run_with_cache([t.text for t in aligned], names_filter=hook)
    want = torch.stack([cache[hook][i, s.boundary_token] for i, t in enumerate(aligned) for s in t.steps])
    torch.testing.assert_close(acts.tensors(hook, "boundary"), want, atol=1e-5, rtol=1e-5)
    enc = tiny_model.tokenize([t.text for t in aligned])
    assert (enc["attention_mask"][:, 0] == 1).all()  # no row starts with padding


def test_empty_and_wrong_inputs_are_refused_before_anything_is_written(tiny_model, aligned, tmp_path):
    cfg = CaptureConfig(layers=(0,), progress=False)
    for empty in ([], iter([]), (t for t in [])):
        with pytest.raises(ValueError, match="traces is empty"):
            capture(empty, tiny_model, tmp_path / "s", cfg)
        with pytest.raises(ValueError, match="traces is empty"):
            step_activations(empty, tiny_model, cfg)
    with pytest.raises(TypeError, match="load_traces"):
        capture(str(tmp_path / "traces.jsonl"), tiny_model, tmp_path / "s", cfg)
    with pytest.raises(TypeError, match="pass a list"):
        step_activations(aligned[0], tiny_model, cfg)
    with pytest.raises(TypeError, match="CaptureConfig"):
        step_activations(aligned, tiny_model, {"layers": (0,)})
    assert not (tmp_path / "s").exists()
    gen = (t for t in aligned[:2])  # a generator works: its first item is put back
    assert step_activations(gen, tiny_model, cfg).index.trace_id.nunique() == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poolings": "boundary"}, r"poolings='boundary': give a tuple, e.g. poolings=\('boundary',\)"),
        ({"layers": 2}, r"layers=2: give a tuple, e.g. layers=\(2,\)"),
        ({"hooks": "blocks.1.hook_resid_post"}, r"give a tuple, e.g. hooks=\('blocks.1.hook_resid_post',\)"),
        ({"layers": ("1",)}, "give layer indices as ints"),
        ({"batch_size": "8"}, "batch_size='8': give an int"),
        ({"token_features": {"top_k": 2}}, "give a TokenFeatureConfig"),
    ],
)
def test_config_type_errors_say_what_to_pass(kwargs, message):
    with pytest.raises(TypeError, match=message):
        CaptureConfig(**kwargs)


def test_config_accepts_lists_and_numpy_ints():
    import numpy as np

    cfg = CaptureConfig(layers=[np.int64(1), 2], poolings=["boundary"])
    assert cfg.layers == (1, 2) and cfg.poolings == ("boundary",)
    with pytest.raises(TypeError, match="hooks="):
        TokenFeatureConfig(hooks="blocks.0.hook_resid_post")
