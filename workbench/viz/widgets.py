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
from workbench.viz import charts
from workbench.viz import widgets_probes as wp
from workbench.viz import widgets_traces as wt
from workbench.viz.widgets_jobs import Job

__all__ = ["TraceViewer", "ProbeLab", "FeatureBrowser", "SteeringLab", "UncertaintyMonitor"]

LatentSource = pd.DataFrame | Callable[[Trace, Step], pd.DataFrame]


def _select_first(options: Sequence[tuple[str, object]]) -> object:
    return options[0][1] if options else None


class _Guarded:
    """For panels with a ``status`` HTML widget: run a callback and show its error there instead of raising."""

    status: W.HTML

    def _guard(self, where: str, fn: Callable[[], None]) -> None:
        self.status.value = ""
        try:
            fn()
        except Exception as exc:
            self.status.value = wt.error_html(where, exc)


class TraceViewer(_Guarded, W.VBox):
    """Browse traces step by step: filter, colour steps by a label or score, inspect one step.

    Args:
        traces: the traces to browse (unique ``trace_id``).
        scores: per-step numeric columns keyed by ``trace_id, step_index`` (probe/head scores, soft labels).
        latents: top SAE latents per step: a table with ``trace_id, step_index, latent, activation``, or a
            function ``(trace, step) -> table`` (run in a background thread when a step is selected).
        dependencies: attribution edges ``trace_id, source, target, weight`` (``target`` depends on ``source``),
            or attribution's own long tables (``trace_id, q, k`` and a weight such as ``kl``).
        dependency_weight: the weight column of ``dependencies`` (default: found by name).
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
        dependency_weight: str | None = None,
        colour_by: str = "correct",
        top_k: int = 5,
    ) -> None:
        if not traces:
            raise ValueError("TraceViewer: traces is empty; pass at least one trace")
        self.traces = {t.trace_id: t for t in traces}
        self.frame = wt.step_frame(list(traces), scores)
        self.score_names = wt.score_columns(self.frame)
        if dependencies is not None:
            dependencies = wt.dependency_edges(dependencies, dependency_weight)
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


def _show_chart(out: W.Output, chart) -> None:
    """Replace ``out``'s content with ``chart`` (safe from a worker thread: no ``with out`` context)."""
    out.outputs = ()
    out.append_display_data(chart)


class _Progress(W.HBox):
    """A progress bar, its message, and a cancel button wired to the running job."""

    def __init__(self) -> None:
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="240px"))
        self.message = W.Label("")
        self.cancel = W.Button(description="cancel", icon="stop", disabled=True)
        super().__init__([self.bar, self.message, self.cancel])
        self.add_class("wb-progress")

    def update(self, fraction: float, message: str) -> None:
        self.bar.value, self.message.value = fraction, message


