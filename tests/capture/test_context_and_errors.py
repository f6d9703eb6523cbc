"""Traces longer than the context, steps without tokens, bad hook names and bad configs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.capture.helpers import assert_store_matches
from workbench.capture import BEYOND_CONTEXT, CAPTURED, CaptureConfig, capture
from workbench.capture.reference import naive_capture
from workbench.models import UnknownHookError
from workbench.store import open_store
from workbench.traces import Trace, segment_trace


def test_steps_beyond_the_context_are_indexed_without_vectors(tiny_model, traces, tmp_path):
    max_len = 120  # the toy traces are 100–180 tokens: some steps of most traces fall beyond
    cfg = CaptureConfig(layers=(0, 1), max_len=max_len, progress=False)
    capture(traces, tiny_model, tmp_path / "s", cfg)
    store = open_store(tmp_path / "s")
    df = store.index
    beyond = df[df.status == BEYOND_CONTEXT]
    assert len(beyond) > 0 and (df.status == CAPTURED).sum() > 0
    assert len(df) == sum(len(t.steps) for t in traces), "a step was dropped from the index"
    assert (beyond.row == -1).all() and beyond.beyond_context.all() and (beyond.token_end > max_len).all()
    assert (df[df.status == CAPTURED].token_end <= max_len).all()
    assert df[df.trace_n_tokens > max_len].trace_truncated.all()
    # the captured steps equal the reference on the truncated sequence
    assert_store_matches(store, naive_capture(tiny_model, traces, ["blocks.0.hook_resid_post"], max_len=max_len))
    with pytest.raises(ValueError, match="no vectors"):
        store.tensors("blocks.0.hook_resid_post", "mean", beyond)


def test_a_prompt_longer_than_the_context_leaves_every_step_beyond(tiny_model, tmp_path):
    long = segment_trace(Trace(trace_id="long", problem_id="p", prompt="x" * 300, completion="a=1\nb=2\n"), "newline")
    short = segment_trace(Trace(trace_id="short", problem_id="q", prompt="", completion="a=1\nb=2\n"), "newline")
    result = capture([long, short], tiny_model, tmp_path / "s", CaptureConfig(layers=(0,), progress=False))
    df = open_store(tmp_path / "s").index.set_index("trace_id")
    assert tiny_model.n_ctx == 256 and result.steps == 4 and result.rows == 2
    assert (df.loc["long"].status == BEYOND_CONTEXT).all() and (df.loc["short"].status == CAPTURED).all()


def test_unknown_hook_lists_valid_names_and_writes_nothing(tiny_model, traces, tmp_path):
    with pytest.raises(UnknownHookError) as err:
        capture(traces, tiny_model, tmp_path / "s", CaptureConfig(hooks=("blocks.7.hook_resid_post",)))
    msg = str(err.value)
    assert "blocks.7.hook_resid_post" in msg and "hook_resid_post" in msg and "Valid names" in msg
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"poolings": ("median",)}, "poolings"),
        ({"hooks": ("hook_embed",), "layers": (0,)}, "either hooks or layers"),
        ({"max_batch_tokens": 0}, "max_batch_tokens"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CaptureConfig(**kwargs)


def test_layer_out_of_range(tiny_model, traces, tmp_path):
    with pytest.raises(ValueError, match="not a layer"):
        capture(traces, tiny_model, tmp_path / "s", CaptureConfig(layers=(5,)))


def test_duplicate_trace_ids_are_refused(tiny_model, traces, tmp_path):
    with pytest.raises(ValueError, match="occurs twice"):
        capture(
            [traces[0], traces[1], traces[0]], tiny_model, tmp_path / "s", CaptureConfig(layers=(0,), progress=False)
        )


def test_index_rows_follow_capture_order_and_rows_are_dense(tiny_model, traces, tmp_path):
    capture(
        traces,
        tiny_model,
        tmp_path / "s",
        CaptureConfig(layers=(0,), max_batch_tokens=400, shard_mb=0.01, progress=False),
    )
    store = open_store(tmp_path / "s")
    rows = store.index.row.to_numpy()
    assert len(store.shards) > 1
    assert np.array_equal(rows[rows >= 0], np.arange((rows >= 0).sum()))
