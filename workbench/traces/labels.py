"""Step labels: the common table every label source produces, joining it to traces, and keyword behaviours.

Every model- or rule-based label source (keyword behaviours, rollouts, the forced-answer potential, judges,
the checker via :func:`checker_labels`) returns a :data:`StepLabels` mapping
``StepKey(trace_id, step_index) -> {label: value}``. One shape lets sources be computed separately (even on
other machines), saved, compared, and merged into the traces with :func:`join_labels`; importers write their
labels straight into the traces, and :func:`labels_of` turns any trace's labels back into the same table.
:func:`labels_frame` renders a table as a DataFrame.

Keyword behaviours follow RISE's cheap stand-in for an LLM judge (keyword matching agrees with the judge
about 85% of the time): a step is a reflection / backtracking / verification step when it contains one of
the configured words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from workbench.traces.toy import label_with_checker
from workbench.traces.types import Trace

__all__ = [
    "StepKey",
    "StepLabels",
    "join_labels",
    "labels_frame",
    "KeywordConfig",
    "keyword_labels",
    "checker_labels",
    "labels_of",
    "unique_traces",
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


@dataclass(frozen=True, kw_only=True)
class KeywordConfig:
    """Word lists for the keyword behaviour labels (matched as whole words or phrases)."""

    reflection: tuple[str, ...] = ("wait", "hmm", "hold on", "let me reconsider", "on second thought")
    """Words that mark a reflection step (RISE: "Wait")."""
    backtracking: tuple[str, ...] = ("alternatively", "instead", "let me try", "another approach", "start over")
    """Words that mark a backtracking step (RISE: "Alternatively")."""
    verification: tuple[str, ...] = ("check", "verify", "double-check", "confirm", "let me make sure")
    """Words that mark a verification step."""
    ignore_case: bool = True
    """Match regardless of case."""
    at_start: bool = False
    """Only count words at the very start of the step (stricter; "Wait," but not "... wait ...")."""

    def __post_init__(self) -> None:
        for name in ("reflection", "backtracking", "verification"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(w, str) and w.strip() for w in value):
                raise ValueError(f"{name}={value!r}: give a list of non-empty words")
            object.__setattr__(self, name, tuple(value))

    def pattern(self, behaviour: str) -> re.Pattern[str] | None:
        """The compiled matcher of one behaviour (None for an empty word list)."""
        words = getattr(self, behaviour)
        if not words:
            return None
        body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        lead = r"^\W*" if self.at_start else r"(?<!\w)"
        return re.compile(rf"{lead}(?:{body})(?!\w)", re.IGNORECASE if self.ignore_case else 0)


def keyword_labels(traces: Sequence[Trace], config: KeywordConfig = KeywordConfig()) -> StepLabels:
    """``reflection``/``backtracking``/``verification`` flags for every step, from word lists."""
    matchers = {b: config.pattern(b) for b in ("reflection", "backtracking", "verification")}
    out: StepLabels = {}
    for t in unique_traces(traces):
        for s in t.steps:
            out[StepKey(t.trace_id, s.index)] = {
                b: bool(m is not None and m.search(s.text)) for b, m in matchers.items()
            }
    return out


def checker_labels(traces: Sequence[Trace]) -> StepLabels:
    """The toy checker's labels (kind, correct, logical, first_error, prefix_correct, viable) as a table."""
    labelled = [label_with_checker(t) for t in unique_traces(traces)]
    return labels_of(labelled, ["kind", "correct", "logical", "first_error", "prefix_correct", "viable"])
