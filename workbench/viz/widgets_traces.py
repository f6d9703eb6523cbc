"""What the TraceViewer shows, as plain data and HTML: one row per step, filters, colours, step details.

The widget (:class:`workbench.viz.widgets.TraceViewer`) only wires controls to these functions, so
everything it displays is computed here and tested without a browser or a kernel.

Inputs are tidy tables keyed by ``(trace_id, step_index)``:

- ``scores``: any numeric per-step columns (probe or uncertainty-head scores, rollout soft labels, ...);
- ``latents``: one row per (step, SAE latent) with ``latent`` and ``activation`` (top-k per step);
- ``dependencies``: one row per (later step ``target`` depends on earlier step ``source``) with a
  ``weight`` (attribution: step-to-step attention or resampling importance).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.traces.types import Step, Trace
from workbench.viz.scales import choose_scale, color_for, text_color

__all__ = [
    "KEY",
    "TraceFilter",
    "step_frame",
    "filter_traces",
    "trace_choices",
    "step_colours",
    "trace_html",
    "step_detail_html",
    "dependency_edges",
    "error_html",
]

KEY = ["trace_id", "step_index"]
"""The columns that identify a step in every table."""

ANSWER_CHOICES = ("all", "right", "wrong")


@dataclass(frozen=True, kw_only=True)
class TraceFilter:
    """Which traces the viewer lists."""

    answer: str = "all"
    """Final answer: ``all``, ``right`` or ``wrong``."""
    label: str | None = None
    """Keep traces with a step whose ``label`` column equals ``label_value`` (None: no label filter)."""
    label_value: str | None = None
    """The value to match, compared as text (``True``, ``wait``, ...)."""
    score: str | None = None
    """Keep traces with a step whose ``score`` column is at least ``min_score`` (None: no score filter)."""
    min_score: float = 0.0
    """Threshold for ``score``."""

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_CHOICES:
            raise ValueError(f"TraceFilter.answer={self.answer!r}: use one of {ANSWER_CHOICES}")


def step_frame(traces: Sequence[Trace], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per step: keys, text, kind, the trace's answer correctness, every label, every score."""
    ids = [t.trace_id for t in traces]
    if len(set(ids)) != len(ids):
        raise ValueError("traces: trace ids repeat; every trace needs a unique trace_id")
    rows = [
        {
            "trace_id": t.trace_id,
            "step_index": s.index,
            "text": s.text,
            "kind": s.kind,
            "answer_correct": t.answer_correct,
            **{k: v for k, v in s.labels.items() if k not in ("text", "kind", *KEY)},
        }
        for t in traces
        for s in t.steps
    ]
    frame = pd.DataFrame(rows, columns=[*KEY, "text", "kind", "answer_correct"] if not rows else None)
    if scores is None or scores.empty:
        return frame
    missing = [c for c in KEY if c not in scores.columns]
    if missing:
        raise ValueError(f"scores: missing key columns {missing}; give one row per step with {KEY}")
    clash = sorted(set(scores.columns) & set(frame.columns) - set(KEY))
    if clash:
        raise ValueError(f"scores: columns {clash} clash with step labels; rename them (e.g. 'probe_{clash[0]}')")
    return frame.merge(scores, on=KEY, how="left")


def score_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns other than keys and booleans (candidates for colouring and the score filter)."""
    out = []
    for c in frame.columns:
        if c in KEY or c == "answer_correct":
            continue
        col = frame[c].dropna()
        if len(col) and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            out.append(c)
    return out


def label_columns(frame: pd.DataFrame) -> list[str]:
    """Columns with few distinct values (booleans, kinds): candidates for the label filter and colouring."""
    skip = {*KEY, "text", *score_columns(frame)}
    return [c for c in frame.columns if c not in skip and frame[c].astype(str).nunique() <= 12]


def filter_traces(frame: pd.DataFrame, flt: TraceFilter) -> list[str]:
    """Trace ids (in first-seen order) that pass ``flt``."""
    keep = pd.Series(True, index=frame.index)
    if flt.answer != "all":
        keep &= frame["answer_correct"].astype(object).eq(flt.answer == "right")
    ids = frame.loc[keep, "trace_id"]
    if flt.label is not None:
        if flt.label not in frame.columns:
            raise ValueError(f"TraceFilter.label={flt.label!r}: not a column; choose from {label_columns(frame)}")
        hit = frame[flt.label].astype(str).eq(str(flt.label_value)) & keep
        ids = ids[ids.isin(frame.loc[hit, "trace_id"])]
    if flt.score is not None:
        if flt.score not in frame.columns:
            raise ValueError(f"TraceFilter.score={flt.score!r}: not a column; choose from {score_columns(frame)}")
        hit = pd.to_numeric(frame[flt.score], errors="coerce").ge(flt.min_score) & keep
        ids = ids[ids.isin(frame.loc[hit, "trace_id"])]
    return list(dict.fromkeys(ids))


def trace_choices(traces: Sequence[Trace], ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(label, trace_id)`` options for a dropdown: problem, answer, steps."""
    by_id = {t.trace_id: t for t in traces}
    mark = {True: "right", False: "wrong", None: "?"}
    return [(f"{i}  [{mark[by_id[i].answer_correct]}, {len(by_id[i].steps)} steps]", i) for i in ids]


def step_colours(values: pd.Series) -> list[str]:
    """A background colour per value, on the scale the charts use for the same column (see ``scales``)."""
    scale = choose_scale(values)
    return [color_for(v, scale) for v in values.tolist()]


