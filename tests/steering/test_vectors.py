"""Steering vectors: sources checked against plain reference computations, files, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.steering import (
    SteeringError,
    SteeringVector,
    behaviour_vector,
    diff_of_means,
    load_sae_weights,
    load_vector,
    probe_vector,
    random_like,
    sae_latent_vector,
    with_neighbour_kinds,
)

HOOK = "blocks.1.hook_resid_post"


def test_diff_of_means_matches_reference(store):
    v = diff_of_means(store, HOOK, "next_kind == 'wait'", "kind == 'compute' and next_kind == 'compute'")
    # reference: walk the index by hand
    idx = store.index.sort_values(["trace_id", "step_index"]).reset_index(drop=True)
    nxt = [
        idx.kind[i + 1] if i + 1 < len(idx) and idx.trace_id[i + 1] == idx.trace_id[i] else "none"
        for i in range(len(idx))
    ]
    x = store.tensors(HOOK, "boundary").double().numpy()
    pos = [r for r, n in zip(idx.row, nxt, strict=True) if n == "wait"]
    neg = [r for r, k, n in zip(idx.row, idx.kind, nxt, strict=True) if k == "compute" and n == "compute"]
    assert len(pos) >= 3 and len(neg) >= 10
    ref = x[pos].mean(0) - x[neg].mean(0)
    np.testing.assert_allclose(v.vector.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert v.provenance["n_positive"] == len(pos) and v.provenance["n_negative"] == len(neg)
    assert v.provenance["pooling"] == "boundary" and v.provenance["read_hook"] == HOOK and v.hook == HOOK


def test_diff_of_means_write_hook_rows_and_mask(store):
    train = store.split({"train": 0.5, "test": 0.5}, seed=0)["train"]
    mask = (with_neighbour_kinds(train).next_kind == "wait").to_numpy()
    v = diff_of_means(store, HOOK, mask, ~mask, rows=train, write_hook="blocks.0.hook_resid_post")
    assert v.hook == "blocks.0.hook_resid_post" and v.provenance["read_hook"] == HOOK
    assert v.provenance["n_positive"] + v.provenance["n_negative"] == (train.row >= 0).sum()


def test_bad_groups_name_the_field(store):
    with pytest.raises(SteeringError, match="positive"):
        diff_of_means(store, HOOK, "kind == 'nonexistent'", "kind == 'compute'")
    with pytest.raises(SteeringError, match="negative"):
        diff_of_means(store, HOOK, "kind == 'compute'", "no_such_column == 1")


def test_save_load_round_trip(tmp_path, store):
    v = diff_of_means(store, HOOK, "kind == 'wait'", "kind == 'compute'", name="waitmean")
    path = v.save(tmp_path / "vec")
    assert sorted(p.name for p in path.iterdir()) == ["cfg.json", "vector.safetensors"]
    w = load_vector(path)
    assert torch.equal(w.vector, v.vector) and w.hook == v.hook and w.name == "waitmean"
    assert w.provenance == json.loads(json.dumps(v.provenance)) and w.norm == "raw"
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_vector(tmp_path)


def test_norm_conventions():
    v = SteeringVector(vector=torch.tensor([3.0, 4.0]), hook=HOOK)
    assert v.scale == pytest.approx(5.0)
    u = v.rescaled("unit")
    assert u.scale == pytest.approx(1.0) and torch.allclose(u.direction, v.direction)
    assert u.provenance["raw_norm"] == pytest.approx(5.0)
    assert v.rescaled("resid", resid_norm=7.0).scale == pytest.approx(7.0)
    with pytest.raises(SteeringError, match="resid_norm"):
        v.rescaled("resid")
    r = random_like(v, seed=3)
    assert r.scale == pytest.approx(5.0) and r.hook == HOOK and r.provenance["source"] == "random"
    assert not torch.allclose(r.direction, v.direction)
    with pytest.raises(SteeringError, match="zeros"):
        SteeringVector(vector=torch.zeros(4), hook=HOOK)
    with pytest.raises(SteeringError, match="norm"):
        SteeringVector(vector=torch.ones(4), hook=HOOK, norm="l1")


def test_wrong_hook_or_width_is_a_clear_error(tiny_model):
    with pytest.raises(SteeringError, match="d_model is 32"):
        SteeringVector(vector=torch.ones(16), hook=HOOK).check_model(tiny_model)
    with pytest.raises(SteeringError, match="blocks.7.hook_resid_post.*Valid names"):
        SteeringVector(vector=torch.ones(32), hook="blocks.7.hook_resid_post").check_model(tiny_model)
    with pytest.raises(SteeringError, match="read-only"):
        SteeringVector(vector=torch.ones(32), hook="blocks.0.hook_resid_mid").check_model(tiny_model)


def test_sae_sources_match_sae_lens(sae_dir):
    from sae_lens import SAE

    ref = SAE.load_from_disk(str(sae_dir), device="cpu")
    w = load_sae_weights(sae_dir)
    v = sae_latent_vector(sae_dir, 5, hook=HOOK)
    assert torch.equal(v.vector, ref.W_dec[5].detach()) and v.provenance["latent"] == 5
    h = torch.randn(7, 32)
    torch.testing.assert_close(w.encode(h), ref.encode(h).detach(), rtol=1e-5, atol=1e-6)
    b = behaviour_vector(sae_dir, [1, 2, 9], behaviour="reflection", hook=HOOK)
    cols = ref.W_dec[[1, 2, 9]].detach()
    ref_b = (cols / cols.norm(dim=-1, keepdim=True)).mean(0)
    torch.testing.assert_close(b.vector, ref_b / ref_b.norm())
    assert b.norm == "unit" and b.provenance["latents"] == [1, 2, 9]
    with pytest.raises(SteeringError, match="latent=64"):
        sae_latent_vector(sae_dir, 64, hook=HOOK)
    with pytest.raises(SteeringError, match="hook"):
        sae_latent_vector(sae_dir, 1)  # this SAE records no hook


def test_topk_encode_matches_sae_lens(tmp_path):
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(1)
    sae = TopKSAE(TopKSAEConfig(d_in=16, d_sae=40, k=5, rescale_acts_by_decoder_norm=True))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.3)
    sae.save_model(str(tmp_path / "topk"))
    w = load_sae_weights(tmp_path / "topk")
    h = torch.randn(9, 16)
    torch.testing.assert_close(w.encode(h), sae.encode(h).detach(), rtol=1e-5, atol=1e-6)
    assert ((w.encode(h) > 0).sum(-1) <= 5).all()
    # the clamp's unit of a latent is what sae-lens's decoder adds for it
    one = torch.zeros(40)
    one[3] = 1.0
    torch.testing.assert_close(w.decoder_row(3), (sae.decode(one[None]) - sae.b_dec).detach()[0])


def test_probe_vector_from_sklearn(store):
    from sklearn.linear_model import LogisticRegression

    idx = store.index[store.index.row >= 0]
    x = store.tensors(HOOK, "boundary", idx).numpy()
    y = (idx.kind == "wait").to_numpy()
    clf = LogisticRegression(max_iter=200).fit(x, y)
    v = probe_vector(clf, hook=HOOK, probe_id="wait-probe")
    np.testing.assert_allclose(v.vector.numpy(), clf.coef_[0], rtol=1e-6)
    assert v.provenance["probe"] == "wait-probe"
