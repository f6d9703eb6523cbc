"""What the SteeringLab computes: one problem unsteered and steered, and a dose-response sweep with its control.

:func:`steered_pair` samples the same problem with the same seed twice, without and with an additive edit
(so any difference is the edit's); :func:`dose_sweep` runs :func:`workbench.steering.sweep.run_sweep` one
α at a time (progress and cancellation between α values) and :func:`dose_table` puts the bootstrap summary
into the columns the dose-response chart draws.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from workbench.labels import generate_toy_traces
from workbench.steering import Additive, Positions, SteeringVector, steer
from workbench.steering.sweep import SweepConfig, run_sweep, summarise
from workbench.toy.task import Problem
from workbench.traces.generate import GenerationConfig
from workbench.traces.types import Trace
from workbench.viz.scales import CATEGORICAL
from workbench.viz.widgets_jobs import JobContext
from workbench.viz.widgets_traces import trace_html

__all__ = ["SteeredPair", "steered_pair", "behaviour_counts", "pair_html", "dose_sweep", "dose_table"]

KINDS = ("compute", "wait", "check", "answer", "garbled")
_KIND_COLOURS = dict(zip(KINDS, CATEGORICAL, strict=False))


class SteeredPair(NamedTuple):
    """The same problem and seed, sampled without and with the edit."""

    unsteered: Trace
    steered: Trace
    alpha: float


def _positions(kind: str) -> Positions:
    return Positions(kind=kind, generated_only=True)  # edit what the model writes, not the prompt


def steered_pair(
    model,
    vector: SteeringVector,
    problem: Problem,
    alpha: float,
    *,
    seed: int = 0,
    positions: str = "boundary",
    max_new_tokens: int = 160,
) -> SteeredPair:
    """Sample ``problem`` twice with one seed: plain, then with ``alpha * vector`` added at ``positions``
    (``boundary``: the generated step-boundary tokens; ``all``: every generated token)."""
    cfg = GenerationConfig(temperature=1.0, max_new_tokens=max_new_tokens, seed=seed)
    (plain,) = generate_toy_traces(model, [problem], config=cfg, progress=False)
    with steer(model, Additive(vector=vector, alpha=alpha, positions=_positions(positions))):
        (edited,) = generate_toy_traces(model, [problem], config=cfg, progress=False)
    return SteeredPair(plain, edited, alpha)


def behaviour_counts(trace: Trace) -> dict[str, int]:
    """Steps of each kind, plus wrong steps (checker) and whether the answer is right."""
    kinds = Counter(s.kind for s in trace.steps)
    out = {k: kinds.get(k, 0) for k in KINDS}
    out["wrong steps"] = sum(not s.labels.get("correct", True) for s in trace.steps)
    out["answer right"] = int(bool(trace.answer_correct))
    return out


def _side(trace: Trace, title: str) -> str:
    colours = [_KIND_COLOURS.get(s.kind, "#DDDDDD") for s in trace.steps]
    counts = ", ".join(f"{k} {v}" for k, v in behaviour_counts(trace).items() if v)
    return (
        f"<div class='wb-steer-side' style='flex:1;min-width:260px'><b>{html.escape(title)}</b>"
        f"<div style='font-size:12px;color:#555'>{html.escape(counts)}</div>{trace_html(trace, colours)}</div>"
    )


def pair_html(pair: SteeredPair) -> str:
    """The two traces side by side, steps coloured by kind, with their behaviour counts."""
    return (
        "<div class='wb-steer-pair' style='display:flex;gap:24px'>"
        f"{_side(pair.unsteered, 'unsteered')}{_side(pair.steered, f'steered, α = {pair.alpha:g}')}</div>"
    )


def dose_sweep(
    model,
    vector: SteeringVector,
    problems: Sequence[Problem],
    alphas: Sequence[float],
    *,
    ctx: JobContext | None = None,
    seeds: tuple[int, ...] = (0,),
    positions: str = "boundary",
) -> pd.DataFrame:
    """One row per steered trace for each α, the vector and its equal-norm random control."""
    if not alphas:
        raise ValueError("alphas is empty: give at least one steering strength")
    parts = []
    for i, alpha in enumerate(alphas):
        if ctx is not None:
            ctx.progress(i / len(alphas), f"α = {alpha:g}")
        cfg = SweepConfig(alphas=(alpha,), seeds=seeds, positions=_positions(positions), progress=False)
        parts.append(run_sweep(model, vector, list(problems), cfg))
    if ctx is not None:
        ctx.progress(1.0, "done")
    return pd.concat(parts, ignore_index=True)


def dose_table(rows: pd.DataFrame, metrics: Sequence[str] = ("wait_rate", "accuracy"), n_boot: int = 200):
    """Bootstrap summary over problems in the dose-response chart's columns (``vector`` = steered / random)."""
    summary = summarise(rows, metrics=tuple(metrics), n_boot=n_boot)
    return summary.rename(columns={"metric": "measure", "vector": "vector_name"}).assign(vector=summary["direction"])
