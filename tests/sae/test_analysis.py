"""Feature analysis: hand-made activations against plain references, and discovery on planted structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import roc_auc_score

from tests.sae.conftest import HOOKS
from workbench.sae import (
    FeatureActivations,
    SAETrainConfig,
    activation_frequency,
    behaviour_association,
    behaviour_silhouette,
    behaviour_vectors,
    decoder_map,
    encode_store,
    evaluate_sae,
    frequency_histogram,
    latent_auroc,
    layer_of,
    silhouette_by_layer,
    top_activating,
    train_sae,
)
from workbench.store import open_store

# Five steps, four latents. Latent 0 fires on the two "wait" steps, latent 3 never fires.
CODES = np.array(
    [[2.0, 0.0, 0.5, 0.0], [1.0, 0.3, 0.0, 0.0], [0.0, 1.0, 0.2, 0.0], [0.0, 0.9, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
)
STEPS = pd.DataFrame(
    {"trace_id": ["a", "a", "b", "b", "c"], "step_index": [0, 1, 0, 1, 0], "text": list("vwxyz"),
     "label_kind": ["wait", "wait", "compute", "compute", "check"], "label_correct": [True, False, True, None, True]}
)  # fmt: skip


@pytest.fixture
def acts():
    return FeatureActivations(STEPS, sp.csr_matrix(CODES))


def test_latent_auroc_matches_sklearn_and_skips_missing_labels(acts):
    table = latent_auroc(acts, "label_kind", "wait")
    assert table["latent"].tolist()[0] == 0 and table.loc[0, "auroc"] == 1.0
    y = (STEPS.label_kind == "wait").to_numpy()
    for j in range(4):
        want = roc_auc_score(y, CODES[:, j])
        assert np.isclose(table.set_index("latent").loc[j, "auroc"], want)
    row = table.set_index("latent").loc[0]
    assert row.frequency_positive == 1.0 and row.frequency_negative == 0.0 and row.n_positive == 2
    boolean = latent_auroc(acts, "label_correct").set_index("latent")  # the None row is left out
    assert boolean.loc[0, "n_positive"] == 3 and boolean.loc[0, "n_negative"] == 1
    keep = STEPS.label_correct.notna().to_numpy()
    assert np.isclose(boolean.loc[1, "auroc"], roc_auc_score(STEPS.label_correct[keep].astype(bool), CODES[keep, 1]))
    with pytest.raises(KeyError, match="label='nope'"):
        latent_auroc(acts, "nope", "x")


def test_top_activating_orders_steps_and_carries_text_and_labels(acts):
    top = top_activating(acts, latents=[0, 1, 3], k=2)
    first = top[top.latent == 0]
    assert first["text"].tolist() == ["v", "w"] and first["activation"].tolist() == [2.0, 1.0]
    assert top[top.latent == 1]["step_index"].tolist() == [0, 1] and "label_kind" in top.columns
    assert (top.latent == 3).sum() == 0  # a latent that never fires has no top steps


def test_behaviour_association_and_vectors_follow_rise(acts):
    assoc = behaviour_association(acts, "label_kind")  # top latents: 0, 0, 1, 1; the last step has none
    assert set(map(tuple, assoc[["latent", "behaviour", "n_steps"]].values.tolist())) == {
        (0, "wait", 2),
        (1, "compute", 2),
    }
    assert assoc["specific"].all() and (assoc["share"] == 1.0).all()
    mixed = FeatureActivations(STEPS.assign(label_kind=["wait", "compute", "compute", "compute", "check"]), acts.codes)
    mixed_assoc = behaviour_association(mixed, "label_kind")
    assert not mixed_assoc[mixed_assoc.latent == 0]["specific"].any()  # latent 0 tops a wait and a compute step
    decoder = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, -1.0]])
    bv = behaviour_vectors(decoder, assoc)
    assert bv.table.behaviour.tolist() == ["compute", "wait"]
    torch.testing.assert_close(bv.vectors["wait"], torch.tensor([1.0, 0.0]))
    mixed_vectors = behaviour_vectors(decoder, mixed_assoc)
    assert mixed_vectors.table.behaviour.tolist() == ["compute"]  # shared latent 0 is dropped
    assert mixed_vectors.table.latents.tolist() == [[1]]


def test_geometry_silhouette_and_frequencies(acts):
    decoder = torch.tensor([[1.0, 0.1, 0.0], [1.0, -0.1, 0.0], [0.0, 1.0, 0.1], [0.0, 1.0, -0.1]])
    assoc = pd.DataFrame({"latent": [0, 1, 2, 3], "behaviour": ["a", "a", "b", "b"], "specific": True})
    from sklearn.metrics import silhouette_score

    want = silhouette_score(decoder.double().numpy(), ["a", "a", "b", "b"], metric="cosine")
    assert np.isclose(behaviour_silhouette(decoder, assoc), want) and want > 0.9
    assert np.isnan(behaviour_silhouette(decoder, assoc.assign(behaviour="a")))
    m = decoder_map(decoder, assoc, method="pca")
    assert list(m.columns) == ["latent", "x", "y", "method", "behaviour"] and m.behaviour.tolist() == list("aabb")
    freq = activation_frequency(acts)
    assert freq.frequency.tolist() == [0.4, 0.6, 0.4, 0.0] and freq.log10_frequency[3] == -np.inf
    hist = frequency_histogram(freq, bins=2)
    assert hist["count"].sum() == 4 and hist.iloc[-1].tolist() == [-np.inf, -np.inf, 1]
    assert layer_of("blocks.12.hook_resid_post") == 12 and layer_of("embed") is None


def test_a_trained_sae_finds_the_planted_wait_and_check_latents(store_path):
    store = open_store(store_path)
    split = store.split({"train": 0.7, "test": 0.3}, seed=0)
    cfg = SAETrainConfig(arch="topk", width=48, k=3, batch_size=32, samples=32 * 400, lr=1e-2, metrics_every=50)
    saes = {h: train_sae(store, h, cfg, rows=split["train"], progress=False) for h in HOOKS}
    acts = {h: encode_store(saes[h], store, rows=split["test"], batch_size=50) for h in HOOKS}
    assert acts[HOOKS[0]].codes.shape == (len(split["test"]), 48)
    for kind in ("wait", "check"):
        assert latent_auroc(acts[HOOKS[0]], "label_kind", kind)["auroc"].iloc[0] > 0.9
    ev = evaluate_sae(saes[HOOKS[0]], store, rows=split["test"])
    assert ev.loc[0, "l0"] == 3 and ev.loc[0, "fvu"] < 0.5 and ev.loc[0, "n_steps"] == len(split["test"])
    table = silhouette_by_layer(saes, acts, "label_kind")
    assert table.layer.tolist() == [0, 1] and list(table.columns)[:3] == ["hook", "layer", "silhouette"]
    full = encode_store(saes[HOOKS[0]], store, rows=split["test"], batch_size=10_000)
    assert (full.codes != acts[HOOKS[0]].codes).nnz == 0  # batching does not change encodings
