"""Every chart builder on a small hand-made DataFrame: a valid Vega-Lite spec, the expected fields, no NaN."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.viz import charts
from workbench.viz.tables import curve_points

rng = np.random.default_rng(0)


def walk(node, key):
    """Every value stored under ``key`` anywhere in a nested spec."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)


def check_spec(chart, expect_fields):
    """Validate against the Vega-Lite schema, check encoded fields exist in the data and no value is NaN."""
    spec = chart.to_dict(validate=True)
    datasets = spec.get("datasets", {})
    records = [r for values in datasets.values() for r in values]
    assert records, "the chart carries no data"
    columns = set().union(*(r.keys() for r in records))
    fields = {f for f in walk(spec, "field") if isinstance(f, str)}
    assert set(expect_fields) <= fields, f"fields {set(expect_fields) - fields} not encoded"
    assert fields <= columns, f"encoded fields {fields - columns} not in the data"
    for r in records:
        for k, v in r.items():
            assert not (isinstance(v, float) and math.isnan(v)), f"NaN in {k}"
    assert list(walk(spec, "title")), "no title"
    return spec


def steps_frame():
    rows = []
    for t in range(3):
        for i in range(5):
            rows.append(
                {
                    "trace_id": f"t{t}",
                    "problem_id": f"p{t}",
                    "step_index": i,
                    "text": f"n=a{i}+b",
                    "kind": ["compute", "compute", "wait", "check", "answer"][i],
                    "label_correct": bool(i != 1 or t == 0),
                    "label_spae_phi": float(np.tanh(i - 2 + t)) if i != 3 else np.nan,
                    "label_rollout_soft": i / 4,
                    "label_viable": bool(i != 1),
                    "answer_correct": t != 2,
                    "token_start": 10 * i,
                    "token_end": 10 * i + 3 + i,
                    "depends_on": [i - 1] if i else [],
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("color", ["label_correct", "label_spae_phi", "label_rollout_soft", "kind"])
def test_step_strip_colours_by_any_column(color):
    spec = check_spec(charts.step_strip(steps_frame(), color), ["trace_id", "step_index", color])
    scale = spec["encoding"]["color"]
    assert scale["type"] == ("quantitative" if color in ("label_spae_phi", "label_rollout_soft") else "nominal")
    if color == "label_spae_phi":  # takes both signs: diverging, symmetric about 0
        lo, hi = scale["scale"]["domain"]
        assert lo == -hi and hi > 0
    if color == "label_rollout_soft":  # non-negative: sequential over the data's range
        assert scale["scale"]["domain"] == [0.0, 1.0]


def test_step_strip_limits_traces_and_names_missing_columns():
    spec = charts.step_strip(steps_frame(), "label_correct", max_traces=2).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert {r["trace_id"] for r in values} == {"t0", "t1"}
    with pytest.raises(ValueError, match="nope"):
        charts.step_strip(steps_frame(), "nope")


def test_phi_curve_drops_missing_values():
    spec = check_spec(charts.phi_curve(steps_frame()), ["step_index", "label_spae_phi", "trace_id"])
    values = [r for v in spec["datasets"].values() for r in v if "label_spae_phi" in r]
    assert len(values) == 12  # 15 steps, 3 without Φ


def test_rollout_vs_checker_and_store_overview():
    check_spec(charts.rollout_vs_checker(steps_frame()), ["label_rollout_soft", "label_viable"])
    spec = check_spec(charts.store_overview(steps_frame()), ["kind", "steps", "n_tokens"])
    assert len(spec["hconcat"]) == 2


def test_sae_charts():
    history = pd.DataFrame(
        {
            "step": np.tile(np.arange(0, 100, 10), 2),
            "fvu": rng.random(20),
            "l0": rng.random(20) * 30,
            "dead_fraction": rng.random(20) / 10,
            "layer": np.repeat([1, 3], 10),
        }
    )
    spec = check_spec(charts.sae_training_curves(history, series="layer"), ["step", "fvu", "l0", "dead_fraction"])
    assert len(spec["hconcat"]) == 3
    freq = pd.DataFrame({"latent": range(50), "frequency": np.r_[np.zeros(5), rng.random(45) / 10]})
    spec = check_spec(charts.activation_histogram(freq), ["log10_frequency"])
    assert "5 dead" in spec["title"]
    points = pd.DataFrame(
        {
            "x": rng.normal(size=40),
            "y": rng.normal(size=40),
            "behaviour": rng.choice(["wait", "check", "compute", None], size=40),
            "layer": np.repeat([0, 3], 20),
            "latent": np.tile(np.arange(20), 2),
        }
    )
    sil = pd.DataFrame({"layer": [0, 3], "silhouette": [0.05, 0.41]})
    spec = check_spec(charts.decoder_geometry(points, sil), ["x", "y", "behaviour"])
    assert [p["title"] for p in spec["hconcat"]] == ["layer 0 (silhouette 0.05)", "layer 3 (silhouette 0.41)"]


def test_probe_charts():
    sweep = pd.DataFrame(
        {
            "layer": [0, 1, 2, 3] * 2,
            "roc_auc": [0.55, 0.6, 0.7, 0.9, 0.5, 0.52, 0.6, 0.8],
            "lo": [0.5] * 8,
            "hi": [0.95] * 8,
            "target": ["logical"] * 4 + ["correct"] * 4,
            "method": "logistic",
        }
    )
    check_spec(charts.probe_layer_sweep(sweep), ["layer", "roc_auc", "target", "method"])
    bins = pd.DataFrame(
        {
            "mean_prob": [0.1, 0.5, 0.9, 0.2, np.nan],
            "frac_positive": [0.15, 0.4, 0.8, 0.3, np.nan],
            "n": [10, 5, 8, 3, 0],
            "method": ["probe", "probe", "probe", "head", "head"],
        }
    )
    check_spec(charts.reliability_diagram(bins), ["mean_prob", "frac_positive", "n"])
    frame = steps_frame().assign(head=rng.random(15), noise=rng.random(15))
    pts = curve_points(frame, "label_correct", {"uncertainty head": "head", "random": "noise"}, positive=False)
    assert set(pts["curve"]) == {"roc", "pr"} and set(pts["method"]) == {"uncertainty head", "random"}
    check_spec(charts.pr_roc_curves(pts), ["x", "y", "method"])


def test_curve_points_refuses_one_class():
    with pytest.raises(ValueError, match="one class"):
        curve_points(steps_frame().assign(all_true=True), "all_true", ["label_rollout_soft"])


def test_dose_response():
    alphas = [-1, 0, 1, 2]
    rows = [
        {"alpha": a, "value": v, "lo": v - 0.05, "hi": v + 0.05, "vector": vec, "measure": m}
        for vec in ("wait direction", "random control")
        for m in ("wait rate", "accuracy")
        for a, v in zip(alphas, [0.1, 0.2, 0.3, 0.5], strict=True)
    ]
    spec = check_spec(charts.dose_response(pd.DataFrame(rows)), ["alpha", "value", "lo", "hi", "vector"])
    assert len(spec["hconcat"]) == 2


def test_attribution_charts():
    n = 4
    rows = [
        {"q": q, "k": k, "value": v, "method": m}
        for q in range(n)
        for k in range(q)
        for m, v in (("suppression KL", rng.random()), ("true dependency", float(k == q - 1)))
    ]
    spec = check_spec(charts.attribution_heatmaps(pd.DataFrame(rows)), ["q", "k", "value"])
    assert spec["resolve"]["scale"]["color"] == "independent" and len(spec["hconcat"]) == 2
    steps = steps_frame().query("trace_id == 't0'")
    pairs = [(d, i) for i, ds in zip(steps.step_index, steps.depends_on, strict=True) for d in ds]
    edges = pd.DataFrame(pairs, columns=["source", "target"])
    spec = check_spec(charts.dependency_graph(steps, edges), ["x", "y", "step_index", "text"])
    assert "4 reads" in spec["title"]
