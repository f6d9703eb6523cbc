"""The context-conditioned SSAE: context vectors, save/load, resume, and that sae-lens cannot load it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.sae.conftest import HOOKS
from workbench.sae import SSAEConfig, context_vectors, encode_store, load_sae, train_ssae
from workbench.store import open_store

HOOK = HOOKS[0]
SMALL = SSAEConfig(width=32, k=3, batch_size=32, samples=32 * 30, lr=3e-3, metrics_every=10, checkpoint_every=10)


@pytest.mark.parametrize("mode", ["previous", "mean"])
def test_context_vectors_match_a_per_trace_loop(store_path, mode):
    store = open_store(store_path)
    rows = store.index.sample(frac=0.5, random_state=0)  # any order, any subset
    got = context_vectors(store, HOOK, "boundary", rows, mode)
    for i, (trace, step) in enumerate(zip(rows.trace_id, rows.step_index, strict=True)):
        prior = store.index[(store.index.trace_id == trace) & (store.index.step_index < step)]
        prior = prior.sort_values("step_index")
        if prior.empty:
            want = torch.zeros(got.shape[1])
        else:
            vecs = store.tensors(HOOK, "boundary", prior).double()
            want = (vecs[-1] if mode == "previous" else vecs.mean(0)).float()
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sparsity", ["topk", "adaptive_l1"])
def test_ssae_saves_loads_and_encodes_identically_but_not_in_sae_lens(store_path, tmp_path, sparsity):
    import sae_lens

    cfg = replace(SMALL, sparsity=sparsity, l1_coefficient=0.3, adapt_every=5)
    trained = train_ssae(store_path, HOOK, cfg, out=tmp_path / "s", progress=False)
    loaded = load_sae(tmp_path / "s")
    assert loaded.config == cfg and loaded.manifest["kind"] == "ssae"
    a, b = encode_store(trained, store_path), encode_store(loaded, store_path)
    assert a.codes.nnz > 0 and (a.codes != b.codes).nnz == 0
    if sparsity == "topk":
        assert (a.codes.getnnz(axis=1) <= cfg.k).all()
    else:
        assert "l1_weight" in trained.history.columns and trained.history["l1_weight"].nunique() > 1
    with pytest.raises(Exception):  # noqa: B017 - sae-lens has no workbench_ssae architecture
        sae_lens.SAE.load_from_disk(str(tmp_path / "s"))


def test_ssae_context_reaches_the_decoder(store_path):
    trained = train_ssae(store_path, HOOK, SMALL, progress=False)
    store = open_store(store_path)
    rows = store.index[store.index.step_index > 0].head(20)
    x = store.tensors(HOOK, "boundary", rows)
    ctx = context_vectors(store, HOOK, "boundary", rows, "previous")
    code = trained.sae.encode(x, ctx)
    assert not torch.allclose(trained.sae.decode(code, ctx), trained.sae.decode(code, torch.zeros_like(ctx)))


@pytest.mark.parametrize("sparsity", ["topk", "adaptive_l1"])
def test_ssae_resume_equals_uninterrupted(store_path, tmp_path, sparsity):
    cfg = replace(SMALL, sparsity=sparsity, context="mean", adapt_every=4, dead_window=64)
    full = train_ssae(store_path, HOOK, cfg, out=tmp_path / "full", progress=False)
    part = train_ssae(store_path, HOOK, cfg, out=tmp_path / "part", progress=False, stop_after=13)
    assert not part.finished
    resumed = train_ssae(store_path, HOOK, cfg, out=tmp_path / "part", progress=False)
    want, got = (
        load_file(str(tmp_path / "full" / "sae_weights.safetensors")),
        load_file(str(tmp_path / "part" / "sae_weights.safetensors")),
    )
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    pd.testing.assert_frame_equal(resumed.history, full.history)


def test_ssae_refuses_a_plain_config_and_bad_context(store_path):
    from workbench.sae import SAETrainConfig

    with pytest.raises(TypeError, match="SSAEConfig"):
        train_ssae(store_path, HOOK, SAETrainConfig())
    with pytest.raises(ValueError, match="context='next'"):
        SSAEConfig(context="next")
    with pytest.raises(ValueError, match="b_dec_init='median'"):
        SAETrainConfig(b_dec_init="median")
    assert np.isclose(SSAEConfig(k=9).target_l1, 3.0)
