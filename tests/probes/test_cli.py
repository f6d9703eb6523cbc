"""``workbench probe`` and ``workbench train-head`` run the library functions and report their results."""

from __future__ import annotations

import json

import pandas as pd

from workbench.cli import main


def test_probe_and_train_head_commands(toy_store, tmp_path, capsys):
    csv = tmp_path / "sweep.csv"
    argv = ["probe", "--store", str(toy_store.root), "--target", "label_correct", "--positive", "false"]
    assert main([*argv, "--poolings", "boundary", "mean", "--device", "cpu", "--csv", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 2 * 2 * 2 and {"roc_auc", "layer", "pooling"} <= set(table.columns)  # hooks×poolings×splits
    assert "roc_auc" in capsys.readouterr().out
    out = tmp_path / "head"
    argv = ["train-head", "--store", str(toy_store.root), "--out", str(out), "--hooks", "blocks.1.hook_resid_post"]
    assert main([*argv, "--width", "16", "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["best_epoch"] == 0 and (out / "head.safetensors").is_file()
    assert json.loads((out / "manifest.json").read_text())["train"]["target"] == "label_logical"
