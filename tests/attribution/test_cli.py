"""``workbench attribute`` end to end on a tiny random model."""

from __future__ import annotations

import pandas as pd
import pytest

import workbench.attribution as A
from workbench.cli import main
from workbench.labels import dependency_labels, join_labels
from workbench.models import load_model
from workbench.traces import save_traces


@pytest.mark.parametrize("method", ["suppression", "attention", "receivers"])
def test_attribute_writes_a_tidy_table(tmp_path, tiny_model_dir, toy_traces, method):
    traces = tmp_path / "traces.jsonl"
    save_traces(toy_traces, traces)
    out = tmp_path / "out" / f"{method}.parquet"
    args = ["attribute", "--traces", str(traces), "--method", method, "--out", str(out)]
    assert main([*args, "--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"]) == 0
    frame = pd.read_parquet(out)
    ids = {t.trace_id for t in toy_traces}
    # receiver scores need a step at least --min-distance (2) after: the 2-step trace t2 has none
    assert set(frame.trace_id) == (ids - {"t2"} if method == "receivers" else ids) and len(frame)
    if method == "suppression":
        assert frame.kl_read.notna().any()  # dependency labels were joined, so read positions are known
    if method == "attention":
        assert {"layer", "head", "q", "k", "value"} <= set(frame.columns)


def test_attribute_passes_the_aggregation_options(tmp_path, tiny_model_dir, toy_traces):
    traces = tmp_path / "traces.jsonl"
    save_traces(toy_traces, traces)
    base = ["attribute", "--traces", str(traces), "--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"]
    att, sup = tmp_path / "att.csv", tmp_path / "sup.csv"
    flags = ["--key-reduce", "sum", "--query-reduce", "max", "--queries", "read"]
    assert main([*base, "--method", "attention", "--out", str(att), *flags]) == 0
    assert main([*base, "--method", "suppression", "--out", str(sup), "--token-reduce", "max"]) == 0
    model = load_model(str(tiny_model_dir), device="cpu")
    labelled = join_labels(toy_traces, dependency_labels(toy_traces))
    cfg = A.AttentionConfig(key_reduce="sum", query_reduce="max", queries="read", progress=False)
    want = A.attention_frame(A.step_attention(model, labelled, cfg))
    got = pd.read_csv(att)
    assert got.value.isna().sum() == want.value.isna().sum() > 0  # the prompt reads nothing
    assert got.value.fillna(-1).to_numpy() == pytest.approx(want.value.fillna(-1).to_numpy(), rel=1e-5)
    scfg = A.SuppressionConfig(token_reduce="max", progress=False)
    want_kl = A.suppression_frame(A.step_suppression(model, labelled, scfg)).kl
    assert pd.read_csv(sup).kl.to_numpy() == pytest.approx(want_kl.to_numpy(), rel=1e-5)


def test_attribute_rejects_bad_input_before_writing(tmp_path, toy_traces, capsys):
    traces = tmp_path / "traces.jsonl"
    save_traces(toy_traces, traces)
    assert main(["attribute", "--traces", str(traces), "--method", "attention", "--out", str(tmp_path / "x.txt")]) == 2
    assert "parquet or .csv" in capsys.readouterr().err
    out = tmp_path / "x.csv"
    missing = str(tmp_path / "nope.jsonl")
    assert main(["attribute", "--traces", missing, "--method", "attention", "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "x.txt").exists()
