"""A capture killed with SIGKILL part-way and resumed gives the same store as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.capture.helpers import RESUME_CFG, assert_stores_equal, toy_traces
from workbench.capture import CaptureConfig, capture
from workbench.store import StoreMismatchError, open_store

ROOT = Path(__file__).resolve().parents[2]

# Runs the same capture as the test, and SIGKILLs itself at a chosen point of the shard writes.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from workbench.store import format as fmt, writer
    where, at, model_dir, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count = [0]
    def dying(original):
        def wrapper(*args, **kwargs):
            count[0] += 1
            if count[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapper
    if where == "before_commit":    # all files of the shard written, directory not yet renamed
        writer.StoreWriter._commit = dying(writer.StoreWriter._commit)
    else:                           # half-way through a shard's tensor files
        fmt.save_tensor = dying(fmt.save_tensor)
    from tests.capture.helpers import RESUME_CFG, toy_traces
    from workbench.capture import CaptureConfig, capture
    from workbench.models import load_model
    capture(toy_traces(10), load_model(model_dir, device="cpu"), out, CaptureConfig(**RESUME_CFG))
    sys.exit(3)  # the kill point was never reached
    """
)


def _killed_capture(where: str, at: int, model_dir: Path, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, where, str(at), str(model_dir), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "store"
    capture(toy_traces(10), tiny_model, out, CaptureConfig(**RESUME_CFG))
    store = open_store(out)
    assert len(store.shards) >= 4, "the test needs several shards to kill the capture between them"
    return store


@pytest.mark.slow
@pytest.mark.parametrize(("where", "at"), [("before_commit", 3), ("mid_shard", 2 * 4 + 2)])
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tiny_model, tiny_model_dir, uninterrupted, tmp_path, where, at
):
    out = tmp_path / "store"
    _killed_capture(where, at, tiny_model_dir, out)

    crashed = open_store(out)
    assert [s.name for s in crashed.shards] == [s.name for s in uninterrupted.shards[:2]]
    assert list((out / "shards").glob(".tmp-*")), "the kill should have left a half-written shard"
    df = crashed.index
    n_steps = {t.trace_id: len(t.steps) for t in toy_traces(10)}
    assert (df.groupby("trace_id").size() == df.trace_id.map(n_steps).groupby(df.trace_id).first()).all()

    result = capture(toy_traces(10), tiny_model, out, CaptureConfig(**RESUME_CFG))
    assert result.skipped == df.trace_id.nunique() and result.traces == 10 - result.skipped
    resumed = open_store(out)
    assert_stores_equal(resumed, uninterrupted)  # same rows, same order, same shards
    assert not list((out / "shards").glob(".tmp-*"))
    assert resumed.manifest["counts"] == uninterrupted.manifest["counts"]


def test_resuming_a_complete_store_adds_nothing(tiny_model, uninterrupted, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted.root, out)
    result = capture(toy_traces(10), tiny_model, out, CaptureConfig(**RESUME_CFG))
    assert result.traces == 0 and result.skipped == 10 and result.shards == 0
    assert_stores_equal(open_store(out), uninterrupted)


def test_appending_new_traces_keeps_old_rows(tiny_model, uninterrupted, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted.root, out)
    more = toy_traces(10) + toy_traces(3, seed=7)
    result = capture(more, tiny_model, out, CaptureConfig(**RESUME_CFG))
    assert result.traces == 3
    store = open_store(out)
    old = store.index[store.index.shard.isin([s.name for s in uninterrupted.shards])]
    assert len(old) == len(uninterrupted.index) and store.index.trace_id.nunique() == 13


def test_a_different_configuration_is_refused(tiny_model, uninterrupted, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted.root, out)
    with pytest.raises(StoreMismatchError, match="poolings"):
        capture(toy_traces(10), tiny_model, out, CaptureConfig(**{**RESUME_CFG, "poolings": ("max",)}))
