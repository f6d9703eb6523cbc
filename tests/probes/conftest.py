"""A small step store of toy traces (rendered solutions with injected errors) captured on the tiny model."""

from __future__ import annotations

import pytest

from workbench.capture import CaptureConfig, TokenFeatureConfig, capture
from workbench.labels import traces_from_samples
from workbench.store import open_store
from workbench.toy import TaskConfig, generate_samples


@pytest.fixture(scope="session")
def toy_store(tiny_model, tmp_path_factory):
    """30 traces (≈150 steps): boundary/mean vectors of both layers, logit stats and token features."""
    samples = generate_samples(TaskConfig(p_error=0.3), 30, seed=3)
    traces = traces_from_samples(samples, tokenizer=tiny_model.tokenizer, n_ctx=tiny_model.n_ctx)
    tf = TokenFeatureConfig(hooks=("blocks.1.hook_resid_post",), top_k=2)
    cfg = CaptureConfig(poolings=("boundary", "mean"), logit_stats=True, token_features=tf, progress=False)
    path = tmp_path_factory.mktemp("probes") / "store"
    capture(traces, tiny_model, path, cfg)
    return open_store(path)
