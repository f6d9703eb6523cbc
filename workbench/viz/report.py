"""The offline report: one self-contained ``report.html`` with a section per pipeline stage.

A :class:`Report` collects sections; each holds paragraphs, charts (anything with ``.to_dict()`` giving a
Vega-Lite spec, i.e. the builders of :mod:`workbench.viz.charts`), small tables (key numbers, settings,
provenance) and HTML fragments (:func:`workbench.viz.render.steps_html`). :meth:`Report.write` writes one
HTML file atomically.

The file opens with no network. Vega, Vega-Lite and Vega-Embed are inlined **once per report** (about
0.9 MB) from the bundle that vl-convert-python builds (``javascript_bundle``), and each chart is a JSON
spec that a single script hands to ``vegaEmbed``; Altair's own ``save(inline=True)`` would repeat the
bundle in every chart. Building the bundle takes vl-convert tens of seconds on a busy CPU, so it is cached
under ``$XDG_CACHE_HOME/step-workbench`` (default ``~/.cache``) keyed by the vl-convert and Vega-Lite versions.
Spec JSON is escaped so that no text inside a chart (a step reading ``</script>``) can end its script tag.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.traces.io import atomic_write_bytes

__all__ = ["Report", "Section", "vega_bundle"]


def vega_bundle() -> str:
    """The Vega + Vega-Lite + Vega-Embed JavaScript bundle (from vl-convert-python), cached on disk."""
    import vl_convert as vlc

    from workbench.viz.charts import VEGALITE_VERSION

    vl = ".".join(VEGALITE_VERSION.split(".")[:2])  # vl-convert knows minor versions ("6.4")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "step-workbench"
    path = cache / f"vega-bundle-vl{vl}-vlc{vlc.__version__}.js"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    bundle = vlc.javascript_bundle(vl_version=vl)
    if "</script" in bundle.lower():  # would end the inline <script> early; never seen, checked anyway
        raise RuntimeError("the Vega bundle contains '</script'; it cannot be inlined")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, bundle.encode("utf-8"))
    except OSError:
        pass  # a read-only home: rebuild next time
    return bundle


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (``<``, ``>`` and ``&`` as unicode escapes)."""
    text = json.dumps(value, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table_html(table: pd.DataFrame | Mapping[str, Any]) -> str:
    if isinstance(table, Mapping):
        table = pd.DataFrame({"": list(table.keys()), "value": [_fmt(v) for v in table.values()]})
    return table.to_html(index=False, escape=True, classes="wb-table", border=0, float_format=lambda v: f"{v:.3f}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1e4 else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(_fmt, v))
    return str(v)


@dataclass
class Section:
    """One report section: a heading and its items in order."""

    title: str
    """Heading."""
    items: list[tuple[str, Any]] = field(default_factory=list)
    """("text" | "chart" | "table" | "html", payload) in display order."""

    def text(self, paragraph: str) -> Section:
        """Add a paragraph (plain text, escaped)."""
        self.items.append(("text", paragraph))
        return self

    def chart(self, chart: Any) -> Section:
        """Add a chart: an Altair chart or a Vega-Lite spec dict."""
        spec = chart if isinstance(chart, dict) else chart.to_dict()
        self.items.append(("chart", spec))
        return self

    def table(self, table: pd.DataFrame | Mapping[str, Any], caption: str | None = None) -> Section:
        """Add a small table (a DataFrame, or a mapping of name → value)."""
        self.items.append(("table", (_table_html(table), caption)))
        return self

    def html(self, fragment: str) -> Section:
        """Add a trusted HTML fragment (e.g. ``steps_html``; it escapes its own text)."""
        self.items.append(("html", fragment))
        return self


_CSS = """
:root{color-scheme:light dark;--fg:#1b1b1b;--bg:#ffffff;--muted:#5f6368;--rule:#d9d9d9;--head:#f3f3f3}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#161616;--muted:#a0a0a0;--rule:#3a3a3a;--head:#242424}}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);
 max-width:1180px;margin:24px auto;padding:0 16px;line-height:1.45}
h1{margin-bottom:2px} .sub{color:var(--muted);margin-top:0}
h2{border-bottom:1px solid var(--rule);padding-bottom:4px;margin-top:32px}
nav a{margin-right:12px;color:inherit}
.wb-table{border-collapse:collapse;margin:8px 0;font-size:13px}
.wb-table th,.wb-table td{border:1px solid var(--rule);padding:3px 8px;text-align:left}
.wb-table th{background:var(--head)} .caption{color:var(--muted);font-size:12px;margin:2px 0 10px 0}
.chart{margin:10px 0;overflow-x:auto} .chart.failed{color:#c00}
"""

_EMBED = """
(function(){
  const dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  const specs = document.querySelectorAll('script[type="application/json"][data-chart]');
  const jobs = Array.from(specs).map(function(el){
    const target = document.getElementById(el.dataset.chart);
    const opts = {renderer: 'svg', actions: false};
    if (dark) { opts.theme = 'dark'; }
    return vegaEmbed(target, JSON.parse(el.textContent), opts).catch(function(err){
      target.classList.add('failed'); target.textContent = 'chart failed: ' + err; console.error(err);
    });
  });
  Promise.all(jobs).then(function(){ document.body.dataset.chartsDone = String(jobs.length); });
})();
"""


class Report:
    """A self-contained HTML report: ``Report(title).section("Traces").text(...).chart(...)``, then ``write``."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        """Start a new section (returned, so items can be chained onto it)."""
        s = Section(title)
        self.sections.append(s)
        return s

    @property
    def n_charts(self) -> int:
        """Charts in the report (each draws one ``svg.marks`` when rendered)."""
        return sum(kind == "chart" for s in self.sections for kind, _ in s.items)

    def to_html(self) -> str:
        """The whole document as a string (the Vega bundle is included once, only if there are charts)."""
        body, n = [], 0
        for i, s in enumerate(self.sections):
            body.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
            for kind, payload in s.items:
                if kind == "text":
                    body.append(f"<p>{html.escape(payload)}</p>")
                elif kind == "table":
                    table, caption = payload
                    body.append(table + (f'<div class="caption">{html.escape(caption)}</div>' if caption else ""))
                elif kind == "html":
                    body.append(payload)
                else:
                    body.append(f'<div class="chart" id="chart-{n}"></div>')
                    body.append(
                        f'<script type="application/json" data-chart="chart-{n}">{_script_json(payload)}</script>'
                    )
                    n += 1
            body.append("</section>")
        nav = " ".join(f'<a href="#s{i}">{html.escape(s.title)}</a>' for i, s in enumerate(self.sections))
        scripts = f"<script>{vega_bundle()}</script><script>{_EMBED}</script>" if n else ""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sub = html.escape(self.subtitle or "")
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width"><title>{html.escape(self.title)}</title>'
            f'<meta name="workbench-charts" content="{n}"><style>{_CSS}</style></head><body>'
            f'<h1>{html.escape(self.title)}</h1><p class="sub">{sub} · written {stamp}</p><nav>{nav}</nav>'
            + "".join(body)
            + scripts
            + "</body></html>"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report atomically (temp file + rename); returns the path."""
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"path={str(path)!r}: a report is an .html file")
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, self.to_html().encode("utf-8"))
