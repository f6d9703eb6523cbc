"""What the ProbeLab computes: a probe layer sweep one read-out at a time (progress, cancel), and its tables.

:func:`run_probe_sweep` fits :func:`workbench.probes.linear.layer_sweep` (or the MLP probe) for each
chosen hook in turn, so a panel can show progress after every layer and stop between layers; the splits
are made once, by problem, so every layer is scored on the same held-out steps. :func:`reliability_table`
turns the best layer's held-out scores into the bins the reliability diagram draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.probes.data import make_target
from workbench.probes.linear import hook_layer, layer_sweep
from workbench.probes.metrics import binary_report, reliability_bins
from workbench.probes.mlp import MLPProbeConfig, fit_mlp
from workbench.viz.widgets_jobs import JobContext

__all__ = ["PROBE_KINDS", "ProbeLabResult", "probe_targets", "run_probe_sweep", "reliability_table"]

PROBE_KINDS = ("linear", "mlp")
"""Linear: logistic/softmax/ridge by the target's type (L-BFGS); mlp: the 3-layer MLP probe (binary only)."""


@dataclass(frozen=True, kw_only=True)
class ProbeLabResult:
    """A finished sweep: one metric row per (layer, held-out split) and the held-out steps' scores."""

    table: pd.DataFrame
    """``hook, layer, pooling, target, split, kind`` + metric columns (``roc_auc`` for binary targets)."""
    scores: pd.DataFrame
    """Binary targets: ``trace_id, step_index, split, layer, y, score`` (logit of the positive class)."""

    def best_layer(self, metric: str = "roc_auc", split: str = "val") -> int:
        """The layer with the highest ``metric`` on ``split`` (the test split stays untouched for reporting)."""
        rows = self.table[self.table["split"] == split]
        if metric not in rows or rows[metric].isna().all():
            raise ValueError(f"best_layer: no {metric!r} on split {split!r}; columns {list(self.table.columns)}")
        return int(rows.loc[rows[metric].idxmax(), "layer"])


def probe_targets(index: pd.DataFrame) -> list[str]:
    """Index columns a probe can predict: checker labels and other ``label_*`` columns, then ``kind``."""
    cols = [c for c in index.columns if c.startswith("label_")]
    return cols + [c for c in ("kind", "trace_answer_correct") if c in index.columns]


def run_probe_sweep(
    store,
    target: str,
    hooks: Sequence[str],
    *,
    pooling: str = "boundary",
    kind: str = "linear",
    ctx: JobContext | None = None,
    seed: int = 0,
) -> ProbeLabResult:
    """Fit a ``kind`` probe for ``target`` on each hook; score held-out problems. Reports progress per hook."""
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind={kind!r}: use one of {PROBE_KINDS}")
    if not hooks:
        raise ValueError("hooks is empty: choose at least one layer")
    unknown = sorted(set(hooks) - set(store.hooks))
    if unknown:
        raise ValueError(f"hooks {unknown} are not in the store; it has {store.hooks}")
    base = store.index[store.index["row"] >= 0]
    splits = store.split({"train": 0.7, "val": 0.15, "test": 0.15}, index=base, seed=seed)
    tables, scores = [], []
    for i, hook in enumerate(hooks):
        if ctx is not None:
            ctx.progress(i / len(hooks), f"layer {hook_layer(hook)}: fitting")
        fit = _fit_mlp if kind == "mlp" else _fit_linear
        table, scored = fit(store, target, hook, pooling, splits, seed)
        tables.append(table.assign(kind=kind))
        scores.append(scored)
    if ctx is not None:
        ctx.progress(1.0, "done")
    return ProbeLabResult(table=pd.concat(tables, ignore_index=True), scores=pd.concat(scores, ignore_index=True))


def _fit_linear(store, target, hook, pooling, splits, seed):
    res = layer_sweep(store, target, hooks=[hook], poolings=(pooling,), splits=splits)
    keep = [c for c in ("trace_id", "step_index", "split", "layer", "y", "score") if c in res.scores.columns]
    return res.table, res.scores[keep] if len(res.scores) else pd.DataFrame(columns=keep)


def _fit_mlp(store, target, hook, pooling, splits, seed):
    t, v = make_target(splits["train"], target), make_target(splits["val"], target)
    train, val = splits["train"][t.keep], splits["val"][v.keep]
    if t.task != "binary":
        raise ValueError(f"target {target!r} is {t.task}; the MLP probe here takes binary targets (use linear)")
    x = [store.tensors(hook, pooling, d).float() for d in (train, val)]
    probe = fit_mlp(x[0], t, x[1], v, MLPProbeConfig(seed=seed, epochs=60))
    rows, scored = [], []
    for name, df in splits.items():
        if name == "train":
            continue
        tt = make_target(df, target)
        df = df[tt.keep]
        with torch.no_grad():
            z = probe.scores(store.tensors(hook, pooling, df).float()).cpu().numpy().reshape(-1)
        rep = binary_report(tt.values, z)
        info = {"hook": hook, "layer": hook_layer(hook), "pooling": pooling, "target": target, "split": name}
        rows.append(info | {"roc_auc": rep.roc_auc})
        keys = df[["trace_id", "step_index"]].reset_index(drop=True)
        scored.append(keys.assign(split=name, layer=hook_layer(hook), y=tt.values, score=z))
    return pd.DataFrame(rows), pd.concat(scored, ignore_index=True)


def reliability_table(scores: pd.DataFrame, layer: int, split: str = "test", n_bins: int = 10) -> pd.DataFrame:
    """Reliability bins (:func:`~workbench.probes.metrics.reliability_bins`, empty bins dropped) of one layer's
    held-out probabilities, with a ``method`` column naming the layer."""
    rows = scores[(scores["layer"] == layer) & (scores["split"] == split)]
    if rows.empty:
        raise ValueError(f"reliability_table: no scores for layer {layer} on split {split!r}")
    prob = 1 / (1 + np.exp(-rows["score"].to_numpy(dtype=float)))
    bins = reliability_bins(rows["y"].to_numpy().astype(bool), prob, n_bins)
    return bins[bins["n"] > 0].assign(method=f"layer {layer}").reset_index(drop=True)
