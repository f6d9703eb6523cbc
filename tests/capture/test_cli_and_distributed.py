"""``workbench capture`` maps to capture(); under torchrun (2 CPU processes, gloo) ranks write their own shards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capture.helpers import assert_stores_equal, toy_traces
from workbench.capture import CaptureConfig, capture
from workbench.cli import build_parser, main
from workbench.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def test_cli_capture_equals_the_function(tiny_model, tiny_model_dir, tmp_path, capsys):
    flags = ["--layers", "1", "--poolings", "boundary", "max", "--max-batch-tokens", "500", "--no-progress"]
    code = main(
        [
            "capture",
            "--toy",
            "4",
            "--model",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "cli"),
            *flags,
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["traces"] == 4 and printed["world_size"] == 1
    cfg = CaptureConfig(layers=(1,), poolings=("boundary", "max"), max_batch_tokens=500, progress=False)
    capture(toy_traces(4, seed=0), tiny_model, tmp_path / "fn", cfg)
    assert_stores_equal(open_store(tmp_path / "cli"), open_store(tmp_path / "fn"))


def test_cli_reads_a_traces_file(tiny_model_dir, tmp_path, capsys):
    from workbench.traces import save_traces

    traces = toy_traces(3, seed=5)
    save_traces(traces, tmp_path / "traces.jsonl")
    args = ["--traces", str(tmp_path / "traces.jsonl"), "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main(["capture", *args, "--out", str(tmp_path / "s"), "--layers", "0", "--no-progress"]) == 0
    df = open_store(tmp_path / "s").index
    assert sorted(df.trace_id.unique()) == sorted(t.trace_id for t in traces)
    assert len(df) == sum(len(t.steps) for t in traces)


def test_cli_lists_capture_and_requires_an_input(capsys):
    assert "capture" in build_parser().format_help()
    with pytest.raises(SystemExit):
        main(["capture", "--out", "x"])
    assert "--traces" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_torchrun_two_gloo_ranks_write_one_store(tiny_model, tiny_model_dir, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "workbench.cli", "capture", "--toy", "12"]
    cmd += ["--model", str(tiny_model_dir), "--device", "cpu", "--out", str(out), "--max-batch-tokens", "400"]
    cmd += ["--shard-mb", "0.05", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ddp = open_store(out)
    assert {s.name[:4] for s in ddp.shards} == {"r000", "r001"}, "both ranks should have written shards"
    assert ddp.manifest["counts"]["traces"] == 12 and ddp.manifest["world_size"] == 2
    capture(
        toy_traces(12, seed=0), tiny_model, tmp_path / "single", CaptureConfig(max_batch_tokens=400, progress=False)
    )
    assert_stores_equal(ddp, open_store(tmp_path / "single"), canonical=True)
