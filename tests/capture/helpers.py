"""Helpers for capture tests: toy traces, and comparisons of stores with the reference capture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from workbench.capture.reference import ReferenceResult
from workbench.labels import traces_from_samples
from workbench.store import StepStore
from workbench.toy import TaskConfig, generate_samples


def toy_traces(n: int, seed: int = 1):
    """Segmented (not yet aligned) toy traces; capture aligns them to the model it runs."""
    return traces_from_samples(generate_samples(TaskConfig(), n, seed=seed))


def assert_store_matches(store: StepStore, ref: ReferenceResult, *, atol: float = 1e-5) -> None:
    """Exactly the reference's steps have vectors, and they equal the reference's."""
    df = store.index
    captured = df[df.row >= 0]
    assert sorted(zip(captured.trace_id, captured.step_index, strict=True)) == sorted(ref.steps)
    where = dict(zip(zip(df.trace_id, df.step_index, strict=True), df.row, strict=True))
    rows = np.array([where[k] for k in ref.steps])
    assert ref.vectors and len(rows) > 0, "the reference is empty"
    for key, want in ref.vectors.items():
        hook, pooling = key.split("/")
        got = store.tensors(hook, pooling, rows)
        assert got.shape == want.shape
        torch.testing.assert_close(got.float(), want.float(), atol=atol, rtol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


def assert_stores_equal(a: StepStore, b: StepStore, *, canonical: bool = False) -> None:
    """Same index and same tensors; ``canonical`` compares in (trace_id, step_index) order, ignoring shards."""
    ia, ib = a.index, b.index
    if canonical:
        ia = ia.sort_values(["trace_id", "step_index"], ignore_index=True)
        ib = ib.sort_values(["trace_id", "step_index"], ignore_index=True)
        drop = ["row", "token_row", "shard"]
        pd.testing.assert_frame_equal(ia.drop(columns=drop), ib.drop(columns=drop))
    else:
        pd.testing.assert_frame_equal(ia, ib)
    assert a.keys == b.keys
    sel_a, sel_b = ia[ia.row >= 0], ib[ib.row >= 0]
    assert len(sel_a) > 0
    for key in a.keys:
        if key.startswith("tokens/"):
            continue
        hook, pooling = key.split("/")
        torch.testing.assert_close(a.tensors(hook, pooling, sel_a), b.tensors(hook, pooling, sel_b), atol=1e-6, rtol=0)


#: The configuration the crash/resume tests run in the test process and in the killed subprocess.
RESUME_CFG = dict(layers=(0, 1), poolings=("boundary", "mean"), max_batch_tokens=400, shard_mb=0.004, progress=False)
