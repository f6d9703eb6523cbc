"""FeatureBrowser: ranking, the chosen latent's top steps, histogram, association and decoder-map position."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.viz.widgets import FeatureBrowser


@pytest.fixture(scope="module")
def tiny_sae(toy_store):
    from workbench.sae import SAETrainConfig, train_sae

    cfg = SAETrainConfig(arch="topk", width=48, k=4, batch_size=64, samples=4_000, lr=3e-3, metrics_every=20,
                         checkpoint_every=10**9)  # fmt: skip
    return train_sae(toy_store, "blocks.1.hook_resid_post", cfg, progress=False)


def test_latents_are_ranked_by_separation(toy_store, tiny_sae):
    from workbench.sae import encode_store
    from workbench.viz import widgets_features as wf

    acts = encode_store(tiny_sae, toy_store)
    ranked = wf.rank_latents(acts, "label_correct")
    live = ranked[ranked.live]
    assert (np.diff(live["separation"].to_numpy()) <= 1e-12).all()  # best first
    values = wf.latent_values(acts, int(ranked.latent[0]))
    assert len(values) == len(acts.steps) and (values >= 0).all()
    with pytest.raises(ValueError, match="latents 0..47"):
        wf.latent_values(acts, 48)


def test_browser_follows_the_picked_latent(toy_store, tiny_sae, monkeypatch):
    from workbench.viz import widgets

    drawn = []
    real = widgets._show_chart
    monkeypatch.setattr(widgets, "_show_chart", lambda out, chart: (drawn.append(chart), real(out, chart)))
    fb = FeatureBrowser(tiny_sae, toy_store, label="label_correct", k=3)
    assert len(drawn) == 1  # one decoder map at start (a chart replaced before it renders fails in the page)
    assert fb.status.value == ""
    first = fb.latent.value
    assert f"latent {first}" in fb.top_steps.value
    other = fb.latent.options[1][1]
    fb.latent.value = other
    assert f"top steps of latent {other}" in fb.top_steps.value
    fires = int((fb._wf.latent_values(fb.acts, other) > 0).sum())
    assert f"fires on {fires} of {len(fb.acts.steps)} steps" in fb.histogram.value
    assert len(fb.map.outputs) == 1 and len(drawn) == 2  # the decoder map, redrawn once with this latent marked
    fb.label.value = "label_kind"  # a multiclass label: pick the positive class; one redraw
    assert len(drawn) == 3
    assert "wait" in [v for _, v in fb.positive.options] or len(fb.positive.options) > 1
    assert fb.status.value == "" and fb.latent.options


def test_bad_label_is_refused(toy_store, tiny_sae):
    with pytest.raises(ValueError, match="label='nope'"):
        FeatureBrowser(tiny_sae, toy_store, label="nope")


def test_step_top_latents_are_each_steps_largest(toy_store, tiny_sae):
    from workbench.sae import encode_store
    from workbench.viz import widgets_features as wf

    acts = encode_store(tiny_sae, toy_store)
    table = wf.step_top_latents(acts, k=2)
    dense = acts.codes.toarray()
    for i in (0, 7, len(acts.steps) - 1):
        key = acts.steps.iloc[i]
        mine = table[(table.trace_id == key.trace_id) & (table.step_index == key.step_index)]
        expected = np.argsort(-dense[i], kind="stable")[:2]
        assert mine["latent"].tolist() == [int(j) for j in expected if dense[i, j] > 0]
        assert mine["activation"].tolist() == pytest.approx([dense[i, j] for j in expected if dense[i, j] > 0])
