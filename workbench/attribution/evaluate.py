"""Scoring attribution against the toy task's true dependency graph.

:func:`dependency_pairs` lists every pair of completion steps ``q > k`` of toy traces with its ground
truth: ``data`` (``q`` reads a value ``k`` defined, :func:`workbench.labels.dependency_labels`) and
``control`` (``k = q - 1``), plus the two baselines every method must beat on the same pairs:
``adjacent`` (1 for ``k = q - 1``) and ``inverse_distance`` (``1 / (q - k)``). Answer lines are marked
(``is_answer``): every method is trivially right on them, so they are reported apart.
:func:`auc_table` turns score columns into ROC-AUCs per target, subset and trace length.
:func:`per_query` rescales a score within each query's row, so that a pooled AUC compares the earlier
steps of one query with each other rather than the loud rows (answer lines) with the quiet ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.labels.agreement import roc_auc
from workbench.labels.dependencies import dependency_labels
from workbench.traces.types import Trace

__all__ = ["dependency_pairs", "auc_table", "per_query", "BASELINES", "READING_KINDS", "ROW_NORMS"]

BASELINES = ("adjacent", "inverse_distance")
"""Score columns :func:`dependency_pairs` adds as baselines."""

READING_KINDS = ("compute", "wait", "check", "answer")
"""Step kinds whose reads are known (garbled lines are left out as queries)."""

ROW_NORMS = ("sum", "max", "rank")
"""Rescalings of :func:`per_query`: share of the row's total, fraction of its maximum, rank fraction."""


def dependency_pairs(traces: Sequence[Trace]) -> pd.DataFrame:
    """One row per completion pair ``q > k`` whose ``q`` is a readable step.

    Columns: ``trace_id, problem_id, n_steps, q, k, distance, q_kind, k_kind, is_answer, data, data_stated,
    control, adjacent, inverse_distance``. ``data``: ``q`` reads a value ``k`` last *defined*; ``data_stated``:
    ``q`` reads a value ``k`` last *wrote* in any form (the nearest copy of the digits; see
    :func:`workbench.labels.step_dependencies`).
    """
    defined, stated = (dependency_labels(traces, source=s) for s in ("defined", "stated"))
    rows = []
    for t in traces:
        kinds = [s.kind for s in t.steps]
        for q in range(len(t.steps)):
            if kinds[q] not in READING_KINDS:
                continue
            reads = set(defined[(t.trace_id, q)]["depends_on"])
            copies = set(stated[(t.trace_id, q)]["depends_on"])
            for k in range(q):
                rows.append(
                    (t.trace_id, t.problem_id, len(t.steps), q, k, q - k, kinds[q], kinds[k], kinds[q] == "answer")
                    + (k in reads, k in copies, k == q - 1)
                )
    cols = ["trace_id", "problem_id", "n_steps", "q", "k", "distance", "q_kind", "k_kind", "is_answer", "data"]
    out = pd.DataFrame(rows, columns=[*cols, "data_stated", "control"])
    out["adjacent"] = (out["distance"] == 1).astype(float)
    out["inverse_distance"] = 1.0 / out["distance"].astype(float)
    return out


def _lengths(n: pd.Series, edges: Sequence[int]) -> pd.Series:
    labels = [f"{a}-{b - 1}" if b - 1 > a else f"{a}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f"{edges[-1]}+")
    return pd.cut(n, [*edges, np.inf], right=False, labels=labels).astype(str)


def auc_table(
    pairs: pd.DataFrame,
    methods: Sequence[str],
    *,
    targets: Sequence[str] = ("data", "control"),
    length_edges: Sequence[int] | None = (2, 4, 6, 8),
) -> pd.DataFrame:
    """ROC-AUC of every score column in ``methods`` (baselines included) per target, subset and trace length.

    Subsets: ``all`` (pooled), ``non-answer`` (compute, wait and check queries) and ``answer``; lengths:
    ``all`` and bins of ``n_steps`` (``length_edges``). Pairs with a NaN score are dropped for that method. Columns:
    ``method, target, subset, length, n_pairs, n_positive, auc``.
    """
    frame = pairs.copy()
    frame["subset"] = np.where(frame["is_answer"], "answer", "non-answer")
    frame["length"] = _lengths(frame["n_steps"], length_edges) if length_edges else "all"
    rows = []
    groups = [
        (("all", "all"), frame),
        *(((s, "all"), g) for s, g in frame.groupby("subset")),
        *(frame.groupby(["subset", "length"]) if length_edges else ()),
    ]
    for (subset, length), part in groups:
        for method in methods:
            ok = part[part[method].notna()]
            for target in targets:
                y = ok[target].astype(bool)
                auc = roc_auc(ok[method].tolist(), y.tolist())
                rows.append((method, target, subset, length, len(ok), int(y.sum()), auc))
    return pd.DataFrame(rows, columns=["method", "target", "subset", "length", "n_pairs", "n_positive", "auc"])


def per_query(pairs: pd.DataFrame, column: str, how: str) -> pd.Series:
    """``column`` rescaled within each query row ``(trace_id, q)`` over its earlier steps ``k``.

    ``how``: ``"sum"`` divides by the row's total, ``"max"`` by its maximum, ``"rank"`` gives the rank
    fraction (1 for the row's largest, ties averaged). NaN scores stay NaN and are left out of the row.
    """
    if how not in ROW_NORMS:
        raise ValueError(f"how={how!r}: use one of {ROW_NORMS}")
    groups = pairs.groupby(["trace_id", "q"])[column]
    if how == "rank":
        return groups.rank(pct=True)
    return pairs[column] / groups.transform(how)
