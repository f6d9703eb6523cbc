"""Notebook panels (ipywidgets): TraceViewer and the other research panels, each a thin wiring of controls.

This is ipywidgets' one owner module. Every panel takes its objects as arguments (traces, tables, a model,
fitted probes; never globals), is a widget itself (``display(panel)`` or leave it as a cell's last
expression), and keeps the computing elsewhere: what a panel shows comes from the pure functions in
``workbench.viz.widgets_*`` modules and charts from ``workbench.viz.charts``. Long work runs in a
:class:`~workbench.viz.widgets_jobs.Job` thread so the kernel keeps answering the controls (cancel
included), and any error is shown inside the panel (class ``wb-error``) instead of leaving it dead.

Each panel carries a CSS class (``wb-trace-viewer``, ...) so browser tests and users' styles can find it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import pandas as pd

from workbench.traces.types import Step, Trace
from workbench.viz import widgets_traces as wt
from workbench.viz.widgets_jobs import Job

__all__ = ["TraceViewer"]

LatentSource = pd.DataFrame | Callable[[Trace, Step], pd.DataFrame]


def _select_first(options: Sequence[tuple[str, object]]) -> object:
    return options[0][1] if options else None


class TraceViewer(W.VBox):
    """Browse traces step by step: filter, colour steps by a label or score, inspect one step.

    Args:
        traces: the traces to browse (unique ``trace_id``).
        scores: per-step numeric columns keyed by ``trace_id, step_index`` (probe/head scores, soft labels).
        latents: top SAE latents per step: a table with ``trace_id, step_index, latent, activation``, or a
            function ``(trace, step) -> table`` (run in a background thread when a step is selected).
        dependencies: attribution edges ``trace_id, source, target, weight`` (``target`` depends on ``source``).
        colour_by: the initial colouring column (a label or a score).
        top_k: latents shown per step.
    """

    def __init__(
        self,
        traces: Sequence[Trace],
        *,
        scores: pd.DataFrame | None = None,
        latents: LatentSource | None = None,
        dependencies: pd.DataFrame | None = None,
        colour_by: str = "correct",
        top_k: int = 5,
    ) -> None:
        if not traces:
            raise ValueError("TraceViewer: traces is empty; pass at least one trace")
        self.traces = {t.trace_id: t for t in traces}
        self.frame = wt.step_frame(list(traces), scores)
        self.score_names = wt.score_columns(self.frame)
        self.latents, self.dependencies, self.top_k = latents, dependencies, top_k
        self._job: Job | None = None
        labels = wt.label_columns(self.frame)
        colourable = labels + self.score_names
        self.answer = W.Dropdown(options=wt.ANSWER_CHOICES, value="all", description="answer")
        self.label = W.Dropdown(options=[None, *labels], value=None, description="label")
        self.label_value = W.Dropdown(options=[], description="is")
        self.score = W.Dropdown(options=[None, *self.score_names], value=None, description="score")
        self.min_score = W.FloatText(value=0.5, description="≥")
        self.colour_by = W.Dropdown(
            options=colourable, value=colour_by if colour_by in colourable else colourable[0], description="colour"
        )
        self.trace_select = W.Dropdown(description="trace", layout=W.Layout(width="420px"))
        self.step_select = W.Select(description="step", rows=8, layout=W.Layout(width="420px"))
        self.trace_view = W.HTML()
        self.detail = W.HTML()
        self.status = W.HTML()
        for w in (self.answer, self.label_value, self.score, self.min_score):
            w.observe(self._on_filter, names="value")
        self.label.observe(self._on_label, names="value")
        self.colour_by.observe(self._on_step, names="value")
        self.trace_select.observe(self._on_trace, names="value")
        self.step_select.observe(self._on_step, names="value")
        filters = W.HBox([self.answer, self.label, self.label_value, self.score, self.min_score])
        picker = W.VBox([self.colour_by, self.trace_select, self.step_select])
        super().__init__(
            [filters, W.HBox([picker, self.trace_view]), self.detail, self.status],
        )
        self.add_class("wb-trace-viewer")
        self._on_filter()

    # ---- state -------------------------------------------------------------------------------------
    @property
    def current_filter(self) -> wt.TraceFilter:
        return wt.TraceFilter(
            answer=self.answer.value,
            label=self.label.value,
            label_value=self.label_value.value,
            score=self.score.value,
            min_score=float(self.min_score.value),
        )

    @property
    def trace(self) -> Trace | None:
        return self.traces.get(self.trace_select.value)

    @property
    def step(self) -> Step | None:
        t, i = self.trace, self.step_select.value
        return t.steps[i] if t is not None and i is not None and i < len(t.steps) else None

    # ---- callbacks (each shows its error in the panel) ---------------------------------------------
    def _guard(self, where: str, fn: Callable[[], None]) -> None:
        self.status.value = ""
        try:
            fn()
        except Exception as exc:
            self.status.value = wt.error_html(where, exc)

    def _on_label(self, _change=None) -> None:
        def run():
            col = self.label.value
            values = [] if col is None else sorted(self.frame[col].astype(str).unique())
            self.label_value.options = values
            self.label_value.value = values[0] if values else None
            self._on_filter()

        self._guard("label filter", run)

    def _on_filter(self, _change=None) -> None:
        def run():
            ids = wt.filter_traces(self.frame, self.current_filter)
            options = wt.trace_choices(list(self.traces.values()), ids)
            keep = self.trace_select.value if self.trace_select.value in ids else _select_first(options)
            self.trace_select.options = options
            self.trace_select.value = keep
            self._on_trace()

        self._guard("filter", run)

    def _on_trace(self, _change=None) -> None:
        def run():
            t = self.trace
            options = [] if t is None else [(f"{s.index:2d}  {s.text}", s.index) for s in t.steps]
            self.step_select.options = options
            self.step_select.value = _select_first(options)
            self._on_step()

        self._guard("trace", run)

    def _on_step(self, _change=None) -> None:
        self._guard("step", self._render)

    def _render(self) -> None:
        t, s = self.trace, self.step
        if t is None:
            self.trace_view.value, self.detail.value = "<i>no trace matches the filter</i>", ""
            return
        rows = self.frame[self.frame["trace_id"] == t.trace_id].sort_values("step_index")
        colours = wt.step_colours(rows[self.colour_by.value])
        self.trace_view.value = wt.trace_html(t, colours, None if s is None else s.index)
        if s is None:
            self.detail.value = ""
            return
        latents = self.latents
        if callable(latents):
            self.detail.value = self._detail(t, s, None) + "<i class='wb-pending'>computing top latents…</i>"
            self._start_latents(t, s)
        else:
            self.detail.value = self._detail(t, s, latents)

    def _detail(self, t: Trace, s: Step, latents: pd.DataFrame | None) -> str:
        rows = self.frame[(self.frame["trace_id"] == t.trace_id) & (self.frame["step_index"] == s.index)]
        lat = None if latents is None else _for_step(latents, t.trace_id, s.index).head(self.top_k)
        deps = None if self.dependencies is None else self.dependencies[self.dependencies["trace_id"] == t.trace_id]
        return wt.step_detail_html(t, s, rows.iloc[0] if len(rows) else None, lat, deps, self.score_names)

    def _start_latents(self, t: Trace, s: Step) -> None:
        if self._job is not None:
            self._job.cancel()
        key = (t.trace_id, s.index)

        def done(table: pd.DataFrame) -> None:
            if (self.trace_select.value, self.step_select.value) == key:  # still the selected step
                self.detail.value = self._detail(t, s, table.assign(trace_id=t.trace_id, step_index=s.index))

        def failed(exc: BaseException) -> None:
            self.detail.value = self._detail(t, s, None)
            self.status.value = wt.error_html("top latents", exc)

        self._job = Job(lambda ctx: self.latents(t, s), on_done=done, on_error=failed).start()


def _for_step(table: pd.DataFrame, trace_id: str, step_index: int) -> pd.DataFrame:
    rows = table[(table["trace_id"] == trace_id) & (table["step_index"] == step_index)]
    return rows.sort_values("activation", ascending=False) if "activation" in rows.columns else rows
