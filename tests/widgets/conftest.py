"""Fixtures for the widget tests: a few checker-labelled toy traces (no model needed) and score tables."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.labels import traces_from_samples
from workbench.toy import TaskConfig, generate_samples


@pytest.fixture(scope="session")
def toy_traces():
    """Twelve labelled traces with injected errors, some with wrong final answers."""
    traces = traces_from_samples(generate_samples(TaskConfig(p_error=0.35), 12, seed=1))
    assert any(not t.answer_correct for t in traces) and any(t.answer_correct for t in traces)
    return traces


@pytest.fixture(scope="session")
def step_scores(toy_traces):
    """A per-step score that is exactly the step's position divided by 10 (easy to check)."""
    rows = [{"trace_id": t.trace_id, "step_index": s.index, "probe": s.index / 10} for t in toy_traces for s in t.steps]
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory, tiny_model):
    """A store of 120 labelled toy traces captured from the tiny random model (both layers, boundary pooling)."""
    from workbench.capture import CaptureConfig, capture
    from workbench.store import open_store

    traces = traces_from_samples(generate_samples(TaskConfig(p_error=0.3), 120, seed=2))
    out = tmp_path_factory.mktemp("widgets") / "store"
    capture(traces, tiny_model, out, CaptureConfig(layers=(0, 1), poolings=("boundary",), progress=False))
    return open_store(out)
