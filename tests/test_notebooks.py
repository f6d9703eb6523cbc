"""Notebooks: the expected set, committed without outputs, and each runs top to bottom on the embedded model.

``00_quickstart`` runs in a real JupyterLab and Chromium in ``tests/widgets/test_browser_lab.py`` (which
fails on any traceback); it is executed here too only where no Chromium is installed, so it is never
left unexecuted and never executed twice.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.browser import find_chromium

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
EXPECTED = [
    "00_quickstart",
    "01_traces_and_capture",
    "02_step_saes",
    "03_probes_and_uncertainty_heads",
    "04_steering",
    "05_bring_your_own_model",
    "06_step_attribution",
]
IN_BROWSER = {"00_quickstart"} if find_chromium() else set()
EXECUTED = [p for p in NOTEBOOKS if p.stem not in IN_BROWSER]


def test_the_notebook_set():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXECUTED, ids=[p.name for p in EXECUTED])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path))  # notebooks write run outputs here
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(c.outputs for c in nb.cells if c.cell_type == "code"), "the notebook produced no output at all"
    code = [c for c in nb.cells if c.cell_type == "code"]
    if any("workbench.viz.widgets" in c.source for c in code):  # its panels really were displayed
        views = [o for c in code for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert views, "the notebook imports panels but displayed none"
