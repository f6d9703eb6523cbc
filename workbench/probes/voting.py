"""Test-time use of step scores: step-scored traces, best-of-N and score-weighted majority voting.

Any step scorer works (probe, head, logit baseline): a score per step, higher = more likely wrong. A
trace's *wrongness* is its worst step (``max``, the usual PRM aggregation; ``mean`` is the alternative).
Best-of-N keeps each problem's least-wrong trace. Weighted majority voting (SSAE's probe-weighted vote)
adds up, per answer, the weights of the traces giving it; the weight is ``1 − wrongness`` when the scores
are probabilities (``weight="prob"``) or, for any scale, one minus the trace's percentile rank of
wrongness in the pool (``weight="rank"``). Plain majority is the same vote with weight 1. Traces without
an answer abstain; ties go to the answer with more votes, then the smaller string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["trace_table", "scored_steps", "trace_wrongness", "vote", "voting_table"]

_KEYS = ["trace_id", "step_index"]


def trace_table(traces: Sequence) -> pd.DataFrame:
    """One row per :class:`~workbench.traces.Trace`: ``trace_id, problem_id, answer, gold_answer, answer_correct``."""
    return pd.DataFrame(
        {
            "trace_id": [t.trace_id for t in traces],
            "problem_id": [t.problem_id for t in traces],
            "answer": [t.answer for t in traces],
            "gold_answer": [t.gold_answer for t in traces],
            "answer_correct": [bool(t.answer_correct) for t in traces],
        }
    )


def scored_steps(steps: pd.DataFrame, scores: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``steps`` (rows of an index) with one column per scorer, joined on ``trace_id, step_index``.

    ``scores`` maps a column name to a frame with the key columns and exactly one more column (or a column
    named like the key of the mapping). Steps a scorer did not score get NaN.
    """
    out = steps.reset_index(drop=True)
    for name, df in scores.items():
        missing = [k for k in _KEYS if k not in df.columns]
        if missing:
            raise KeyError(f"scores[{name!r}] lacks the key columns {missing}")
        extra = [c for c in df.columns if c not in (*_KEYS, "problem_id")]
        col = name if name in extra else (extra[0] if len(extra) == 1 else None)
        if col is None:
            raise ValueError(f"scores[{name!r}] has columns {extra}; give one score column or one named {name!r}")
        if name in out.columns:
            raise ValueError(f"column {name!r} already exists in steps; pick another scorer name")
        out = out.merge(df[[*_KEYS, col]].rename(columns={col: name}), on=_KEYS, how="left", validate="one_to_one")
    return out


def trace_wrongness(steps: pd.DataFrame, score: str, how: str = "max") -> pd.Series:
    """Per trace (indexed by trace_id): the ``max`` or ``mean`` of its steps' ``score`` (NaN steps skipped)."""
    if how not in ("max", "mean"):
        raise ValueError(f"how={how!r}: use 'max' or 'mean'")
    if score not in steps.columns:
        raise KeyError(f"score column {score!r} is not in the steps; columns: {list(steps.columns)}")
    return steps.groupby("trace_id")[score].agg(how)


def vote(traces: pd.DataFrame, weight: pd.Series | None = None) -> pd.DataFrame:
    """Per problem: the voted ``answer``, whether it is ``correct`` and how many traces ``n_traces`` took part."""
    df = traces.copy()
    df["w"] = 1.0 if weight is None else df["trace_id"].map(weight).fillna(0.0).to_numpy()
    rows = []
    for pid, grp in df.groupby("problem_id", sort=True):
        gold = grp["gold_answer"].iloc[0]
        answered = grp[grp["answer"].notna()]
        if len(answered) == 0:
            rows.append({"problem_id": pid, "answer": None, "correct": False, "n_traces": len(grp)})
            continue
        tally = answered.groupby("answer").agg(w=("w", "sum"), n=("w", "size")).reset_index()
        best = tally.sort_values(["w", "n", "answer"], ascending=[False, False, True]).iloc[0]["answer"]
        rows.append({"problem_id": pid, "answer": best, "correct": best == gold, "n_traces": len(grp)})
    return pd.DataFrame(rows)


def _best_of_n(traces: pd.DataFrame, wrong: pd.Series) -> pd.DataFrame:
    df = traces.assign(wrong=traces["trace_id"].map(wrong).fillna(np.inf).to_numpy())
    pick = df.sort_values(["problem_id", "wrong", "trace_id"]).groupby("problem_id").head(1)
    return pd.DataFrame({"problem_id": pick.problem_id, "answer": pick.answer, "correct": pick.answer_correct})


def voting_table(
    traces: pd.DataFrame, steps: pd.DataFrame, scores: Sequence[str], *, how: str = "max", weight: str = "rank"
) -> pd.DataFrame:
    """Final-answer accuracy per problem of every selection rule; columns ``method, scorer, accuracy, n_problems``.

    Rows: a single sample (mean over traces), plain majority, pass@N (any trace right: the ceiling), then for
    each scorer best-of-N and weighted majority.
    """
    if weight not in ("rank", "prob"):
        raise ValueError(f"weight={weight!r}: use 'rank' or 'prob'")
    n = traces["problem_id"].nunique()
    per_problem = traces.groupby("problem_id")["answer_correct"]
    rows = [
        {"method": "single sample", "scorer": "", "accuracy": float(per_problem.mean().mean())},
        {"method": "majority", "scorer": "", "accuracy": float(vote(traces).correct.mean())},
        {"method": "pass@N (ceiling)", "scorer": "", "accuracy": float(per_problem.any().mean())},
    ]
    for s in scores:
        wrong = trace_wrongness(steps, s, how).reindex(traces["trace_id"]).dropna()
        if weight == "prob":
            if wrong.min() < 0 or wrong.max() > 1:
                raise ValueError(f"weight='prob' needs {s!r} in [0, 1]; use weight='rank' for other scales")
            w = 1.0 - wrong
        else:
            w = 1.0 - wrong.rank(pct=True)
        rows.append({"method": "best-of-N", "scorer": s, "accuracy": float(_best_of_n(traces, wrong).correct.mean())})
        rows.append({"method": "weighted majority", "scorer": s, "accuracy": float(vote(traces, w).correct.mean())})
    return pd.DataFrame(rows).assign(n_problems=n)
