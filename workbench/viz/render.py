"""Step rendering: traces as HTML, each step coloured by any label or score, for notebooks and the report.

:func:`steps_html` turns traces (or a one-row-per-step DataFrame such as :func:`workbench.traces.to_dataframe`
or a table of step scores) into an HTML fragment: a legend, then each trace's steps as coloured chips whose
tooltip lists the step's labels and scores. The colour scale follows the data
(:func:`workbench.viz.scales.choose_scale`: categories, a diverging scale for signed scores, a sequential
one otherwise). All text is escaped (a step reading ``<script>`` shows as text), and every chip sets its
own background and a contrasting text colour, so the fragment reads the same in light and dark themes.

:class:`TraceView` and :class:`ScoredSteps` wrap traces and scored-step tables with a ``_repr_html_``, so a
notebook cell shows them; :func:`register_notebook_display` makes a bare :class:`~workbench.traces.Trace`
display the same way (``import workbench.viz`` calls it inside IPython). The trace types themselves know
nothing of HTML: lower layers never import this one.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from workbench.traces import Trace, to_dataframe
from workbench.viz.scales import DIVERGING, MISSING, SEQUENTIAL, ScaleChoice, choose_scale, color_for, text_color

__all__ = ["steps_html", "TraceView", "ScoredSteps", "register_notebook_display"]

_CSS = """<style>
.wb-steps{font-family:var(--jp-content-font-family,system-ui,sans-serif);font-size:13px;line-height:1.9;color:inherit}
.wb-steps .wb-legend{margin:2px 0 6px 0;font-size:12px}
.wb-steps .wb-sw{display:inline-block;width:12px;height:12px;margin:0 3px -2px 8px;border-radius:2px;
 border:1px solid rgba(127,127,127,.6)}
.wb-steps .wb-grad{display:inline-block;width:120px;height:12px;margin:0 4px -2px 4px;border-radius:2px;
 border:1px solid rgba(127,127,127,.6)}
.wb-steps .wb-trace{margin:4px 0 8px 0;padding:4px 6px;border-left:3px solid rgba(127,127,127,.5)}
.wb-steps .wb-head{font-size:12px;opacity:.8}
.wb-steps .wb-prompt{font-family:var(--jp-code-font-family,monospace);opacity:.8}
.wb-steps .wb-step{display:inline-block;white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace);
 padding:0 5px;margin:1px 2px;border-radius:3px;border:1px solid rgba(127,127,127,.4)}
.wb-steps .wb-idx{font-size:10px;opacity:.7;margin-right:3px}
</style>"""

_STEP_FIELDS = ("trace_id", "problem_id", "step_index", "text", "n_steps", "answer", "answer_correct", "gold_answer")
_HIDDEN = ("char_start", "char_end", "token_start", "token_end", "boundary_token", "beyond_context", "n_steps")


def _frame(data: Trace | Sequence[Trace] | pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The one-row-per-step table and each trace's prompt (empty when given a table)."""
    if isinstance(data, Trace):
        data = [data]
    if isinstance(data, pd.DataFrame):
        missing = [c for c in ("trace_id", "step_index", "text") if c not in data.columns]
        if missing:
            raise ValueError(f"steps_html: columns {missing} missing; use workbench.traces.to_dataframe(traces)")
        return data, {}
    traces = list(data)
    return to_dataframe(traces), {t.trace_id: t.prompt for t in traces}


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _legend(color: str, scale: ScaleChoice) -> str:
    name = html.escape(color)
    if scale.kind == "categorical":
        items = "".join(
            f'<span class="wb-sw" style="background:{color_for(v, scale)}"></span>{html.escape(_fmt(v))}'
            for v in scale.domain
        )
        missing = f'<span class="wb-sw" style="background:{MISSING}"></span>n/a'
        return f'<div class="wb-legend"><b>{name}</b>{items}{missing}</div>'
    stops = DIVERGING if scale.kind == "diverging" else SEQUENTIAL
    lo, hi = scale.domain
    grad = f"linear-gradient(to right,{','.join(stops)})"
    return (
        f'<div class="wb-legend"><b>{name}</b> ({scale.kind}) {_fmt(lo)}'
        f'<span class="wb-grad" style="background:{grad}"></span>{_fmt(hi)}</div>'
    )