class ProbeLab(W.VBox):
    """Train probes on a store: pick a target, layers and probe kind; fit in the background; see the charts.

    The layer curve (held-out ROC-AUC per layer, validation and test) and the reliability diagram of the best
    validation layer (on test steps) appear when the job finishes; ``result`` then holds the tables. The kernel
    stays responsive while it trains, and ``cancel`` stops it between layers.

    Args:
        store: a :class:`~workbench.store.StepStore` with captured step vectors and label columns.
        target: the initial target column (default: ``label_correct`` when present).
        pooling: the read-out pooling (must be in the store).
    """

    def __init__(self, store, *, target: str | None = None, pooling: str = "boundary") -> None:
        charts.enable_offline()
        self.store, self.result, self.job = store, None, None
        targets = wp.probe_targets(store.index)
        if not targets:
            raise ValueError("ProbeLab: the store index has no label_* column to probe; add labels first")
        default = target or ("label_correct" if "label_correct" in targets else targets[0])
        self.target = W.Dropdown(options=targets, value=default, description="target")
        self.hooks = W.SelectMultiple(options=store.hooks, value=tuple(store.hooks), description="layers", rows=4)
        self.pooling = W.Dropdown(options=store.poolings, value=pooling, description="pooling")
        self.kind = W.ToggleButtons(options=wp.PROBE_KINDS, value="linear", description="probe")
        self.train = W.Button(description="train", icon="play", button_style="primary")
        self.progress = _Progress()
        self.curve, self.reliability = W.Output(), W.Output()
        self.status = W.HTML()
        self.train.on_click(lambda _b: self.start())
        self.progress.cancel.on_click(lambda _b: self.cancel())
        controls = W.HBox([W.VBox([self.target, self.pooling, self.kind]), self.hooks])
        super().__init__([controls, W.HBox([self.train, self.progress]), W.HBox([self.curve, self.reliability]),
                          self.status])  # fmt: skip
        self.add_class("wb-probe-lab")

    def start(self) -> Job:
        """Start training in a background thread (what the train button does); returns the job."""
        self.status.value = ""
        self.train.disabled, self.progress.cancel.disabled = True, False
        target, hooks, pooling, kind = self.target.value, list(self.hooks.value), self.pooling.value, self.kind.value

        def work(ctx):
            return wp.run_probe_sweep(self.store, target, hooks, pooling=pooling, kind=kind, ctx=ctx)

        self.job = Job(work, on_progress=self.progress.update, on_done=self._done, on_error=self._failed,
                       on_cancel=self._cancelled).start()  # fmt: skip
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _finish(self) -> None:
        self.train.disabled, self.progress.cancel.disabled = False, True

    def _done(self, result: wp.ProbeLabResult) -> None:
        self.result = result
        try:
            metric = "roc_auc" if "roc_auc" in result.table else _first_metric(result.table)
            _show_chart(self.curve, charts.probe_layer_sweep(result.table.assign(method=result.table["split"]), metric))
            if len(result.scores):
                best = result.best_layer(metric)
                _show_chart(self.reliability, charts.reliability_diagram(wp.reliability_table(result.scores, best)))
        except Exception as exc:
            self.status.value = wt.error_html("charts", exc)
        self._finish()

    def _failed(self, exc: BaseException) -> None:
        self.status.value = wt.error_html("training", exc)
        self.progress.update(0.0, "failed")
        self._finish()

    def _cancelled(self) -> None:
        self.progress.message.value = "cancelled"
        self._finish()


def _first_metric(table: pd.DataFrame) -> str:
    skip = {"hook", "layer", "pooling", "target", "split", "kind"}
    return next(c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c]))


class FeatureBrowser(_Guarded, W.VBox):
    """Look at one SAE latent at a time: rank latents by AUROC against a label, pick one, see its top steps,
    its activation histogram, which label values its steps have, and where it sits in the decoder map.

    Args:
        sae: a trained step SAE (:class:`workbench.sae.TrainedSAE`), on a hook and pooling of ``store``.
        store: the store to encode (every captured step, or ``rows``).
        label: the label column latents are ranked against (``label_*`` columns of the store index).
        rows: a slice of ``store.index`` to encode (e.g. held-out problems); default every captured step.
        k: top steps shown.
    """

    def __init__(self, sae, store, *, label: str = "label_correct", rows: pd.DataFrame | None = None, k: int = 8):
        from workbench.sae import decoder_map, encode_store  # sae-lens loads slowly: only when this panel is used
        from workbench.viz import widgets_features as wf

        self._wf, self._quiet = wf, False
        charts.enable_offline()
        self.acts = encode_store(sae, store, rows=rows)
        self.k = k
        self.points = decoder_map(sae.decoder, method="pca")
        labels = [c for c in self.acts.steps.columns if c.startswith("label_") and self.acts.steps[c].nunique() > 1]
        if label not in labels:
            raise ValueError(f"FeatureBrowser: label={label!r} is not a label with two values; choose from {labels}")
        self.label = W.Dropdown(options=labels, value=label, description="label")
        self.positive = W.Dropdown(description="positive")
        self.latent = W.Dropdown(description="latent", layout=W.Layout(width="320px"))
        self.top_steps, self.histogram, self.association = W.HTML(), W.HTML(), W.HTML()
        self.map = W.Output()
        self.status = W.HTML()
        self.label.observe(self._on_label, names="value")
        self.positive.observe(self._on_rank, names="value")
        self.latent.observe(self._on_latent, names="value")
        super().__init__(
            [
                W.HBox([self.label, self.positive, self.latent]),
                self.top_steps,
                W.HBox([self.histogram, self.association, self.map]),
                self.status,
            ]
        )
        self.add_class("wb-feature-browser")
        self._on_label()

    def _set_quietly(self, control: W.ValueWidget, options: list, value) -> None:
        """Change a picker without firing its observer (the caller renders once, afterwards)."""
        self._quiet = True
        try:
            control.options, control.value = options, value
        finally:
            self._quiet = False

    def _on_label(self, _change=None) -> None:
        def run():
            values = sorted(self.acts.steps[self.label.value].dropna().unique(), key=str)
            self._set_quietly(self.positive, [(str(v), v) for v in values], True if True in values else values[0])
            self._on_rank()

        self._guard("label", run)

    def _on_rank(self, _change=None) -> None:
        def run():
            positive = None if self.positive.value is True else self.positive.value
            self.ranked = self._wf.rank_latents(self.acts, self.label.value, positive)
            options = self._wf.latent_choices(self.ranked)
            self._set_quietly(self.latent, options, options[0][1] if options else None)
            self._on_latent()

        if not self._quiet:
            self._guard("ranking", run)

    def _on_latent(self, _change=None) -> None:
        if self._quiet:
            return

        def run():
            j = self.latent.value
            if j is None:
                return
            self.top_steps.value = self._wf.top_steps_html(self.acts, j, self.k, (self.label.value,))
            self.histogram.value = self._wf.histogram_html(self._wf.latent_values(self.acts, j))
            self.association.value = self._wf.association_html(self.acts, j, self.label.value)
            _show_chart(self.map, charts.decoder_geometry(self._wf.map_points(self.points, j)))

        self._guard("latent", run)


