"""ProbeLab: training runs off the kernel thread, reports progress, can be cancelled, and shows its charts."""

from __future__ import annotations

import threading

import pytest

from workbench.viz import widgets_probes as wp
from workbench.viz.widgets import ProbeLab
from workbench.viz.widgets_jobs import Cancelled, JobContext


def test_sweep_scores_every_layer_on_held_out_problems(toy_store):
    res = wp.run_probe_sweep(toy_store, "label_correct", toy_store.hooks)
    assert sorted(res.table["layer"].unique()) == [0, 1]
    assert set(res.table["split"]) == {"val", "test"}
    assert res.table["roc_auc"].between(0, 1).all()
    train_problems = set(toy_store.split({"train": 0.7, "val": 0.15, "test": 0.15})["train"]["problem_id"])
    scored = toy_store.index.merge(res.scores, on=["trace_id", "step_index"])
    assert not set(scored["problem_id"]) & train_problems  # only held-out problems are scored
    bins = wp.reliability_table(res.scores, res.best_layer())
    assert bins["n"].sum() == ((res.scores.layer == res.best_layer()) & (res.scores.split == "test")).sum()


def test_sweep_rejects_bad_choices(toy_store):
    with pytest.raises(ValueError, match="not in the store"):
        wp.run_probe_sweep(toy_store, "label_correct", ["blocks.9.hook_resid_post"])
    with pytest.raises(ValueError, match="kind="):
        wp.run_probe_sweep(toy_store, "label_correct", toy_store.hooks, kind="forest")


def test_cancel_stops_between_layers(toy_store):
    ctx = JobContext(None)
    ctx._cancel.set()
    with pytest.raises(Cancelled):
        wp.run_probe_sweep(toy_store, "label_correct", toy_store.hooks, ctx=ctx)


def test_panel_trains_in_a_thread_and_draws(toy_store, monkeypatch):
    seen = []
    real = wp.run_probe_sweep

    def spy(*args, **kwargs):
        seen.append((threading.current_thread() is threading.main_thread(), args[1], tuple(args[2]), kwargs["kind"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(wp, "run_probe_sweep", spy)
    lab = ProbeLab(toy_store)
    lab.hooks.value = ("blocks.1.hook_resid_post",)
    job = lab.start()
    assert lab.train.disabled and not lab.progress.cancel.disabled
    job.join(120)
    assert job.status == "done", lab.status.value
    assert seen == [(False, "label_correct", ("blocks.1.hook_resid_post",), "linear")]
    assert lab.result.table["layer"].unique().tolist() == [1]
    assert lab.progress.bar.value == 1.0 and not lab.train.disabled and lab.progress.cancel.disabled
    for out in (lab.curve, lab.reliability):  # one chart each, as a widget view (Altair's JupyterChart)
        assert len(out.outputs) == 1 and "application/vnd.jupyter.widget-view+json" in out.outputs[0]["data"]


def test_panel_shows_errors_and_cancellation(toy_store):
    lab = ProbeLab(toy_store)
    lab.hooks.value = ()
    lab.start().join(30)
    assert "wb-error" in lab.status.value and "hooks is empty" in lab.status.value and not lab.train.disabled
    lab.hooks.value = tuple(toy_store.hooks)
    job = lab.start()
    lab.cancel()
    job.join(120)
    assert job.status in ("cancelled", "done")  # a very fast first layer may finish before the flag is read
    if job.status == "cancelled":
        assert lab.progress.message.value == "cancelled" and lab.result is None
