"""Hot-path capture equals a full run_with_cache on the bridge, pooled step by step (all poolings, many hooks)."""

from __future__ import annotations

import pytest

from tests.capture.helpers import assert_store_matches
from tests.conftest import attached_hooks
from workbench.capture import CAPTURED, POOLINGS, CaptureConfig, capture
from workbench.capture.plan import plan_batches
from workbench.capture.reference import naive_capture
from workbench.store import open_store

HOOKS = (
    "hook_embed",
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_attn_out",
    "blocks.1.hook_resid_mid",
    "blocks.1.hook_mlp_out",
    "blocks.1.hook_resid_post",
    "ln_final.hook_normalized",
)


def test_all_poolings_and_hooks_match_the_bridge_reference_across_padded_buckets(tiny_model, traces, tmp_path):
    cfg = CaptureConfig(hooks=HOOKS, poolings=POOLINGS, max_batch_tokens=480, progress=False)
    # the budget cuts the ten traces into several buckets of different widths, most rows padded
    batches = list(
        plan_batches(traces, tiny_model.tokenizer, max_len=256, window=4096, max_batch_tokens=480, batch_size=256)
    )
    widths = {max(len(p.ids) for p in b.traces) for b in batches}
    assert len(batches) >= 3 and len(widths) >= 3
    assert any(len({len(p.ids) for p in b.traces}) > 1 for b in batches), "no batch needed padding"

    result = capture(traces, tiny_model, tmp_path / "store", cfg)
    ref = naive_capture(tiny_model, traces, HOOKS, POOLINGS)  # one unpadded trace per run_with_cache
    store = open_store(tmp_path / "store")
    assert result.traces == 10 and result.rows == len(ref.steps) == len(store.index)
    assert (store.index.status == CAPTURED).all()
    assert_store_matches(store, ref, atol=1e-5)


def test_boundary_and_last_read_the_steps_own_tokens(tiny_model, traces, tmp_path):
    capture(
        traces[:3],
        tiny_model,
        tmp_path / "s",
        CaptureConfig(layers=(1,), poolings=("boundary", "last"), progress=False),
    )
    df = open_store(tmp_path / "s").index
    assert ((df.token_start <= df.last_token) & (df.last_token <= df.boundary_token)).all()
    assert (df.boundary_token < df.token_end).all()
    for t in traces[:3]:  # steps tile the completion, so their token spans are consecutive
        rows = df[df.trace_id == t.trace_id].sort_values("step_index")
        assert (rows.token_start.to_numpy()[1:] == rows.token_end.to_numpy()[:-1]).all()


def test_forward_stops_after_the_last_requested_layer_and_hooks_are_removed(tiny_model, traces, tmp_path):
    layers = tiny_model.layout.layers
    before = attached_hooks(tiny_model)
    calls = []
    handle = layers[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        capture(traces[:4], tiny_model, tmp_path / "s", CaptureConfig(layers=(0,), progress=False))
    finally:
        handle.remove()
    assert calls == [], "layer 1 ran although only layer 0 was requested"
    assert attached_hooks(tiny_model) == before, "capture left hooks attached"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_storage_dtype_is_applied(tiny_model, traces, tmp_path, dtype):
    capture(
        traces[:2],
        tiny_model,
        tmp_path / "s",
        CaptureConfig(layers=(1,), poolings=("mean",), dtype=dtype, progress=False),
    )
    store = open_store(tmp_path / "s")
    x = store.tensors("blocks.1.hook_resid_post", "mean")
    assert str(x.dtype) == f"torch.{dtype}" and store.manifest["dtype"] == dtype
    ref = naive_capture(tiny_model, traces[:2], ["blocks.1.hook_resid_post"], ["mean"])
    assert_store_matches(store, ref, atol=2e-2)
