"""Step HTML: escaping of hostile text, legend, tooltips, the scale the data calls for, notebook display."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.viz.helpers import make_traces
from workbench.traces import to_dataframe
from workbench.viz import ScoredSteps, TraceView, steps_html
from workbench.viz.scales import choose_scale, color_for, text_color


def test_hostile_step_text_is_escaped_in_body_and_tooltip():
    out = steps_html(make_traces(), "label_correct")
    assert "<script>alert" not in out and "<b>bold" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in out
    titles = re.findall(r'title="([^"]*)"', out)  # a quote in the text must not end the attribute early
    assert len(titles) == 12 and any("&lt;script&gt;" in t for t in titles)


def test_tooltip_lists_labels_and_scores():
    out = steps_html(make_traces(), "label_spae_phi")
    title = re.findall(r'title="([^"]*)"', out)[0]
    assert "label_spae_phi: -0.8" in title and "label_correct: True" in title and "label_rollout_soft: 0" in title


@pytest.mark.parametrize(
    ("column", "kind"), [("label_correct", "categorical"), ("kind", "categorical"), ("label_spae_phi", "diverging")]
)
def test_scale_is_chosen_by_the_data(column, kind):
    df = to_dataframe(make_traces())
    assert choose_scale(df[column]).kind == kind
    out = steps_html(df, column)
    assert f"<b>{column}</b>" in out  # the legend names the column
    if kind == "diverging":
        assert "(diverging)" in out


def test_sequential_scale_and_its_colours():
    scale = choose_scale(pd.Series([0.0, 0.5, 1.0]))
    assert scale.kind == "sequential" and scale.domain == (0.0, 1.0)
    low, high = color_for(0.0, scale), color_for(1.0, scale)
    assert low != high and text_color(low) == "#000000" and text_color(high) == "#FFFFFF"
    diverging = choose_scale(pd.Series([-0.2, 0.9]))
    assert diverging.domain == (-0.9, 0.9) and color_for(0.0, diverging) == "#F7F7F7"
    assert color_for(float("nan"), scale) == color_for(None, scale) == "#DDDDDD"
    assert choose_scale(pd.Series([0.0, 1.0, 1.0])).kind == "sequential"  # 0/1 numbers are not booleans
    assert choose_scale(pd.Series([True, False])).domain == (True, False)


def test_every_chip_sets_background_and_contrasting_text():
    out = steps_html(make_traces(), "label_rollout_soft")
    styles = re.findall(r'class="wb-step" style="background:(#[0-9A-F]{6});color:(#[0-9A-F]{6})"', out)
    assert len(styles) == 12
    assert all(fg == text_color(bg) for bg, fg in styles)


def test_notebook_reprs_and_errors():
    traces = make_traces()
    html = TraceView(traces, "kind")._repr_html_()
    assert html.count('class="wb-trace"') == 3 and "a1,b2,c4" in html  # prompts shown
    scored = to_dataframe(traces).assign(head_score=[0.1 * i for i in range(12)])
    html = ScoredSteps(scored, "head_score")._repr_html_()
    assert "<table" in html and "head_score" in html and "&lt;script&gt;" in html
    with pytest.raises(ValueError, match="no column 'nope'"):
        steps_html(traces, "nope")
    with pytest.raises(ValueError, match="trace_id"):
        steps_html(pd.DataFrame({"x": [1]}), "x")
