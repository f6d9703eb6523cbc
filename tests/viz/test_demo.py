"""``workbench demo``: flags and settings checks (fast), and the quick demo's report in an offline browser (slow)."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import CHART_MARKS, open_file_offline
from workbench.cli import build_parser
from workbench.demo import DemoConfig, config_from_args, run_demo, runs_dir


def test_cli_flags_map_to_the_config():
    args = build_parser().parse_args(["demo", "--quick", "--n", "12", "--stages", "sample", "label", "capture"])
    cfg = config_from_args(args)
    assert cfg.quick and cfg.n_problems == 12 and cfg.stages == ("sample", "label", "capture")
    quick = cfg.scaled()
    assert quick.sae_steps <= 300 and quick.steering_problems <= 16 and quick.n_problems == 12


def test_bad_settings_are_refused_with_the_field_named(tmp_path):
    with pytest.raises(ValueError, match="prompts"):
        DemoConfig(prompts=str(tmp_path / "p.txt"))  # a prompts file needs --model
    with pytest.raises(ValueError, match="no such file"):
        DemoConfig(model="x", prompts=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="stages"):
        DemoConfig(stages=("sample", "dance"))
    with pytest.raises(ValueError, match="n_problems"):
        DemoConfig(n_problems=0)


def test_free_prompts_skip_the_ground_truth_stages(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a1,b2;n=a+b;?n\n\nc3,d4;m=c+d;?m\n")
    stages = ("sample", "label", "capture", "attribution", "steering")  # the SAE and probes have their own tests
    cfg = DemoConfig(
        model=str(tiny_model_dir), prompts=str(prompts), max_new_tokens=24, stages=stages, out=str(tmp_path / "run")
    )
    result = run_demo(cfg)
    assert result.report.is_file() and (tmp_path / "run" / "store").is_dir()
    assert "checker" in result.skipped["attribution"] and "checker" in result.skipped["steering"]
    html = result.report.read_text(encoding="utf-8")
    assert "attribution · skipped" in html and "Provenance and settings" in html
    assert result.summary.query("stage == 'sample' and measure == 'traces'")["value"].item() == "2"


@pytest.mark.slow
def test_quick_demo_report_draws_every_chart_offline(browser):
    out = runs_dir() / f"demo-report-test-{time.strftime('%Y%m%d-%H%M%S')}"  # the screenshot stays there
    result = run_demo(DemoConfig(quick=True, out=str(out)))
    html = result.report.read_text(encoding="utf-8")
    assert re.search(r"<script[^>]*\ssrc=", html) is None and "<link" not in html.lower()
    assert html.count("window.vegaEmbed=") == 1
    assert not [s for s, why in result.skipped.items() if why.startswith("failed")], result.skipped
    assert result.n_charts >= 6, result.skipped
    with open_file_offline(browser, result.report, height=1000) as (page, rep):
        page.wait_for_function(f"document.body.dataset.chartsDone === '{result.n_charts}'", timeout=120_000)
        assert page.locator(CHART_MARKS).count() == result.n_charts
        assert page.locator(".chart.failed").count() == 0
        page.screenshot(path=str(result.report.with_name("report.png")), full_page=True)
    assert rep.blocked == [] and rep.page_errors == [] and rep.console_errors == []
    assert result.report.with_name("report.png").stat().st_size > 50_000
