"""What the demo's stages share: the run context, one progress bar per stage, and the summary table.

Each stage is a function ``stage(ctx, bar)`` that reads and extends :class:`RunContext` (model, traces,
store, report), advances its own bar once per sub-step, and records its key numbers with
:meth:`RunContext.record` — every number beside the baseline that gives it meaning (chance, a shuffled or
random control, the model card's measurement). The records become the terminal summary table and the
report's overview table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from workbench.demo.config import DemoConfig
from workbench.viz import Report

__all__ = ["RunContext", "Record", "run_stage", "summary_table", "format_table"]


@dataclass(frozen=True, kw_only=True)
class Record:
    """One key number of the run."""

    stage: str
    """The pipeline stage that measured it."""
    name: str
    """What was measured."""
    value: Any
    """The number (or short text)."""
    baseline: Any = ""
    """What the number should be compared with, in the same units ('' when none applies)."""
    note: str = ""
    """How it was measured (n, split, control)."""


@dataclass
class RunContext:
    """State passed from stage to stage."""

    config: DemoConfig
    run_dir: Path
    report: Report
    model: Any = None
    traces: list = field(default_factory=list)
    store: Any = None
    records: list[Record] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def record(self, stage: str, name: str, value: Any, baseline: Any = "", note: str = "") -> None:
        self.records.append(Record(stage=stage, name=name, value=value, baseline=baseline, note=note))

    def steps_frame(self) -> pd.DataFrame:
        """One row per step of the current traces, labels as columns."""
        from workbench.traces import to_dataframe

        return to_dataframe(self.traces)


Stage = Callable[[RunContext, tqdm], None]


def run_stage(ctx: RunContext, name: str, title: str, stage: Stage, total: int, position: tuple[int, int]) -> None:
    """Run one stage under its own progress bar and time it."""
    i, n = position
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=f"[{i}/{n}] {name}: {title}", unit="part", leave=True, dynamic_ncols=True)
    try:
        stage(ctx, bar)
        bar.update(bar.total - bar.n)
    finally:
        bar.close()
        ctx.seconds[name] = time.perf_counter() - t0


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def summary_table(ctx: RunContext) -> pd.DataFrame:
    """The run's key numbers: stage, measure, value, baseline, note."""
    rows = [
        {"stage": r.stage, "measure": r.name, "value": _fmt(r.value), "baseline": _fmt(r.baseline), "note": r.note}
        for r in ctx.records
    ]
    rows += [
        {"stage": s, "measure": "wall time (s)", "value": f"{sec:.1f}", "baseline": "", "note": ""}
        for s, sec in ctx.seconds.items()
    ]
    rows += [
        {"stage": s, "measure": "skipped", "value": "-", "baseline": "", "note": why} for s, why in ctx.skipped.items()
    ]
    return pd.DataFrame(rows, columns=["stage", "measure", "value", "baseline", "note"])


def format_table(df: pd.DataFrame, max_note: int = 60) -> str:
    """A plain-text table for the terminal."""
    df = df.assign(note=df["note"].map(lambda s: s if len(s) <= max_note else s[: max_note - 1] + "…"))
    widths = {c: max(len(c), *(len(str(v)) for v in df[c])) if len(df) else len(c) for c in df.columns}
    line = "  ".join(c.ljust(widths[c]) for c in df.columns)
    rule = "  ".join("-" * widths[c] for c in df.columns)
    body = ["  ".join(str(v).ljust(widths[c]) for c, v in row.items()) for _, row in df.iterrows()]
    return "\n".join([line, rule, *body])