def trace_html(trace: Trace, colours: Sequence[str], selected: int | None = None) -> str:
    """The prompt, then every step on its own line with its colour; the selected step outlined."""
    parts = [
        f"<div class='wb-trace' data-trace='{html.escape(trace.trace_id)}' "
        "style='font-family:monospace;line-height:1.7'>",
        f"<div class='wb-prompt' style='color:#555'>{html.escape(trace.prompt.strip())}</div>",
    ]
    if len(colours) != len(trace.steps):
        raise ValueError(f"trace_html: {len(colours)} colours for {len(trace.steps)} steps; give one per step")
    for step, colour in zip(trace.steps, colours, strict=True):
        outline = "outline:3px solid #222222;outline-offset:1px;" if step.index == selected else ""
        parts.append(
            f"<div class='wb-step' data-step='{step.index}' "
            f"style='background:{colour};color:{text_color(colour)};{outline}"
            f"padding:0 4px;margin:1px 0'><span style='opacity:0.6'>{step.index:2d}</span> "
            f"{html.escape(step.text)}</div>"
        )
    answer = {True: "right", False: "wrong", None: "unknown"}[trace.answer_correct]
    parts.append(f"<div style='color:#555'>answer {html.escape(str(trace.answer))} ({answer})</div></div>")
    return "".join(parts)


def _table(rows: Sequence[tuple[str, object]], title: str) -> str:
    cell = "<td style='padding:0 8px 0 0'>"
    body = "".join(f"<tr>{cell}{html.escape(str(k))}</td>{cell}{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    body = body or f"<tr>{cell}<i>none</i></td></tr>"
    return (
        f"<div class='wb-detail-{title.split()[0].lower()}'><b>{html.escape(title)}</b>"
        f"<table style='font-size:12px;line-height:1.3'>{body}</table></div>"
    )


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float | np.floating) else str(v)


def step_detail_html(
    trace: Trace,
    step: Step,
    row: pd.Series | None,
    latents: pd.DataFrame | None = None,
    dependencies: pd.DataFrame | None = None,
    scores: Sequence[str] = (),
) -> str:
    """Everything known about one step: labels, scores, top latents, what it depends on and what depends on it."""
    head = (
        f"<div class='wb-step-detail' data-step='{step.index}'><b>step {step.index}: {html.escape(step.text)}</b>"
        "<div style='display:flex;gap:28px;align-items:flex-start'>"
    )
    parts = [head, _table(list({"kind": step.kind, **step.labels}.items()), "labels")]
    if row is not None and scores:
        parts.append(_table([(c, row[c]) for c in scores if c in row.index], "scores"))
    if latents is not None and not latents.empty:
        cols = [c for c in ("latent", "activation", "description") if c in latents.columns]
        rows = [(r["latent"], ", ".join(_fmt(r[c]) for c in cols[1:])) for _, r in latents.iterrows()]
        parts.append(_table(rows, "top SAE latents"))
    if dependencies is not None and dependencies.empty:
        parts.append("<div class='wb-detail-depends'><b>dependencies</b><br><i>not computed for this trace</i></div>")
    elif dependencies is not None:
        text = {s.index: s.text for s in trace.steps} | {-1: "(prompt)"}
        earlier = dependencies[dependencies["target"] == step.index].sort_values("weight", ascending=False)
        later = dependencies[dependencies["source"] == step.index].sort_values("weight", ascending=False)
        parts.append(
            _table([(f"{r.source} {text.get(r.source, '')}", r.weight) for r in earlier.itertuples()], "depends on")
        )
        parts.append(
            _table([(f"{r.target} {text.get(r.target, '')}", r.weight) for r in later.itertuples()], "used by")
        )
    parts.append("</div></div>")
    return "".join(parts)


def dependency_edges(table: pd.DataFrame, weight: str | None = None) -> pd.DataFrame:
    """Attribution results as edges ``trace_id, source, target, weight`` (``target`` depends on ``source``).

    Takes either that form or attribution's long format (``q`` the later step, ``k`` the earlier one, step
    ``-1`` the prompt) with a weight column: ``weight`` or the first of ``kl, kl_read, importance, value`` with values.
    """
    if {"source", "target"} <= set(table.columns):
        edges = table.rename(columns={weight: "weight"}) if weight else table
    elif {"q", "k"} <= set(table.columns):
        found = [c for c in ("kl", "kl_read", "importance", "value") if c in table.columns and table[c].notna().any()]
        col = weight or (found[0] if found else None)
        if col is None:
            raise ValueError(f"dependencies: no weight column among {list(table.columns)}; pass dependency_weight")
        edges = table.rename(columns={"q": "target", "k": "source", col: "weight"})
    else:
        raise ValueError(f"dependencies: need columns source/target or q/k (attribution); have {list(table.columns)}")
    if "trace_id" not in edges.columns or "weight" not in edges.columns:
        raise ValueError(f"dependencies: need trace_id and a weight column; have {list(table.columns)}")
    edges = edges[["trace_id", "source", "target", "weight"]]
    return edges[pd.to_numeric(edges["weight"], errors="coerce").notna()].reset_index(drop=True)


def error_html(where: str, exc: BaseException) -> str:
    """A visible error box (the panel stays usable)."""
    msg = html.escape(f"{type(exc).__name__}: {exc}")
    return (
        "<div class='wb-error' style='color:#a40000;background:#fff0f0;border:1px solid #e0a0a0;padding:4px'>"
        f"<b>{html.escape(where)} failed</b>: {msg}</div>"
    )