def _tooltip(row: pd.Series, color: str) -> str:
    keys = [color] + [k for k in row.index if k not in (*_STEP_FIELDS, *_HIDDEN, color)]
    lines = [f"step {row['step_index']}: {row['text']}"] + [f"{k}: {_fmt(row[k])}" for k in keys if k in row.index]
    return html.escape("\n".join(lines), quote=True)


def steps_html(
    data: Trace | Sequence[Trace] | pd.DataFrame,
    color: str = "label_correct",
    *,
    max_traces: int = 50,
    show_prompt: bool = True,
) -> str:
    """HTML of traces with every step coloured by ``color`` (a label or score column), with a legend.

    ``data``: one trace, a list of traces, or a one-row-per-step DataFrame with ``trace_id``,
    ``step_index``, ``text`` and the ``color`` column. The first ``max_traces`` traces are shown.
    """
    df, prompts = _frame(data)
    if color not in df.columns:
        raise ValueError(f"steps_html: no column {color!r} to colour by; have {sorted(df.columns)}")
    scale = choose_scale(df[color])
    order = list(dict.fromkeys(df["trace_id"]))
    parts = [_CSS, '<div class="wb-steps">', _legend(color, scale)]
    for trace_id in order[:max_traces]:
        rows = df[df["trace_id"] == trace_id].sort_values("step_index")
        first = rows.iloc[0]
        head = f"trace {html.escape(str(trace_id))}"
        if "answer_correct" in rows and pd.notna(first.get("answer_correct")):
            verdict = "right" if first["answer_correct"] else "wrong"
            head += f" · answer {html.escape(_fmt(first.get('answer')))} ({verdict})"
        parts.append(f'<div class="wb-trace"><div class="wb-head">{head}</div>')
        if show_prompt and trace_id in prompts:
            parts.append(f'<div class="wb-prompt">{html.escape(prompts[trace_id].strip())}</div>')
        for _, row in rows.iterrows():
            bg = color_for(row[color], scale)
            parts.append(
                f'<span class="wb-step" style="background:{bg};color:{text_color(bg)}" title="{_tooltip(row, color)}">'
                f'<span class="wb-idx">{int(row["step_index"])}</span>{html.escape(str(row["text"]))}</span>'
            )
        parts.append("</div>")
    if len(order) > max_traces:
        parts.append(f'<div class="wb-head">… {len(order) - max_traces} more traces not shown</div>')
    parts.append("</div>")
    return "".join(parts)


@dataclass(frozen=True)
class TraceView:
    """Traces shown as coloured steps in a notebook cell (``TraceView(traces, "label_spae_phi")``)."""

    traces: Trace | Sequence[Trace]
    """One trace or several."""
    color: str = "label_correct"
    """The label or score that colours each step."""
    max_traces: int = 50
    """Traces shown at most."""

    def _repr_html_(self) -> str:
        return steps_html(self.traces, self.color, max_traces=self.max_traces)


@dataclass(frozen=True)
class ScoredSteps:
    """A scored-step table (one row per step, scores as columns) shown as coloured steps plus its numbers."""

    frame: pd.DataFrame
    """``trace_id``, ``step_index``, ``text`` and score columns."""
    score: str
    """The score column that colours each step."""
    max_traces: int = 20
    """Traces shown at most."""
    columns: tuple[str, ...] = field(default=())
    """Columns of the table printed under the steps (default: step, text and every numeric column)."""

    def _repr_html_(self) -> str:
        df = self.frame
        cols = list(self.columns) or ["trace_id", "step_index", "text"] + [
            c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and c not in ("step_index", *_HIDDEN)
        ]
        shown = df[df["trace_id"].isin(list(dict.fromkeys(df["trace_id"]))[: self.max_traces])]
        table = shown[cols].to_html(index=False, float_format=lambda v: f"{v:.3f}", escape=True, max_rows=200)
        return steps_html(df, self.score, max_traces=self.max_traces) + table


def register_notebook_display() -> bool:
    """Make IPython show a bare ``Trace`` as coloured steps; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None:
        return False
    formatter = ip.display_formatter.formatters["text/html"]
    formatter.for_type(Trace, lambda t: steps_html(t, "label_correct" if _has(t, "correct") else "kind"))
    return True


def _has(trace: Trace, label: str) -> bool:
    return any(label in s.labels for s in trace.steps)
