"""The offline report: one self-contained file, bundle inlined once, every chart drawn with the network off."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.browser import CHART_MARKS, open_file_offline
from tests.viz.helpers import HOSTILE, make_traces
from workbench.traces import to_dataframe
from workbench.viz import Report, charts, steps_html


def build_report() -> Report:
    traces = make_traces()
    df = to_dataframe(traces)
    report = Report("Test report", "hand-made traces")
    s = report.section("Traces")
    s.text(f"Three traces; one step reads {HOSTILE}.")
    s.table({"traces": 3, "steps": len(df), "mean Φ": float(df["label_spae_phi"].mean())}, caption="key numbers")
    s.chart(charts.step_strip(df, "label_correct")).chart(charts.phi_curve(df))
    s.html(steps_html(traces, "label_spae_phi"))
    report.section("Store").chart(charts.store_overview(df.assign(token_start=0, token_end=df["step_index"] + 2)))
    report.section("Settings").table(pd.DataFrame({"setting": ["seed"], "value": [0]}))
    return report


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    return build_report().write(tmp_path_factory.mktemp("report") / "report.html")


def test_report_is_one_self_contained_file(report_file):
    text = report_file.read_text(encoding="utf-8")
    low = text.lower()
    assert "<script src" not in low and "<link" not in low and "@import" not in low
    assert text.count("window.vegaEmbed=") == 1  # the bundle once, however many charts
    assert text.count('data-chart="chart-') == 3
    assert '<meta name="workbench-charts" content="3">' in text
    assert "<script>alert" not in text  # hostile text escaped in paragraphs, steps and specs
    assert sorted(p.name for p in report_file.parent.iterdir()) == ["report.html"]  # no temp files left


def test_report_refuses_a_non_html_path(tmp_path):
    with pytest.raises(ValueError, match="html"):
        build_report().write(tmp_path / "report.txt")
    assert list(tmp_path.iterdir()) == []


def test_report_draws_every_chart_offline(browser, report_file, tmp_path):
    with open_file_offline(browser, report_file) as (page, rep):
        page.wait_for_function("document.body.dataset.chartsDone === '3'", timeout=60_000)
        assert page.locator(CHART_MARKS).count() == 3
        assert page.locator(".chart.failed").count() == 0
        assert HOSTILE in page.inner_text("body")  # shown as text, never run
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert rep.blocked == [] and rep.page_errors == [] and rep.console_errors == []
    assert shot.stat().st_size > 10_000


def test_a_broken_chart_is_reported_not_hidden(browser, tmp_path):
    """Control: a spec vega cannot draw shows up as a failed chart and a console error."""
    report = Report("broken")
    report.section("x").chart({"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "mark": "nonsense"})
    path = report.write(tmp_path / "broken.html")
    with open_file_offline(browser, path) as (page, rep):
        page.wait_for_function("document.body.dataset.chartsDone === '1'", timeout=60_000)
        assert page.locator(CHART_MARKS).count() == 0 and page.locator(".chart.failed").count() == 1
    assert rep.console_errors
