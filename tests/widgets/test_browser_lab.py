"""The quick-start notebook in a real JupyterLab and a real (headless, offline) Chromium.

Starts JupyterLab on loopback with a token, opens a copy of ``notebooks/00_quickstart.ipynb``, runs every
cell and checks what a researcher would see: every panel and chart drew (their DOM nodes exist, charts
have marks), no cell shows a traceback, nothing tried to reach the network, and one interaction goes
through the kernel and back (selecting another step in the TraceViewer changes the step shown). Saves a
screenshot of each panel and of the whole notebook under ``artifacts/runs/widgets/``.

A control notebook with ``1/0`` proves that the traceback check sees real errors.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from tests.browser import CHART_MARKS, Offline
from tests.widgets.jupyterlab import PANEL, STDERR, open_notebook, run_all_cells, running_lab, wait_all_executed

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "00_quickstart.ipynb"
SHOTS = Path(os.environ.get("WORKBENCH_SCREENSHOTS", REPO / "artifacts" / "runs" / "widgets"))

# Each panel of the quick start: its CSS class and the widget parts that must have rendered inside it.
PANELS = {
    "wb-probe-lab": [".widget-dropdown select", ".widget-select-multiple select", ".wb-progress", ".widget-output"],
    "wb-feature-browser": [".widget-dropdown select", ".wb-top-steps tr", ".wb-histogram .wb-bar", ".wb-association"],
    "wb-steering-lab": [".widget-slider", ".wb-steer-pair .wb-steer-side .wb-step", ".wb-progress"],
    "wb-uncertainty-monitor": [".widget-dropdown select", ".wb-live-step"],
    "wb-trace-viewer": [".widget-select select", ".wb-step", ".wb-step-detail", ".wb-detail-top", ".wb-detail-depends"],
}
# Altair charts the notebook draws, each of which must have marks: the step strip, the probe layer curve,
# the reliability diagram, the SAE decoder map and the steering dose-response chart.
N_CHARTS = 5


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    runs = base / "runs"
    runs.mkdir()
    with running_lab(base, env={"WORKBENCH_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1"}) as lab:
        yield lab


@pytest.fixture
def page(browser, lab):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    offline = Offline([lab.url + "/", "data:", "blob:"])
    ctx.route("**/*", offline)
    page = ctx.new_page()
    page.set_default_timeout(60_000)  # a busy 2-core machine
    page.page_errors, page.console_errors = [], []
    page.on("pageerror", lambda e: page.page_errors.append(str(e)))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.offline = offline
    yield page
    ctx.close()


def _code_cells(path: Path) -> int:
    return sum(c.cell_type == "code" for c in nbformat.read(path, as_version=4).cells)


def _tracebacks(page) -> list[str]:
    return [t for t in page.locator(STDERR).all_inner_texts() if "Traceback" in t or "Error" in t]


def test_quickstart_renders_every_panel_and_reacts(page, lab):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
    open_notebook(page, lab, NOTEBOOK.name, _code_cells(NOTEBOOK))
    assert run_all_cells(page) >= 1
    prompts = wait_all_executed(page, timeout_ms=400_000)
    assert not _tracebacks(page), _tracebacks(page)
    assert all(p[1:-2].isdigit() for p in prompts), prompts

    notebook = page.locator(PANEL)
    for cls, parts in PANELS.items():
        panel = notebook.locator(f".{cls}")
        expect(panel).to_have_count(1)
        for part in parts:
            assert panel.locator(part).count() > 0, f"{cls}: no {part} rendered"
        assert panel.locator(".wb-error").count() == 0, panel.locator(".wb-error").all_inner_texts()
    if N_CHARTS:
        expect(notebook.locator(CHART_MARKS)).to_have_count(N_CHARTS)

    # interaction: pick another step in the TraceViewer -> the kernel re-renders the detail and the outline
    viewer = notebook.locator(".wb-trace-viewer")
    expect(viewer.locator(".wb-step-detail")).to_have_attribute("data-step", "0")
    viewer.locator(".widget-select select").select_option(index=2)
    expect(viewer.locator(".wb-step-detail")).to_have_attribute("data-step", "2")
    expect(viewer.locator(".wb-step[data-step='2']")).to_have_css("outline-style", "solid")

    assert page.page_errors == [], (page.page_errors, page.console_errors[:10])
    assert page.offline.blocked == [], f"the notebook tried to reach the network: {page.offline.blocked}"

    SHOTS.mkdir(parents=True, exist_ok=True)
    for cls in PANELS:
        panel = notebook.locator(f".{cls}")
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(SHOTS / f"{cls.removeprefix('wb-')}.png"))
        assert (SHOTS / f"{cls.removeprefix('wb-')}.png").stat().st_size > 5_000
    _whole_notebook(page, SHOTS / "00_quickstart.png")


def test_a_failing_cell_is_detected(page, lab):
    """Control for the traceback check above."""
    cells = [nbformat.v4.new_code_cell("print('before')"), nbformat.v4.new_code_cell("1/0")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, lab.root / "boom.ipynb")
    open_notebook(page, lab, "boom.ipynb", 2)
    run_all_cells(page)
    wait_all_executed(page)
    assert any("ZeroDivisionError" in t for t in _tracebacks(page))


def _whole_notebook(page, path: Path) -> None:
    """The notebook scrolls inside its panel: grow the viewport to its height, then take the page."""
    height = page.evaluate(
        f"() => (document.querySelector('{PANEL} .jp-WindowedPanel-outer') || "
        f"document.querySelector('{PANEL} .jp-Notebook')).scrollHeight"
    )
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], height + 250), 8000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
