"""The README's quick start runs as written: its Python blocks as one script, then its shell lines in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def quick_start() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Quick start' section"
    return match.group(1)


def blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, re.S | re.M)


def test_quick_start_has_python_and_shell_blocks():
    section = quick_start()
    assert len(blocks(section, "python")) >= 3 and len(blocks(section, "bash")) == 1
    assert "continues" in section  # the README says the blocks are one script
    assert "shared/" not in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_quick_start_runs_as_one_script_then_its_cli_lines(tmp_path):
    section = quick_start()
    script = "\n".join(blocks(section, "python"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "final answers right" in out and "wait" in out and "correct=False" in out
    assert "hook blocks.3.hook_mlp_out layer 3 saw" in out and out.count("hook blocks.3.hook_mlp_out") == 1
    assert "the example's vectors equal the cache's: True" in out
    assert re.search(r"a training batch: \(\d+, \d+\)", out)

    lines = [line for block in blocks(section, "bash") for line in block.splitlines() if line.strip()]
    assert [line.split()[:2] for line in lines] == [["workbench", c] for c in ("generate", "label", "capture")]
    for line in lines:
        ran = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert ran.returncode == 0, (line, ran.stderr[-3000:])

    from workbench.store import open_store
    from workbench.traces import load_traces

    python_traces = load_traces(tmp_path / "artifacts/runs/quickstart/traces.jsonl")
    cli_traces = load_traces(tmp_path / "artifacts/runs/cli/traces.jsonl")
    # the CLI's defaults are the Python API's: the same sampled completions
    assert [t.completion for t in cli_traces] == [t.completion for t in python_traces]
    store = open_store(tmp_path / "artifacts/runs/cli/store")
    assert {"label_reflection", "label_correct"} <= set(store.index.columns)
    assert store.poolings == ["boundary", "mean"]
    assert len(store.index) == len(open_store(tmp_path / "artifacts/runs/quickstart/store").index)


def test_the_hooks_page_examples_run(tmp_path):
    """docs/hooks.md's first example (the TransformerLens calls) runs on the embedded model as written."""
    text = (ROOT / "docs" / "hooks.md").read_text()
    script = blocks(text, "python")[0]
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ans=10\n")
