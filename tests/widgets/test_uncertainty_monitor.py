"""UncertaintyMonitor: each step's head score arrives while generating, and equals the offline live scorer's."""

from __future__ import annotations

import threading

import pytest
import torch

from workbench.heads import HeadConfig, UncertaintyHead
from workbench.heads.live import generate_scored
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig
from workbench.viz import widgets_monitor as wm
from workbench.viz.widgets import UncertaintyMonitor


@pytest.fixture(scope="module")
def head(embedded):
    torch.manual_seed(0)  # an untrained head: the monitor only has to show what the head says
    return UncertaintyHead(HeadConfig(hooks=("blocks.3.hook_resid_post",), width=32), embedded.d_model).eval()


def test_steps_are_reported_as_they_are_scored(embedded, head):
    prompt = heldout_problems(TaskConfig(), 1)[0].prompt
    cfg = GenerationConfig(temperature=1.0, max_new_tokens=120, seed=5)
    seen = []

    def on_step(rec):
        seen.append((rec["step_index"], rec["scored_after_tokens"], threading.current_thread().name))

    records = wm.live_generate(embedded, head, prompt, on_step, config=cfg)
    offline = generate_scored(embedded, head, [prompt], cfg)
    assert [s[0] for s in seen] == list(range(len(records))) and len(records) >= 3
    assert records["head_score"].tolist() == pytest.approx(offline.steps["head_score"].tolist(), abs=1e-5)
    assert records["text"].tolist() == offline.steps["text"].tolist()
    assert [s[1] for s in seen] == sorted(s[1] for s in seen)  # in the order they were written


def test_monitor_fills_in_from_a_worker_thread(embedded, head):
    problems = heldout_problems(TaskConfig(), 2)
    mon = UncertaintyMonitor(embedded, head, problems, max_new_tokens=120)
    job = mon.start()
    job.join(300)
    assert job.status == "done", mon.status.value
    assert mon.steps.value.count("class='wb-live-step'") == len(mon.records) >= 3
    assert mon.progress.message.value.startswith(f"{len(mon.records)} steps scored; done")
    job = mon.start()
    job.cancel()
    job.join(300)
    assert job.status in ("cancelled", "done") and not mon.button.disabled
    with pytest.raises(ValueError, match="prompts is empty"):
        UncertaintyMonitor(embedded, head, [])