class SteeringLab(W.VBox):
    """Steer generation: pick a vector and a problem, drag α, compare unsteered and steered traces side by
    side; *run sweep* runs the α grid with an equal-norm random control and draws the dose-response chart.

    Args:
        model: the model to steer (a :class:`~workbench.models.WorkbenchModel`).
        vectors: named steering vectors (:class:`~workbench.steering.SteeringVector`: diff-of-means, an SAE
            latent's decoder column, a behaviour vector, a probe direction).
        problems: toy problems to generate for (the sweep uses all of them; the pair view one at a time).
        alphas: the sweep's α grid (the slider spans it).
    """

    def __init__(self, model, vectors: dict, problems: Sequence, *, alphas: Sequence[float] = (0.0, 1.0, 2.0)):
        from workbench.viz import widgets_steering as ws  # steering loads only when this panel is used

        if not vectors or not problems:
            raise ValueError("SteeringLab: give at least one vector and one problem")
        charts.enable_offline()
        self._ws, self.model, self.vectors, self.problems = ws, model, dict(vectors), list(problems)
        self.alphas, self.pair, self.rows, self.summary, self.job = tuple(alphas), None, None, None, None
        self.vector = W.Dropdown(options=list(self.vectors), description="vector")
        choices = [(p.problem_id, i) for i, p in enumerate(self.problems)]
        self.problem = W.Dropdown(options=choices, description="problem")
        lo, hi = min(min(alphas), -1.0), max(max(alphas), 1.0)
        self.alpha = W.FloatSlider(value=max(alphas), min=lo, max=hi, step=0.25, description="α")
        self.seed = W.IntText(value=0, description="seed", layout=W.Layout(width="160px"))
        self.positions = W.Dropdown(options=["boundary", "all"], value="boundary", description="edit at")
        self.gen_button = W.Button(description="generate", icon="play", button_style="primary")
        self.sweep_button = W.Button(description="run sweep", icon="line-chart")
        self.progress = _Progress()
        self.side_by_side, self.chart, self.status = W.HTML(), W.Output(), W.HTML()
        self.gen_button.on_click(lambda _b: self.generate())
        self.sweep_button.on_click(lambda _b: self.sweep())
        self.progress.cancel.on_click(lambda _b: self.job is not None and self.job.cancel())
        super().__init__([W.HBox([self.vector, self.problem, self.seed]), W.HBox([self.alpha, self.positions]),
                          W.HBox([self.gen_button, self.sweep_button, self.progress]),
                          self.side_by_side, self.chart, self.status])  # fmt: skip
        self.add_class("wb-steering-lab")

    def _run(self, work, done, what: str) -> Job:
        self.status.value = ""
        self.gen_button.disabled = self.sweep_button.disabled = True
        self.progress.cancel.disabled = False

        def finish(*_):
            self.gen_button.disabled = self.sweep_button.disabled = False
            self.progress.cancel.disabled = True

        def ok(result):
            try:
                done(result)
            except Exception as exc:
                self.status.value = wt.error_html(what, exc)
            finish()

        def failed(exc):
            self.status.value = wt.error_html(what, exc)
            finish()

        self.job = Job(work, on_progress=self.progress.update, on_done=ok, on_error=failed,
                       on_cancel=lambda: (self.progress.update(0.0, "cancelled"), finish())).start()  # fmt: skip
        return self.job

    def generate(self) -> Job:
        """Sample the chosen problem unsteered and steered at the slider's α (background thread)."""
        vec, prob = self.vectors[self.vector.value], self.problems[self.problem.value]
        alpha, seed, at = float(self.alpha.value), int(self.seed.value), self.positions.value

        def work(ctx):
            ctx.progress(0.0, "generating")
            return self._ws.steered_pair(self.model, vec, prob, alpha, seed=seed, positions=at)

        def done(pair):
            self.pair, self.side_by_side.value = pair, self._ws.pair_html(pair)
            self.progress.update(1.0, "done")

        return self._run(work, done, "generation")

    def sweep(self) -> Job:
        """Run the α grid on every problem with the random control; draw the dose-response chart."""
        vec, at = self.vectors[self.vector.value], self.positions.value

        def work(ctx):
            return self._ws.dose_sweep(self.model, vec, self.problems, self.alphas, ctx=ctx, positions=at)

        def done(rows):
            self.rows, self.summary = rows, self._ws.dose_table(rows)
            _show_chart(self.chart, charts.dose_response(self.summary))

        return self._run(work, done, "sweep")


