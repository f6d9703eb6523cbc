"""SteeringLab: the pair view compares like with like, the sweep has its control, both run off the kernel thread."""

from __future__ import annotations

import pytest

from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.viz import widgets_steering as ws
from workbench.viz.widgets import SteeringLab


@pytest.fixture(scope="module")
def vector(toy_store):
    from workbench.steering import diff_of_means

    return diff_of_means(toy_store, "blocks.1.hook_resid_post", "kind == 'wait'", "kind == 'compute'", name="wait")


@pytest.fixture(scope="module")
def problems():
    return heldout_problems(TaskConfig(), 3)


def test_pair_at_alpha_zero_is_the_same_sample(tiny_model, vector, problems):
    # the tiny random model writes no newlines, so edit every generated token instead of step boundaries
    pair = ws.steered_pair(tiny_model, vector, problems[0], 0.0, seed=3, positions="all", max_new_tokens=40)
    assert pair.unsteered.completion == pair.steered.completion  # same seed, no edit: identical
    strong = ws.steered_pair(tiny_model, vector, problems[0], 50.0, seed=3, positions="all", max_new_tokens=40)
    assert strong.unsteered.completion == pair.unsteered.completion
    assert strong.steered.completion != strong.unsteered.completion  # a huge edit changes the sample
    html = ws.pair_html(strong)
    assert html.count("class='wb-steer-side'") == 2 and "α = 50" in html
    counts = ws.behaviour_counts(strong.unsteered)
    assert sum(counts[k] for k in ws.KINDS) == len(strong.unsteered.steps)


def test_lab_generates_and_sweeps_in_the_background(tiny_model, vector, problems, monkeypatch):
    import threading

    threads = []
    real = ws.dose_sweep

    def spy(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(ws, "dose_sweep", spy)
    lab = SteeringLab(tiny_model, {"wait": vector}, problems, alphas=(0.0, 4.0))
    lab.alpha.value, lab.positions.value = 4.0, "all"
    job = lab.generate()
    job.join(300)
    assert job.status == "done", lab.status.value
    assert lab.pair.alpha == 4.0 and "wb-steer-pair" in lab.side_by_side.value
    job = lab.sweep()
    assert lab.sweep_button.disabled
    job.join(600)
    assert job.status == "done", lab.status.value
    assert threads == [False]
    assert set(lab.rows["direction"]) == {"steered", "random"}  # the random control ran at every alpha
    assert sorted(lab.rows["alpha"].unique()) == [0.0, 4.0]
    assert set(lab.summary["vector"]) == {"steered", "random"} and len(lab.chart.outputs) == 1
    assert not lab.sweep_button.disabled


def test_lab_refuses_empty_inputs(tiny_model, vector):
    with pytest.raises(ValueError, match="at least one vector and one problem"):
        SteeringLab(tiny_model, {"wait": vector}, [])
