"""Fixtures for steering tests: a small store of gold toy traces captured from the tiny model, a tiny SAE."""

from __future__ import annotations

import pytest
import torch

from workbench.labels import traces_from_samples
from workbench.toy import TaskConfig, generate_samples

PROMPTS = ["b48,i68,c71;n=i+c;y=c+n;?y\n", "q12,r5,s90;t=q-s;?t\n"]


@pytest.fixture(scope="module")
def store(tiny_model, tmp_path_factory):
    """Gold toy traces with injected waits and checks, captured at every layer's resid_post (boundary, mean)."""
    from workbench.capture import CaptureConfig, capture
    from workbench.store import open_store

    samples = generate_samples(TaskConfig(p_error=0.3, p_check=0.2), 40, seed=1)
    traces = traces_from_samples(samples, tokenizer=tiny_model.tokenizer, n_ctx=tiny_model.n_ctx)
    out = tmp_path_factory.mktemp("steer") / "store"
    capture(traces, tiny_model, out, CaptureConfig(poolings=("boundary", "mean"), progress=False))
    return open_store(out)


@pytest.fixture(scope="module")
def sae_dir(tiny_model, tmp_path_factory):
    """A random sae-lens StandardSAE on the tiny model's layer-1 residual stream, saved in sae-lens format."""
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=tiny_model.d_model, d_sae=64))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("sae") / "sae"
    sae.save_model(str(path))
    return path
