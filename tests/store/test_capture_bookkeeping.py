"""Nothing is dropped silently by capture: traces without steps are recorded and counted the same way in
the result, the manifest and on resume; steps holding ``<unk>`` text are flagged in the index and warned
about once; a capture killed in a manifest rewrite resumes without leftovers."""

from __future__ import annotations

import warnings

import pytest

from tests.capture.helpers import toy_traces
from tests.store.helpers import Killed, leftovers
from workbench.capture import CaptureConfig, capture
from workbench.store import format as fmt
from workbench.store import open_store
from workbench.traces import Trace, segment_trace

CFG = CaptureConfig(layers=(1,), poolings=("boundary", "mean"), progress=False, shard_mb=0.002)


def _empty_trace(trace_id: str) -> Trace:
    """What generation records when a model ends its completion at once: no text, so no steps."""
    return Trace(trace_id=trace_id, problem_id=trace_id, prompt="a12,b3;c=a+b;?c\n", completion="")


def test_traces_without_steps_are_recorded_and_counted_consistently(tiny_model, tmp_path):
    traces = toy_traces(3)
    traces = [traces[0], _empty_trace("empty/1"), *traces[1:], _empty_trace("empty/2")]
    out = tmp_path / "store"
    result = capture(traces, tiny_model, out, CFG)
    store = open_store(out)
    counts = store.manifest["counts"]
    assert result.traces == counts["traces"] == 5
    assert result.traces_without_steps == counts["traces_without_steps"] == 2
    assert sorted(store.traces_without_steps) == ["empty/1", "empty/2"]
    assert store.index.trace_id.nunique() == 3 and result.steps == counts["steps"] == len(store.index)
    again = capture(traces, tiny_model, out, CFG)  # resume: all five are already recorded
    assert (again.traces, again.skipped, again.traces_without_steps) == (0, 5, 0)
    assert open_store(out).manifest["counts"] == counts


def test_steps_with_unknown_characters_are_flagged_and_warned_about_once(tiny_model, tmp_path):
    text = "We add 😀 here.\nThen 中 again.\nAll known.\n"
    trace = segment_trace(Trace(trace_id="u", problem_id="u", prompt="Q\n", completion=text), "newline")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        capture([trace, *toy_traces(2)], tiny_model, tmp_path / "store", CFG)
    unk = [w for w in caught if "<unk>" in str(w.message)]
    assert len(unk) == 1 and "unk_tokens" in str(unk[0].message)
    df = open_store(tmp_path / "store").index
    assert df[df.trace_id == "u"].unk_tokens.tolist() == [1, 1, 0]
    assert (df[df.trace_id != "u"].unk_tokens == 0).all()


def test_a_capture_killed_in_a_manifest_rewrite_resumes_withoutleftovers(tiny_model, tmp_path, die_on_replace):
    traces = toy_traces(4)
    out = tmp_path / "store"
    die_on_replace(fmt.MANIFEST, skip=1)  # create() writes it once; die in the rewrite after the first shard
    with pytest.raises(Killed):
        capture(traces, tiny_model, out, CFG)
    assert any(name.startswith(".tmp-manifest") for name in leftovers(out)), leftovers(out)
    capture(traces, tiny_model, out, CFG)
    assert leftovers(out) == []
    capture(traces, tiny_model, tmp_path / "full", CFG)
    assert open_store(out).manifest["counts"] == open_store(tmp_path / "full").manifest["counts"]
