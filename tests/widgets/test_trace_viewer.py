"""TraceViewer: its data functions, and control changes driving the right calls and the right HTML."""

from __future__ import annotations

import re
import threading

import pandas as pd
import pytest

from workbench.viz import widgets_traces as wt
from workbench.viz.scales import BOOL_COLORS
from workbench.viz.widgets import TraceViewer


def test_step_frame_joins_labels_and_scores(toy_traces, step_scores):
    frame = wt.step_frame(toy_traces, step_scores)
    assert len(frame) == sum(len(t.steps) for t in toy_traces)
    t = toy_traces[5]
    row = frame[(frame.trace_id == t.trace_id) & (frame.step_index == 3)].iloc[0]
    assert row["probe"] == pytest.approx(0.3)
    assert row["correct"] == t.steps[3].labels["correct"] and row["answer_correct"] == t.answer_correct
    assert wt.score_columns(frame) == ["probe"]
    assert {"kind", "correct", "viable"} <= set(wt.label_columns(frame))


def test_step_frame_rejects_bad_score_tables(toy_traces, step_scores):
    with pytest.raises(ValueError, match="missing key columns"):
        wt.step_frame(toy_traces, step_scores.drop(columns="step_index"))
    with pytest.raises(ValueError, match="clash with step labels"):
        wt.step_frame(toy_traces, step_scores.rename(columns={"probe": "correct"}))


def test_filters_select_the_right_traces(toy_traces, step_scores):
    frame = wt.step_frame(toy_traces, step_scores)
    wrong = wt.filter_traces(frame, wt.TraceFilter(answer="wrong"))
    assert wrong == [t.trace_id for t in toy_traces if t.answer_correct is False]
    waits = wt.filter_traces(frame, wt.TraceFilter(label="kind", label_value="wait"))
    assert waits == [t.trace_id for t in toy_traces if any(s.kind == "wait" for s in t.steps)]
    long = wt.filter_traces(frame, wt.TraceFilter(score="probe", min_score=0.65))
    assert long == [t.trace_id for t in toy_traces if len(t.steps) >= 8]
    both = wt.filter_traces(frame, wt.TraceFilter(answer="right", label="kind", label_value="wait"))
    assert both == [i for i in waits if i not in wrong]
    with pytest.raises(ValueError, match="TraceFilter.answer"):
        wt.TraceFilter(answer="maybe")


def test_colours_follow_the_value(toy_traces):
    assert wt.step_colours(pd.Series([True, False, None])) == [BOOL_COLORS[True], BOOL_COLORS[False], "#DDDDDD"]
    ramp = wt.step_colours(pd.Series([0.0, 0.5, 1.0]))
    assert len(set(ramp)) == 3  # a sequential score: every value its own shade


def test_viewer_filter_and_step_selection_update_the_view(toy_traces, step_scores):
    viewer = TraceViewer(toy_traces, scores=step_scores)
    assert [v for _, v in viewer.trace_select.options] == [t.trace_id for t in toy_traces]
    viewer.answer.value = "wrong"
    wrong = [t for t in toy_traces if t.answer_correct is False]
    assert [v for _, v in viewer.trace_select.options] == [t.trace_id for t in wrong]
    viewer.trace_select.value = wrong[1].trace_id
    assert viewer.step_select.value == 0 and len(viewer.step_select.options) == len(wrong[1].steps)
    viewer.step_select.value = 3
    assert "data-step='3'" in viewer.detail.value and wrong[1].steps[3].text in viewer.detail.value
    outlined = re.findall(r"data-step='(\d+)' style='[^']*outline:3px", viewer.trace_view.value)
    assert outlined == ["3"]
    assert "0.300" in viewer.detail.value  # the step's probe score
    assert viewer.status.value == ""


