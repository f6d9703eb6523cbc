"""The shared browser helpers really block the network and see errors (controls for the report tests)."""

from __future__ import annotations

from tests.browser import open_file_offline


def test_offline_page_blocks_remote_scripts_and_records_errors(browser, tmp_path):
    page_file = tmp_path / "p.html"
    page_file.write_text(
        "<html><body><div id=ok></div>"
        '<script src="https://cdn.example.invalid/vega.js"></script>'
        "<script>document.getElementById('ok').textContent = 'ran'; console.error('boom');</script>"
        "</body></html>"
    )
    with open_file_offline(browser, page_file) as (page, report):
        assert page.inner_text("#ok") == "ran"  # local scripts run
        page.wait_for_timeout(100)
    assert report.blocked == ["https://cdn.example.invalid/vega.js"]
    assert report.console_errors and "boom" in report.console_errors[-1]
