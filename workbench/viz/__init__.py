"""Viz: pictures of everything the workbench computes, for notebooks and the offline report.

- :mod:`~workbench.viz.charts`: pure chart builders, tidy DataFrame → Altair chart (Altair's only owner);
- :mod:`~workbench.viz.render`: traces as HTML with each step coloured by a label or score;
- :mod:`~workbench.viz.report`: one self-contained ``report.html`` that opens with no network;
- :mod:`~workbench.viz.tables`: small derived tables the charts draw (ROC/PR curve points);
- :mod:`~workbench.viz.scales`: the colour scale a column calls for (categorical, diverging, sequential).

Inside IPython, importing this package makes a bare :class:`~workbench.traces.Trace` display as coloured
steps, and :func:`enable_offline` makes charts render without a CDN.
"""

from workbench.viz import charts
from workbench.viz.charts import enable_offline
from workbench.viz.render import ScoredSteps, TraceView, register_notebook_display, steps_html
from workbench.viz.report import Report, Section
from workbench.viz.tables import curve_points

__all__ = [
    "charts",
    "enable_offline",
    "steps_html",
    "TraceView",
    "ScoredSteps",
    "register_notebook_display",
    "Report",
    "Section",
    "curve_points",
]

register_notebook_display()