def test_viewer_label_filter_and_colouring(toy_traces, step_scores):
    viewer = TraceViewer(toy_traces, scores=step_scores, colour_by="correct")
    viewer.label.value = "kind"
    assert "wait" in viewer.label_value.options
    viewer.label_value.value = "wait"
    assert all(any(s.kind == "wait" for s in viewer.traces[v].steps) for _, v in viewer.trace_select.options)
    before = viewer.trace_view.value
    viewer.colour_by.value = "probe"
    assert viewer.trace_view.value != before
    viewer.score.value, viewer.min_score.value = "probe", 5.0  # no trace has 51 steps
    assert viewer.trace_select.options == () and "no trace matches" in viewer.trace_view.value


def test_viewer_shows_latents_and_dependencies(toy_traces):
    t = toy_traces[0]
    latents = pd.DataFrame(
        [{"trace_id": t.trace_id, "step_index": 1, "latent": k, "activation": float(k)} for k in range(8)]
    )
    deps = pd.DataFrame(
        [
            {"trace_id": t.trace_id, "source": 0, "target": 1, "weight": 0.9},
            {"trace_id": t.trace_id, "source": 1, "target": 2, "weight": 0.4},
        ]
    )
    viewer = TraceViewer(toy_traces, latents=latents, dependencies=deps, top_k=3)
    viewer.step_select.value = 1
    shown = re.findall(r"<td[^>]*>(\d+)</td><td[^>]*>(\d+\.\d+)</td>", viewer.detail.value)
    assert [k for k, _ in shown] == ["7", "6", "5"]  # the top 3 by activation, in order
    depends = viewer.detail.value.split("depends on")[1].split("used by")
    assert t.steps[0].text in depends[0] and t.steps[2].text in depends[1]


def test_latents_callable_runs_off_the_kernel_thread(toy_traces):
    calls, threads = [], []

    def top_latents(trace, step):
        calls.append((trace.trace_id, step.index))
        threads.append(threading.current_thread())
        return pd.DataFrame({"latent": [42], "activation": [1.5]})

    viewer = TraceViewer(toy_traces, latents=top_latents)
    viewer._job.join(10)
    viewer.step_select.value = 2
    viewer._job.join(10)
    assert calls[-1] == (toy_traces[0].trace_id, 2)
    assert all(t is not threading.main_thread() for t in threads)
    assert "42" in viewer.detail.value and "1.500" in viewer.detail.value and "computing" not in viewer.detail.value


def test_errors_show_in_the_panel(toy_traces):
    def broken(trace, step):
        raise RuntimeError("no SAE loaded")

    viewer = TraceViewer(toy_traces, latents=broken)
    viewer._job.join(10)
    assert "wb-error" in viewer.status.value and "no SAE loaded" in viewer.status.value
    with pytest.raises(ValueError, match="traces is empty"):
        TraceViewer([])


def test_attribution_tables_become_dependency_edges(toy_traces):
    t = toy_traces[0]
    long = pd.DataFrame(
        {"trace_id": t.trace_id, "q": [1, 2, 2], "k": [0, 0, 1], "kl": [0.5, 0.1, 2.0], "kl_read": float("nan")}
    )
    edges = wt.dependency_edges(long)  # kl_read is empty here, so kl is the weight
    assert edges.to_dict("list") == {
        "trace_id": [t.trace_id] * 3,
        "source": [0, 0, 1],
        "target": [1, 2, 2],
        "weight": [0.5, 0.1, 2.0],
    }
    viewer = TraceViewer(toy_traces, dependencies=long)
    viewer.step_select.value = 2
    earlier = viewer.detail.value.split("depends on")[1].split("used by")[0]
    assert earlier.index(t.steps[1].text) < earlier.index(t.steps[0].text)  # strongest first
    viewer.trace_select.value = toy_traces[1].trace_id
    assert "not computed for this trace" in viewer.detail.value
    with pytest.raises(ValueError, match="source/target or q/k"):
        wt.dependency_edges(pd.DataFrame({"trace_id": ["x"], "a": [1]}))
