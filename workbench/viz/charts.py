"""Chart builders: pure functions from the workbench's tidy DataFrames to Altair charts.

This module is Altair's only owner in the package (ruff's banned-api rule). Every builder takes a
DataFrame (and column names where they vary), checks the columns it needs (a ``ValueError`` names the
missing ones and where they come from), keeps only the columns it draws, drops rows whose plotted values
are missing, and returns a chart with a title, axis titles, tooltips and a fixed size. Nothing here
computes results: the analysis packages do, and return the frames documented under each builder.

Charts display in JupyterLab with ``enable_offline()`` (the Vega bundle of vl-convert-python, no CDN) and
go into the offline report through :mod:`workbench.viz.report`.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from workbench.viz.scales import BOOL_COLORS, CATEGORICAL, DIVERGING, MISSING, SEQUENTIAL, choose_scale

__all__ = [
    "VEGALITE_VERSION",
    "enable_offline",
    "step_strip",
    "phi_curve",
    "rollout_vs_checker",
    "store_overview",
    "sae_training_curves",
    "activation_histogram",
    "decoder_geometry",
    "probe_layer_sweep",
    "reliability_diagram",
    "pr_roc_curves",
    "dose_response",
    "attribution_heatmaps",
    "dependency_graph",
]

VEGALITE_VERSION = alt.SCHEMA_VERSION.lstrip("v")
"""The Vega-Lite version Altair writes specs for (the report bundles the matching JavaScript)."""
W, H = 420, 260  # default panel size (pixels)


def enable_offline() -> None:
    """Render charts in Jupyter with the JavaScript bundled in vl-convert-python (no CDN, works offline)."""
    alt.renderers.enable("jupyter", offline=True)


# ---- shared helpers ---------------------------------------------------------------------------------


def _need(df: pd.DataFrame, cols: Sequence[str], chart: str, source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{chart}: columns {missing} missing (have {list(df.columns)}); {source}")


def _tidy(df: pd.DataFrame, cols: Sequence[str], numeric: Sequence[str] = ()) -> pd.DataFrame:
    """Only ``cols`` (existing ones), rows with finite ``numeric`` values; lists and objects as text."""
    out = df[[c for c in dict.fromkeys(cols) if c in df.columns]].copy()
    for c in numeric:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    out = out.replace([np.inf, -np.inf], np.nan).dropna(subset=list(numeric)).reset_index(drop=True)
    for c in out.columns:
        if out[c].dtype == object and c not in numeric:
            out[c] = out[c].map(lambda v: v if isinstance(v, (str, bool)) or v is None else str(v))
    return out


def _tooltips(df: pd.DataFrame, cols: Sequence[str]) -> list:
    return [alt.Tooltip(c, format=".3f") if pd.api.types.is_float_dtype(df[c]) else c for c in cols if c in df]


def _color(df: pd.DataFrame, col: str, title: str | None = None) -> alt.Color:
    """Colour encoding with the scale :func:`~workbench.viz.scales.choose_scale` picks for ``col``."""
    choice = choose_scale(df[col])
    if choice.kind == "categorical":
        if set(choice.domain) <= {True, False} and choice.domain:
            scale = alt.Scale(domain=list(choice.domain), range=[BOOL_COLORS[bool(v)] for v in choice.domain])
        else:
            scale = alt.Scale(range=list(CATEGORICAL))
        return alt.Color(f"{col}:N", scale=scale, title=title or col)
    stops = DIVERGING if choice.kind == "diverging" else SEQUENTIAL
    return alt.Color(f"{col}:Q", scale=alt.Scale(domain=list(choice.domain), range=list(stops)), title=title or col)


# ---- traces and labels ------------------------------------------------------------------------------


def step_strip(
    steps: pd.DataFrame,
    color: str = "label_correct",
    *,
    tooltip: Sequence[str] = ("text", "kind", "label_correct", "label_spae_phi", "label_rollout_soft"),
    max_traces: int = 40,
    title: str | None = None,
) -> alt.Chart:
    """One row per trace, one cell per step, coloured by any label or score (scale chosen by the data).

    ``steps``: one row per step — ``trace_id``, ``step_index`` and the ``color`` column
    (:func:`workbench.traces.to_dataframe` or a store's ``index``). The first ``max_traces`` traces are shown.
    """
    _need(steps, ["trace_id", "step_index", color], "step_strip", "use workbench.traces.to_dataframe(traces)")
    keep = steps["trace_id"].drop_duplicates().head(max_traces)
    df = _tidy(steps[steps["trace_id"].isin(keep)], ["trace_id", "step_index", color, *tooltip], ["step_index"])
    df[color] = df[color].where(df[color].notna(), None)
    n = df["trace_id"].nunique()
    return (
        alt.Chart(df)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("step_index:O", title="step"),
            y=alt.Y("trace_id:N", title="trace", sort=list(keep)),
            color=_color(df, color),
            tooltip=_tooltips(df, ["trace_id", "step_index", *tooltip, color]),
        )
        .properties(title=title or f"Steps of {n} traces, coloured by {color}", width=W, height=min(14 * n, 600))
    )


def phi_curve(
    steps: pd.DataFrame, value: str = "label_spae_phi", *, group: str = "answer_correct", saturation: float | None = 0.9
) -> alt.LayerChart:
    """The forced-answer potential Φ (SPAE) over the steps of each trace, one line per trace.

    ``steps``: ``trace_id``, ``step_index``, ``value`` (default ``label_spae_phi`` from
    :func:`workbench.labels.forced_answer_labels`); lines coloured by ``group`` when present.
    """
    _need(steps, ["trace_id", "step_index", value], "phi_curve", "label the traces with forced_answer_labels")
    has_group = group in steps.columns
    df = _tidy(steps, ["trace_id", "step_index", value, "text", group], ["step_index", value])
    enc = {
        "x": alt.X("step_index:Q", title="step", axis=alt.Axis(tickMinStep=1)),
        "y": alt.Y(f"{value}:Q", title=value, scale=alt.Scale(domain=[-1, 1])),
        "detail": "trace_id:N",
        "tooltip": _tooltips(df, ["trace_id", "step_index", "text", value, group]),
    }
    if has_group:
        df[group] = df[group].astype("string").fillna("unknown")
        scale = alt.Scale(range=list(CATEGORICAL))
        if set(df[group]) <= {"True", "False", "unknown"}:  # right answers blue, wrong red, as everywhere
            colors = [BOOL_COLORS[True], BOOL_COLORS[False], MISSING]
            scale = alt.Scale(domain=["True", "False", "unknown"], range=colors)
        enc["color"] = alt.Color(f"{group}:N", title=group, scale=scale)
    lines = alt.Chart(df).mark_line(point=True, opacity=0.5).encode(**enc)
    layers = [lines]
    if saturation is not None:
        layers.append(alt.Chart(pd.DataFrame({"y": [saturation]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q"))
    n = df["trace_id"].nunique()
    return alt.layer(*layers).properties(title=f"{value} per step ({n} traces; dashed: saturation)", width=W, height=H)


def rollout_vs_checker(steps: pd.DataFrame, soft: str = "label_rollout_soft", truth: str = "label_viable") -> alt.Chart:
    """Distribution of the rollout soft label for steps the checker calls ``truth`` = True / False.

    ``steps``: ``soft`` (from :func:`workbench.labels.rollout_labels`) and ``truth`` (checker label).
    """
    _need(steps, [soft, truth], "rollout_vs_checker", "join rollout_labels and checker labels into the traces")
    df = _tidy(steps, [soft, truth], [soft]).dropna(subset=[truth])
    name = truth.removeprefix("label_")
    df[truth] = df[truth].astype(bool).map({True: name, False: f"not {name}"})
    return (
        alt.Chart(df)
        .mark_boxplot(extent="min-max", size=40)
        .encode(
            x=alt.X(f"{truth}:N", title=f"checker: {name}"),
            y=alt.Y(f"{soft}:Q", title=f"{soft} (share of rollouts reaching the gold answer)"),
            color=alt.Color(f"{truth}:N", scale=alt.Scale(range=[BOOL_COLORS[False], BOOL_COLORS[True]]), legend=None),
            tooltip=_tooltips(df, [truth, soft]),
        )
        .properties(title=f"Rollout soft label vs checker ({len(df)} steps)", width=W // 2, height=H)
    )


def store_overview(index: pd.DataFrame) -> alt.HConcatChart:
    """Steps per kind and step lengths (tokens) of a store or trace table.

    ``index``: ``kind``, ``token_start``, ``token_end`` (a store's ``index`` or
    :func:`workbench.traces.to_dataframe`); captured status shown as colour when ``status`` exists.
    """
    _need(index, ["kind", "token_start", "token_end"], "store_overview", "use open_store(path).index")
    df = _tidy(index, ["kind", "token_start", "token_end", "status"], ["token_start", "token_end"])
    df["n_tokens"] = (df["token_end"] - df["token_start"]).astype(int)
    counts = df.groupby("kind", as_index=False).size().rename(columns={"size": "steps"})
    bars = (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("steps:Q", title="steps"),
            y=alt.Y("kind:N", title="step kind", sort="-x"),
            color=alt.Color("kind:N", scale=alt.Scale(range=list(CATEGORICAL)), legend=None),
            tooltip=["kind", "steps"],
        )
        .properties(title=f"Steps per kind ({len(df)} steps)", width=W // 2, height=H // 2)
    )
    hist = (
        alt.Chart(df[["n_tokens", "kind"]])
        .mark_bar()
        .encode(
            x=alt.X("n_tokens:Q", bin=alt.Bin(maxbins=30), title="step length (tokens)"),
            y=alt.Y("count():Q", title="steps"),
            color=alt.Color("kind:N", scale=alt.Scale(range=list(CATEGORICAL)), title="kind"),
            tooltip=["kind", alt.Tooltip("count():Q", title="steps")],
        )
        .properties(title="Step lengths", width=W // 2, height=H // 2)
    )
    return alt.hconcat(bars, hist)


# ---- step SAEs ----------------------------------------------------------------------------------------


def sae_training_curves(
    history: pd.DataFrame,
    *,
    x: str = "step",
    metrics: Sequence[str] = ("fvu", "l0", "dead_fraction"),
    series: str | None = None,
) -> alt.HConcatChart:
    """SAE training metrics over training, one panel per metric, one line per ``series`` (layer, arch).

    ``history``: ``x`` (training step or samples seen) and the ``metrics`` columns (fraction of variance
    unexplained, mean L0, dead-latent fraction; ``TrainedSAE.history``), optionally a ``series`` column.
    """
    _need(history, [x, *metrics], "sae_training_curves", "use the SAE training history table")
    df = _tidy(history, [x, *metrics, *([series] if series else [])], [x])
    panels = []
    for m in metrics:
        d = df.dropna(subset=[m])
        enc = {"x": alt.X(f"{x}:Q", title=x), "y": alt.Y(f"{m}:Q", title=m), "tooltip": _tooltips(d, [x, m])}
        if series:
            d = d.assign(**{series: d[series].astype(str)})
            enc["color"] = alt.Color(f"{series}:N", title=series, scale=alt.Scale(range=list(CATEGORICAL)))
            enc["tooltip"] = _tooltips(d, [series, x, m])
        panels.append(alt.Chart(d).mark_line().encode(**enc).properties(title=m, width=W // 2, height=H // 2))
    return alt.hconcat(*panels).properties(title="SAE training")


def activation_histogram(features: pd.DataFrame, value: str = "frequency", *, series: str | None = None) -> alt.Chart:
    """How often each latent fires: histogram of log10 activation frequency; dead latents counted in the title.

    ``features``: one row per latent, ``value`` = share of steps on which it is active (0 = dead).
    """
    _need(features, [value], "activation_histogram", "one row per latent with its activation frequency")
    df = _tidy(features, [value, *([series] if series else [])], [value])
    dead = int((df[value] <= 0).sum())
    live = df[df[value] > 0].assign(log10_frequency=lambda d: np.log10(d[value]))
    enc = {
        "x": alt.X("log10_frequency:Q", bin=alt.Bin(maxbins=40), title=f"log10 {value}"),
        "y": alt.Y("count():Q", title="latents", stack=None),
        "tooltip": [alt.Tooltip("count():Q", title="latents")],
    }
    if series:
        live[series] = live[series].astype(str)
        enc["color"] = alt.Color(f"{series}:N", title=series, scale=alt.Scale(range=list(CATEGORICAL)))
    return (
        alt.Chart(live.drop(columns=[value]))
        .mark_bar(opacity=0.7)
        .encode(**enc)
        .properties(title=f"Latent activation frequency ({len(df)} latents, {dead} dead)", width=W, height=H)
    )


def decoder_geometry(
    points: pd.DataFrame, silhouette: pd.DataFrame | None = None, *, color: str = "behaviour", layer: str = "layer"
) -> alt.HConcatChart:
    """2-D map of decoder columns (UMAP or PCA), coloured by behaviour, one panel per layer.

    ``points``: ``x``, ``y``, ``color`` (behaviour of the latent), optionally ``layer`` and ``latent``;
    ``silhouette``: ``layer``, ``silhouette`` (shown in each panel's title).
    """
    _need(points, ["x", "y", color], "decoder_geometry", "use the SAE decoder-geometry table")
    df = _tidy(points, ["x", "y", color, layer, "latent"], ["x", "y"])
    df[color] = df[color].astype("string").fillna("none")
    layers = sorted(df[layer].unique()) if layer in df else [None]
    sil = {} if silhouette is None else dict(zip(silhouette[layer], silhouette["silhouette"], strict=True))
    panels = []
    for lay in layers:
        d = df if lay is None else df[df[layer] == lay]
        name = "decoder columns" if lay is None else f"{layer} {lay}"
        if lay in sil:
            name += f" (silhouette {sil[lay]:.2f})"
        panels.append(
            alt.Chart(d)
            .mark_circle(size=30, opacity=0.75)
            .encode(
                x=alt.X("x:Q", title="map x"),
                y=alt.Y("y:Q", title="map y"),
                color=alt.Color(f"{color}:N", title=color, scale=alt.Scale(range=list(CATEGORICAL))),
                tooltip=_tooltips(d, ["latent", color, layer]),
            )
            .properties(title=name, width=W // 2, height=W // 2)
        )
    return alt.hconcat(*panels).properties(title="Decoder geometry by behaviour")


# ---- probes and heads ---------------------------------------------------------------------------------


def probe_layer_sweep(
    sweep: pd.DataFrame, metric: str = "roc_auc", *, target: str = "target", method: str = "method"
) -> alt.LayerChart:
    """A probe metric per layer, one line per target and method; chance (0.5) dashed for AUCs.

    ``sweep``: ``layer``, ``metric`` (e.g. ``roc_auc``), ``target`` and ``method`` (optional), and
    optionally ``lo``/``hi`` interval columns drawn as error bars.
    """
    _need(sweep, ["layer", metric], "probe_layer_sweep", "use the probe layer-sweep table")
    df = _tidy(sweep, ["layer", metric, target, method, "lo", "hi"], ["layer", metric])
    for c in (target, method):
        if c not in df:
            df[c] = "probe"
        df[c] = df[c].astype(str)
    base = alt.Chart(df).encode(
        x=alt.X("layer:O", title="layer"),
        color=alt.Color(f"{method}:N", title=method, scale=alt.Scale(range=list(CATEGORICAL))),
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y(f"{metric}:Q", title=metric, scale=alt.Scale(zero=False)),
        strokeDash=alt.StrokeDash(f"{target}:N", title=target),
        tooltip=_tooltips(df, ["layer", target, method, metric, "lo", "hi"]),
    )
    layers = [line]
    if {"lo", "hi"} <= set(df.columns):
        layers.append(base.mark_errorbar().encode(y=alt.Y("lo:Q", title=metric), y2="hi:Q"))
    if "auc" in metric:
        layers.append(alt.Chart(pd.DataFrame({"chance": [0.5]})).mark_rule(strokeDash=[4, 4]).encode(y="chance:Q"))
    return alt.layer(*layers).properties(title=f"Probe {metric} by layer (dashed: chance)", width=W, height=H)


def reliability_diagram(bins: pd.DataFrame, *, method: str = "method") -> alt.LayerChart:
    """Observed frequency vs mean predicted probability per bin; the diagonal is perfect calibration.

    ``bins``: ``mean_prob``, ``frac_positive``, ``n`` (:func:`workbench.probes.metrics.reliability_bins`; empty
    bins are skipped) and optionally ``method`` to compare scorers.
    """
    cols = ["mean_prob", "frac_positive", "n"]
    _need(bins, cols, "reliability_diagram", "use the calibration-bins table of the probe metrics")
    df = _tidy(bins, [*cols, method], cols)
    enc = {
        "x": alt.X("mean_prob:Q", title="mean predicted probability", scale=alt.Scale(domain=[0, 1])),
        "y": alt.Y("frac_positive:Q", title="observed frequency", scale=alt.Scale(domain=[0, 1])),
        "size": alt.Size("n:Q", title="steps in bin"),
        "tooltip": _tooltips(df, [method, *cols]),
    }
    if method in df:
        df[method] = df[method].astype(str)
        enc["color"] = alt.Color(f"{method}:N", title=method, scale=alt.Scale(range=list(CATEGORICAL)))
    diag = (
        alt.Chart(pd.DataFrame({"p": [0.0, 1.0]})).mark_line(strokeDash=[4, 4], color="gray").encode(x="p:Q", y="p:Q")
    )
    dots = alt.Chart(df).mark_line(point=True).encode(**{k: v for k, v in enc.items() if k != "size"})
    sized = alt.Chart(df).mark_circle().encode(**enc)
    return alt.layer(diag, dots, sized).properties(title="Reliability diagram", width=H, height=H)


def pr_roc_curves(curves: pd.DataFrame, *, method: str = "method") -> alt.HConcatChart:
    """ROC and precision-recall curves side by side, one line per scorer (head, probes, logit baselines).

    ``curves``: ``curve`` (``"roc"`` or ``"pr"``), ``x`` (false-positive rate / recall), ``y`` (true-positive
    rate / precision), ``method``, optionally ``auc`` (shown in the tooltip). See
    :func:`workbench.viz.tables.curve_points`.
    """
    _need(curves, ["curve", "x", "y", method], "pr_roc_curves", "use workbench.viz.tables.curve_points")
    df = _tidy(curves, ["curve", "x", "y", method, "auc"], ["x", "y"])
    df[method] = df[method].astype(str)
    panels = []
    for kind, xt, yt in (("roc", "false-positive rate", "true-positive rate"), ("pr", "recall", "precision")):
        d = df[df["curve"].str.lower() == kind]
        panels.append(
            alt.Chart(d)
            .mark_line(interpolate="step-after" if kind == "pr" else "linear")
            .encode(
                x=alt.X("x:Q", title=xt, scale=alt.Scale(domain=[0, 1])),
                y=alt.Y("y:Q", title=yt, scale=alt.Scale(domain=[0, 1])),
                color=alt.Color(f"{method}:N", title=method, scale=alt.Scale(range=list(CATEGORICAL))),
                tooltip=_tooltips(d, [method, "auc"]),
            )
            .properties(title=kind.upper(), width=H, height=H)
        )
    return alt.hconcat(*panels).properties(title="Step-error detection: ROC and PR curves")


# ---- steering -----------------------------------------------------------------------------------------


def dose_response(
    summary: pd.DataFrame, *, vector: str = "vector", measure: str = "measure", x: str = "alpha"
) -> alt.HConcatChart:
    """Behaviour rates and accuracy against steering strength α, the steering vector beside its random control.

    ``summary``: ``alpha``, ``value``, ``lo``, ``hi`` (confidence interval), ``vector`` (e.g. ``wait
    direction`` / ``random control``) and ``measure`` (e.g. ``wait rate``, ``accuracy``); one panel per measure.
    """
    _need(summary, [x, "value", "lo", "hi", vector, measure], "dose_response", "use the steering sweep summary")
    df = _tidy(summary, [x, "value", "lo", "hi", vector, measure], [x, "value", "lo", "hi"])
    df[vector] = df[vector].astype(str)
    panels = []
    for m in pd.unique(df[measure]):
        d = df[df[measure] == m]
        base = alt.Chart(d).encode(
            x=alt.X(f"{x}:Q", title=f"steering strength {x}"),
            color=alt.Color(f"{vector}:N", title="vector", scale=alt.Scale(range=list(CATEGORICAL))),
        )
        band = base.mark_area(opacity=0.2).encode(y=alt.Y("lo:Q", title=str(m)), y2="hi:Q")
        line = base.mark_line(point=True).encode(y="value:Q", tooltip=_tooltips(d, [vector, x, "value", "lo", "hi"]))
        panels.append(alt.layer(band, line).properties(title=str(m), width=W // 2 + 40, height=H // 2 + 40))
    return alt.hconcat(*panels).properties(title="Steering dose-response (band: 95% interval)")


# ---- step attribution ---------------------------------------------------------------------------------


def attribution_heatmaps(matrices: pd.DataFrame, *, method: str = "method") -> alt.HConcatChart:
    """Step×step matrices of one trace side by side (attention, suppression, true dependencies).

    ``matrices``: long form, one row per (method, q, k): ``q`` (the later, reading step), ``k`` (the
    earlier step), ``value``, ``method``. Each method gets its own colour scale.
    """
    _need(matrices, ["q", "k", "value", method], "attribution_heatmaps", "one row per (method, q, k)")
    df = _tidy(matrices, ["q", "k", "value", method], ["q", "k", "value"])
    panels = []
    for m in pd.unique(df[method]):
        d = df[df[method] == m]
        panels.append(
            alt.Chart(d)
            .mark_rect()
            .encode(
                x=alt.X("k:O", title="earlier step k"),
                y=alt.Y("q:O", title="later step q"),
                color=_color(d, "value", title=str(m)),
                tooltip=_tooltips(d, ["q", "k", "value"]),
            )
            .properties(title=str(m), width=H // 1.3, height=H // 1.3)
        )
    return alt.hconcat(*panels).resolve_scale(color="independent").properties(title="Step-to-step attribution")


def dependency_graph(steps: pd.DataFrame, edges: pd.DataFrame, *, weight: str | None = None) -> alt.LayerChart:
    """Arc diagram of one trace: steps on a line, an arc from each step to every later step that reads it.

    ``steps``: ``step_index``, ``text`` (optionally ``kind``); ``edges``: ``source`` (earlier step k),
    ``target`` (later step q), optionally a ``weight`` column for the arcs' width.
    """
    _need(steps, ["step_index", "text"], "dependency_graph", "one row per step of the trace")
    _need(edges, ["source", "target", *([weight] if weight else [])], "dependency_graph", "one row per edge")
    nodes = _tidy(steps, ["step_index", "text", "kind"], ["step_index"])
    t = np.linspace(0, np.pi, 24)
    arcs = []
    for e, row in enumerate(edges.itertuples(index=False)):
        a, b = float(row.source), float(row.target)
        mid, r = (a + b) / 2, abs(b - a) / 2
        w = float(getattr(row, weight)) if weight else 1.0
        arcs += [{"edge": e, "o": i, "x": mid - r * np.cos(ti), "y": r * np.sin(ti), "w": w} for i, ti in enumerate(t)]
    arcs_df = pd.DataFrame(arcs, columns=["edge", "o", "x", "y", "w"])
    lines = (
        alt.Chart(arcs_df)
        .mark_line(opacity=0.6, color=CATEGORICAL[0])
        .encode(
            x=alt.X("x:Q", title="step", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("y:Q", axis=None),
            detail="edge:N",
            order="o:Q",
            strokeWidth=alt.StrokeWidth("w:Q", legend=None) if weight else alt.value(1.5),
        )
    )
    enc = {"x": "step_index:Q", "y": alt.datum(0), "tooltip": _tooltips(nodes, ["step_index", "text", "kind"])}
    if "kind" in nodes:
        enc["color"] = alt.Color("kind:N", scale=alt.Scale(range=list(CATEGORICAL)), title="kind")
    dots = alt.Chart(nodes).mark_circle(size=120, opacity=1).encode(**enc)
    labels = (
        alt.Chart(nodes)
        .mark_text(align="right", angle=320, dx=-4, dy=6, fontSize=9)
        .encode(x="step_index:Q", y=alt.datum(0), text="text:N")
    )
    title = f"Step dependencies of one trace ({len(nodes)} steps, {len(edges)} reads)"
    return alt.layer(lines, dots, labels).properties(title=title, width=max(W, 60 * len(nodes)), height=H // 1.5)
