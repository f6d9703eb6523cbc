"""The demo's analysis stages: step SAE, probes with logit baselines, step attribution, a steering sweep.

Each runs on the store and traces of the first three stages and reports its numbers beside a baseline in
the same run: the best raw residual dimension for SAE latents, chance and the logit baselines for probes,
"adjacent step" and 1/distance for attribution, a random direction of equal norm for steering. A stage is
skipped, with the reason in the report, when its package is missing or it needs toy ground truth that free
prompts do not have.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from workbench.demo.context import RunContext
from workbench.viz import charts, curve_points

__all__ = ["STAGES", "skip_reason"]

_PACKAGES = {"sae": "workbench.sae", "probes": "workbench.probes", "attribution": "workbench.attribution",
             "steering": "workbench.steering"}  # fmt: skip
_NEEDS_TOY = {"attribution": "true step dependencies", "steering": "the checker's wait/compute lines"}


def skip_reason(ctx: RunContext, stage: str) -> str:
    """Why ``stage`` cannot run here ('' when it can)."""
    pkg = _PACKAGES.get(stage)
    if pkg and importlib.util.find_spec(pkg) is None:
        return f"{pkg} is not installed in this checkout"
    if stage in _NEEDS_TOY and not ctx.config.toy:
        return f"needs {_NEEDS_TOY[stage]}, which only the toy task's checker provides"
    if stage != "sample" and stage not in ("label", "capture") and ctx.store is None:
        return "no store (the capture stage did not run)"
    return ""


def _col(index: pd.DataFrame, name: str) -> str:
    return f"label_{name}" if f"label_{name}" in index.columns else name


def _best_dimension_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Best single residual-stream dimension as a detector (either sign): the baseline for a single latent."""
    return float(max(max(a, 1 - a) for a in (roc_auc_score(y, x[:, j]) for j in range(x.shape[1]))))


# ---- step SAE -----------------------------------------------------------------------------------------