class UncertaintyMonitor(W.VBox):
    """Generate live and watch each step's uncertainty-head score appear the moment the step is written.

    Args:
        model: the generating model.
        head: a causal uncertainty head on hidden-state features (:func:`workbench.heads.load_head`).
        prompts: prompts to choose from (strings, or toy problems with a ``prompt``).
        max_new_tokens: longest completion.
    """

    def __init__(self, model, head, prompts: Sequence, *, max_new_tokens: int = 160) -> None:
        from workbench.viz import widgets_monitor as wm  # heads load only when this panel is used

        if not prompts:
            raise ValueError("UncertaintyMonitor: prompts is empty; give at least one prompt")
        self._wm, self.model, self.head, self.max_new_tokens = wm, model, head, max_new_tokens
        texts = [getattr(p, "prompt", p) for p in prompts]
        self.prompt = W.Dropdown(options=[(t.strip()[:60], t) for t in texts], description="prompt")
        self.seed = W.IntText(value=0, description="seed", layout=W.Layout(width="160px"))
        self.button = W.Button(description="generate", icon="play", button_style="primary")
        self.progress = _Progress()
        self.steps, self.status = W.HTML(), W.HTML()
        self.records: list[dict] = []
        self.job: Job | None = None
        self.button.on_click(lambda _b: self.start())
        self.progress.cancel.on_click(lambda _b: self.job is not None and self.job.cancel())
        super().__init__([W.HBox([self.prompt, self.seed]), W.HBox([self.button, self.progress]), self.steps,
                          self.status])  # fmt: skip
        self.add_class("wb-uncertainty-monitor")

    def _on_step(self, record: dict) -> None:  # called from inside generate, in the worker thread
        self.records.append(record)
        self.steps.value = self._wm.live_steps_html(self.records)
        self.progress.message.value = f"{len(self.records)} steps scored"

    def start(self) -> Job:
        """Generate for the chosen prompt in a background thread, showing each step as it is scored."""
        from workbench.traces.generate import GenerationConfig

        self.records, self.steps.value, self.status.value = [], "", ""
        self.button.disabled, self.progress.cancel.disabled = True, False
        cfg = GenerationConfig(temperature=1.0, max_new_tokens=self.max_new_tokens, seed=int(self.seed.value))
        prompt = self.prompt.value

        def work(ctx):
            return self._wm.live_generate(self.model, self.head, prompt, self._on_step, config=cfg, ctx=ctx)

        def finish(message: str, error: BaseException | None = None) -> None:
            self.progress.message.value = f"{len(self.records)} steps scored; {message}"
            if error is not None:
                self.status.value = wt.error_html("generation", error)
            self.button.disabled, self.progress.cancel.disabled = False, True

        self.job = Job(work, on_done=lambda _r: finish("done"), on_error=lambda e: finish("failed", e),
                       on_cancel=lambda: finish("cancelled")).start()  # fmt: skip
        return self.job
