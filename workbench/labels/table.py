"""The label table: the one shape every label source produces, and joining it to traces.

Every model- or rule-based label source (keyword behaviours, rollouts, the forced-answer potential, judges,
the checker via :func:`checker_labels`) returns a :data:`StepLabels` mapping
``StepKey(trace_id, step_index) -> {label: value}``. One shape lets sources be computed separately (even on
other machines), saved, compared, and merged into the traces with :func:`join_labels`; importers write their
labels straight into the traces, and :func:`labels_of` turns any trace's labels back into the same table.
:func:`labels_frame` renders a table as a DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from workbench.traces.types import Trace

__all__ = [
    "StepKey",
    "StepLabels",
    "join_labels",
    "labels_frame",
    "labels_of",
    "unique_traces",
    "parse_label_value",
]


class StepKey(NamedTuple):
    """The join key of a step label: trace id and step index."""

    trace_id: str
    step_index: int


StepLabels = dict[StepKey, dict[str, Any]]
"""Per-step labels of one source, keyed by (trace id, step index)."""


def unique_traces(traces: Sequence[Trace]) -> Sequence[Trace]:
    """``traces`` unchanged; ValueError naming the id when two share a ``trace_id`` (their labels would collide)."""
    seen: set[str] = set()
    for t in traces:
        if t.trace_id in seen:
            raise ValueError(f"trace_id={t.trace_id!r} appears twice; labels are joined by (trace id, step index)")
        seen.add(t.trace_id)
    return traces


def labels_of(traces: Iterable[Trace], names: Sequence[str] | None = None) -> StepLabels:
    """The labels already on ``traces`` as a table (all names, or only ``names``)."""
    out: StepLabels = {}
    for t in traces:
        for s in t.steps:
            out[StepKey(t.trace_id, s.index)] = {k: v for k, v in s.labels.items() if names is None or k in names}
    return out


def join_labels(traces: Sequence[Trace], *tables: Mapping[StepKey, Mapping[str, Any]]) -> list[Trace]:
    """``traces`` with every table's labels merged into the matching steps (later tables win on equal names).

    A key that matches no step raises ``ValueError`` naming it: a label must never be silently dropped.
    """
    by_key = {StepKey(t.trace_id, s.index) for t in unique_traces(traces) for s in t.steps}
    merged: dict[StepKey, dict[str, Any]] = {}
    for table in tables:
        for key, labels in table.items():
            key = StepKey(*key)
            if key not in by_key:
                raise ValueError(f"labels: key {tuple(key)} matches no step of the given traces")
            merged.setdefault(key, {}).update(labels)
    out = []
    for t in traces:
        steps = [s.with_labels(**merged.get(StepKey(t.trace_id, s.index), {})) for s in t.steps]
        out.append(t.with_steps(steps))
    return out


def labels_frame(table: Mapping[StepKey, Mapping[str, Any]]):
    """A DataFrame with columns ``trace_id``, ``step_index`` and one per label name."""
    import pandas as pd

    rows = [{"trace_id": k[0], "step_index": k[1], **v} for k, v in table.items()]
    return pd.DataFrame(rows, columns=None if rows else ["trace_id", "step_index"])


def parse_label_value(text: str):
    """A label value typed on the command line: ``true``/``false`` → bool, numbers → float, else the text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return float(text)
    except ValueError:
        return text