def sae(ctx: RunContext, bar) -> None:
    from workbench.sae import (
        SAETrainConfig,
        activation_frequency,
        behaviour_association,
        decoder_map,
        encode_store,
        evaluate_sae,
        latent_auroc,
        silhouette_by_layer,
        train_sae,
    )

    store, cfg = ctx.store, ctx.config
    index = store.index[store.index["row"] >= 0]
    kind = _col(index, "kind")
    batch = min(256, len(index))
    scfg = SAETrainConfig(arch="topk", width=512, k=8, lr=1e-3, batch_size=batch, samples=cfg.sae_steps * batch,
                          metrics_every=max(10, cfg.sae_steps // 10), checkpoint_every=10**9,
                          dead_window=20 * batch, seed=cfg.seed)  # fmt: skip
    bar.total = 2 * len(store.hooks) + 1
    bar.refresh()
    saes = {}
    for hook in store.hooks:  # one SAE per layer, each advancing the stage's bar
        saes[hook] = train_sae(store, hook, scfg, out=ctx.run_dir / "sae" / hook, progress=False)
        bar.update()
    acts, rows, hist, freqs, maps = {}, [], [], [], []
    for hook, trained in saes.items():
        layer = int(hook.split(".")[1])
        acts[hook] = encode_store(trained, store)
        ev = evaluate_sae(trained, store).iloc[0]
        row = {"layer": layer, "fvu": ev["fvu"], "l0": ev["l0"], "dead_fraction": ev["dead_fraction"]}
        x = store.tensors(hook, "boundary", acts[hook].steps).float().numpy()
        for behaviour in ("wait", "check"):
            y = (acts[hook].steps[kind] == behaviour).to_numpy()
            if y.any() and not y.all():
                row[f"best latent AUROC ({behaviour})"] = float(
                    latent_auroc(acts[hook], kind, behaviour)["auroc"].iloc[0]
                )
                row[f"best raw dimension AUROC ({behaviour})"] = _best_dimension_auc(x, y)
        rows.append(row)
        hist.append(trained.history.assign(layer=layer))
        freqs.append(activation_frequency(acts[hook]).assign(layer=layer))
        maps.append(
            decoder_map(trained.decoder, behaviour_association(acts[hook], kind), seed=cfg.seed).assign(layer=layer)
        )
        bar.update()
    sil = silhouette_by_layer(saes, acts, kind)
    table = pd.DataFrame(rows).merge(sil[["layer", "silhouette"]], on="layer")
    last = table.iloc[-1]
    for b in ("wait", "check"):
        if f"best latent AUROC ({b})" in last:
            ctx.record(
                "sae",
                f"best latent for '{b}' lines, last layer (AUROC)",
                last[f"best latent AUROC ({b})"],
                last[f"best raw dimension AUROC ({b})"],
                "baseline: best single residual dimension",
            )
    ctx.record(
        "sae",
        "FVU / L0 / dead, last layer",
        f"{last['fvu']:.3f} / {last['l0']:.1f} / {last['dead_fraction']:.2f}",
        note=f"TopK k={scfg.k}, {scfg.width} latents, {scfg.steps} steps",
    )
    sec = ctx.report.section("4 · Step SAE")
    sec.text(
        f"A TopK SAE (sae-lens; {scfg.width} latents, k = {scfg.k}, {scfg.steps} batches of {batch}) per layer on the "
        "boundary vectors, trained without labels. Then: does one latent pick out the model's own wait / check lines "
        "(AUROC of its activation), compared with the best single raw dimension of the residual stream; and do "
        "latents specific to one behaviour cluster (silhouette of their decoder columns, −1 to 1)."
    )
    sec.table(table, caption="Per layer: reconstruction, sparsity, behaviour latents vs raw dimensions, silhouette")
    sec.chart(charts.sae_training_curves(pd.concat(hist, ignore_index=True), series="layer"))
    sec.chart(charts.activation_histogram(pd.concat(freqs, ignore_index=True), series="layer"))
    sec.chart(charts.decoder_geometry(pd.concat(maps, ignore_index=True), sil))


# ---- probes -------------------------------------------------------------------------------------------


def probes(ctx: RunContext, bar) -> None:
    from workbench.probes import metrics
    from workbench.probes.linear import layer_sweep
    from workbench.probes.logits import logit_baselines

    store = ctx.store
    index = store.index[store.index["row"] >= 0]
    target = _col(index, "logical" if ctx.config.toy else "reflection")
    if target not in index or index[target].nunique() < 2:
        ctx.skipped["probes"] = f"no two classes of {target} among the captured steps"
        return
    splits = store.split({"train": 0.6, "test": 0.4}, seed=ctx.config.seed, index=index)
    positive = False if ctx.config.toy else True  # the wrong step (logical == False) is the positive class
    sweep = layer_sweep(store, target, poolings=("boundary", "mean"), splits=splits, positive=positive)
    bar.update()
    table = sweep.table[sweep.table["split"] == "test"].copy()
    best = table.sort_values("roc_auc", ascending=False).iloc[0]
    scores = sweep.scores[(sweep.scores["hook"] == best["hook"]) & (sweep.scores["pooling"] == best["pooling"])]
    test_steps = splits["test"].merge(scores[["trace_id", "step_index", "y", "score"]], on=["trace_id", "step_index"])
    base = logit_baselines(store, test_steps)
    frame = test_steps.merge(base, on=["trace_id", "problem_id", "step_index"])
    names = {f"probe (layer {best['layer']}, {best['pooling']})": "score"}
    names |= {b: b for b in ("one_minus_max_prob", "mean_entropy", "perplexity") if b in frame}
    curves = curve_points(frame, "y", names)
    aucs = curves.groupby("method")["auc"].first()
    ctx.record(
        "probes",
        "step error probe, best layer (ROC-AUC, test problems)",
        float(best["roc_auc"]),
        f"{max(aucs.drop(next(iter(names))).max(), 0.5):.3f}",
        "baseline: best logit statistic (chance 0.5)",
    )
    bar.update()
    prob = 1 / (1 + np.exp(-frame["score"].to_numpy()))
    bins = metrics.reliability_bins(frame["y"].astype(bool).to_numpy(), prob).assign(method="probe")
    what = "fresh error (logical = False)" if ctx.config.toy else "reflection keyword"
    sec = ctx.report.section("5 · Probes and logit baselines")
    sec.text(
        f"Target: {what} of a step. One logistic probe per layer and pooling, fitted on {len(splits['train'])} steps "
        f"of {splits['train']['problem_id'].nunique()} problems and scored on {len(splits['test'])} steps of other "
        "problems (split by problem, never by step), beside the model's own uncertainty read from its logits."
    )
    cols = ["layer", "pooling", "n", "n_pos", "roc_auc", "pr_auc", "brier"]
    sec.table(table[[c for c in cols if c in table]], caption="Held-out problems, per read-out")
    sec.chart(charts.probe_layer_sweep(table, method="pooling"))
    sec.chart(charts.pr_roc_curves(curves))
    sec.chart(charts.reliability_diagram(bins))


# ---- attribution --------------------------------------------------------------------------------------


def attribution(ctx: RunContext, bar) -> None:
    from workbench.attribution import (
        AttentionConfig,
        SuppressionConfig,
        attention_frame,
        step_attention,
        step_suppression,
        suppression_frame,
    )
    from workbench.attribution.evaluate import auc_table, dependency_pairs

    sub = [t for t in ctx.traces if t.steps and all(s.kind != "garbled" for s in t.steps)][
        : ctx.config.attribution_traces
    ]
    if not sub:
        ctx.skipped["attribution"] = "no trace without garbled lines"
        return
    pairs = dependency_pairs(sub)
    sup = suppression_frame(step_suppression(ctx.model, sub, SuppressionConfig(progress=False)))
    bar.update()
    att = attention_frame(step_attention(ctx.model, sub, AttentionConfig(progress=False)), include_diagonal=False)
    att_mean = (
        att.groupby(["trace_id", "q", "k"], as_index=False)["value"].mean().rename(columns={"value": "attention"})
    )
    bar.update()
    pairs = pairs.merge(sup[["trace_id", "q", "k", "kl"]], on=["trace_id", "q", "k"], how="left")
    pairs = pairs.merge(att_mean, on=["trace_id", "q", "k"], how="left")
    methods = ["kl", "attention", "adjacent", "inverse_distance"]
    aucs = auc_table(pairs, methods, length_edges=None)
    pooled = aucs[(aucs["subset"] == "non-answer") & (aucs["target"] == "data")].set_index("method")["auc"]
    ctx.record(
        "attribution",
        "suppression KL vs true data dependencies (ROC-AUC)",
        float(pooled["kl"]),
        f"{max(pooled['adjacent'], pooled['inverse_distance']):.3f}",
        "baseline: adjacent step / 1/distance",
    )
    ctx.record(
        "attribution",
        "head-mean attention vs data dependencies (ROC-AUC)",
        float(pooled["attention"]),
        f"{max(pooled['adjacent'], pooled['inverse_distance']):.3f}",
        "non-answer steps",
    )
    one = max(sub, key=lambda t: len(t.steps))
    p1 = pairs[pairs["trace_id"] == one.trace_id]
    panels = {"suppression KL": p1["kl"], "attention (head mean)": p1["attention"], "true data dependency": p1["data"]}
    long = pd.concat([p1.assign(method=m, value=v.astype(float)) for m, v in panels.items()])
    long = long[["q", "k", "value", "method"]]
    edges = p1.loc[p1["data"].astype(bool), ["k", "q"]].rename(columns={"k": "source", "q": "target"})
    steps = pd.DataFrame([{"step_index": s.index, "text": s.text, "kind": s.kind} for s in one.steps])
    sec = ctx.report.section("6 · Step attribution")
    sec.text(
        f"Which earlier steps does each step use? On {len(sub)} traces: attention suppression (mask every token's "
        "attention to step k, measure the KL change of later steps' predictions) and step-to-step attention, scored "
        "against the true data dependencies the toy checker knows (step q reads a value step k stated), beside the "
        "baselines 'the adjacent step' and 1/distance. Answer lines are left out (every method is right on them)."
    )
    sec.table(aucs[aucs["subset"] == "non-answer"].drop(columns=["subset", "length"]), caption="ROC-AUC per method")
    sec.chart(charts.attribution_heatmaps(long))
    sec.chart(charts.dependency_graph(steps, edges))


# ---- steering -----------------------------------------------------------------------------------------


def steering(ctx: RunContext, bar) -> None:
    from workbench.steering import diff_of_means
    from workbench.steering.sources import with_neighbour_kinds
    from workbench.steering.sweep import SweepConfig, run_sweep, summarise
    from workbench.toy import TaskConfig
    from workbench.toy.evaluate import heldout_problems

    cfg, store = ctx.config, ctx.store
    hook = store.hooks[-1]
    index = store.index[store.index["row"] >= 0]
    kind = "kind"  # diff_of_means adds next_kind / prev_kind from this column
    # RISE-style behaviour direction: compute steps after which the model checks itself (a wait or check line)
    # minus compute steps followed by another compute line, read at the boundary token where it is written.
    pos = f"{kind} == 'compute' and next_{kind} in ('wait', 'check')"
    neg = f"{kind} == 'compute' and next_{kind} == 'compute'"
    n_pos = int(with_neighbour_kinds(index, kind).eval(pos).sum())
    if n_pos < 3 or cfg.steering_problems == 0:
        ctx.skipped["steering"] = f"only {n_pos} compute steps followed by a wait/check line; too few for a direction"
        return
    vec = diff_of_means(store, hook, pos, neg, rows=index, name="self-check direction")
    problems = heldout_problems(TaskConfig(), cfg.n_problems + cfg.steering_problems)[cfg.n_problems :]
    alphas = (0.0, 1.0, 2.0) if cfg.quick else (-1.0, 0.0, 1.0, 2.0)
    scfg = SweepConfig(alphas=alphas, seeds=(cfg.seed,), max_new_tokens=cfg.max_new_tokens, progress=False)
    rows = run_sweep(ctx.model, vec, problems, scfg)
    bar.update()
    names = {"wait_rate": "wait lines per compute step", "check_rate": "check lines per compute step",
             "accuracy": "final-answer accuracy"}  # fmt: skip
    summary = summarise(rows, metrics=tuple(names), seed=cfg.seed)
    summary = summary.assign(
        vector=summary["direction"].map({"steered": "self-check direction", "random": "random control"}),
        measure=summary["metric"].map(names),
    )
    at = summary.set_index(["vector", "metric", "alpha"])["value"]
    hi = max(alphas)
    for metric, label in (("wait_rate", "wait rate"), ("check_rate", "check rate"), ("accuracy", "accuracy")):
        ctx.record(
            "steering",
            f"{label} at α={hi:g} / α=0",
            f"{at['self-check direction', metric, hi]:.3f} / {at['self-check direction', metric, 0.0]:.3f}",
            f"{at['random control', metric, hi]:.3f}",
            f"baseline: random direction of equal norm at α={hi:g}; {len(problems)} problems per α",
        )
    sec = ctx.report.section("7 · Steering")
    sec.text(
        f"A self-check direction read from the store at {hook}: the mean boundary vector of compute steps "
        f"followed by a wait or check line ({n_pos} steps) minus that of compute steps followed by another "
        f"compute line. It is added at step-boundary tokens with strength α (units of its norm) while sampling "
        f"{len(problems)} problems the store never saw; a random direction of equal norm at the same hook is the "
        "control. Bands: 95% bootstrap intervals over problems."
    )
    shown = summary[["vector", "metric", "alpha", "value", "lo", "hi", "n_traces"]]
    sec.table(shown, caption="Dose-response table")
    sec.chart(charts.dose_response(summary))


STAGES = [
    ("sae", "step SAE per layer", sae, 5),
    ("probes", "layer sweep and logit baselines", probes, 2),
    ("attribution", "suppression and attention vs true dependencies", attribution, 2),
    ("steering", "self-check direction sweep with random control", steering, 1),
]
"""(name, title, function, sub-steps) of the analysis stages, in pipeline order."""
