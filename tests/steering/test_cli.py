"""``workbench steer``: flags, the written table, its summary and settings, errors before sampling."""

from __future__ import annotations

import json

import pandas as pd
import torch

from workbench.cli import main
from workbench.steering import SteeringVector
from workbench.steering.sweep import TRACE_COLUMNS


def test_steer_writes_the_sweep_table(tiny_model_dir, tmp_path):
    vec = SteeringVector(
        vector=torch.randn(32, generator=torch.Generator().manual_seed(0)), hook="blocks.1.hook_resid_post"
    )
    vec.save(tmp_path / "vec")
    out = tmp_path / "sweep.csv"
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    argv = ["steer", "--vector", str(tmp_path / "vec"), "--alphas", "0", "3", "--problems", "2",
            "--max-new-tokens", "12", *model, "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    rows = pd.read_csv(out)
    assert list(rows.columns) == list(TRACE_COLUMNS) and len(rows) == 2 * 2 * 2
    summary = pd.read_csv(tmp_path / "sweep.summary.csv")
    assert {"value", "lo", "hi", "metric"} <= set(summary.columns)
    settings = json.loads((tmp_path / "sweep.json").read_text())
    assert settings["alphas"] == [0.0, 3.0] and settings["positions"]["kind"] == "boundary"
    assert settings["vectors"][0]["hook"] == "blocks.1.hook_resid_post"


def test_steer_rejects_bad_input_before_writing(tiny_model_dir, tmp_path, capsys):
    SteeringVector(vector=torch.ones(8), hook="blocks.1.hook_resid_post").save(tmp_path / "narrow")
    out = tmp_path / "sweep.parquet"
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    assert main(["steer", "--vector", str(tmp_path / "narrow"), *model, "--problems", "1", "--out", str(out)]) == 2
    assert "d_model is 32" in capsys.readouterr().err
    assert main(["steer", "--vector", str(tmp_path / "narrow"), "--out", str(tmp_path / "x.txt")]) == 2
    assert ".parquet or .csv" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "x.txt").exists()
