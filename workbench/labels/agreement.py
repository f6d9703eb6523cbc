"""Checking label sources against ground truth: ROC-AUC, rollout agreement, the step-potential trend.

On the toy task the checker is ground truth, so the model-based label sources can be measured:

- :func:`rollout_agreement`: does the rollout soft label (Math-Shepherd) separate viable from dead prefixes?
  ROC-AUC against the checker's ``viable`` (no uncorrected error in a value the answer depends on: what
  rollouts estimate), ``prefix_correct`` (no uncorrected error at all) and the step's own ``correct``, plus
  the mean soft label on dead paths after an error (expected near 0) and on correct prefixes of solved
  problems (expected near the model's own success rate, near 1 for a strong model).
- :func:`potential_trend`: does SPAE's Φ rise over the steps of correctly solved traces? Spearman correlation
  of Φ with the step index per trace (mean over traces), the share of traces whose last Φ exceeds the first,
  and mean Φ by relative position (first/middle/last third).

Both read labels already joined into the traces (:func:`workbench.labels.table.join_labels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from workbench.traces.types import Trace

__all__ = ["roc_auc", "spearman", "RolloutAgreement", "rollout_agreement", "PotentialTrend", "potential_trend"]


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (scikit-learn's, ties counted half); NaN when one class is absent."""
    y = [bool(v) for v in labels]
    if len(set(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, [float(s) for s in scores]))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (SciPy's); NaN when either side is constant."""
    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True, kw_only=True)
class RolloutAgreement:
    """How well rollout soft labels agree with the checker."""

    auc_viable: float
    """ROC-AUC of ``rollout_soft`` against the checker's ``viable`` (the headline number)."""
    auc_prefix_correct: float
    """ROC-AUC of ``rollout_soft`` against ``prefix_correct`` (any uncorrected error counts)."""
    auc_correct: float
    """ROC-AUC of ``rollout_soft`` against the step's own correctness (``correct``)."""
    mean_soft_after_error: float
    """Mean soft label on steps of a dead path (not viable, and the step before was not viable either)."""
    mean_soft_solved_correct: float
    """Mean soft label on correct prefixes (``prefix_correct``) of correctly solved traces."""
    n_steps: int
    """Steps evaluated."""
    n_after_error: int
    """Steps in the after-error group."""


def rollout_agreement(traces: Sequence[Trace]) -> RolloutAgreement:
    """Compare ``rollout_soft`` with the checker's ``viable``/``prefix_correct``/``correct`` labels on toy traces."""
    cols: dict[str, list] = {"soft": [], "viable": [], "prefix_correct": [], "correct": []}
    after_error, solved = [], []
    for t in traces:
        dead_before = False  # the path was already dead after the previous step
        for s in t.steps:
            lab = s.labels
            for name in cols:
                cols[name].append(lab["rollout_soft"] if name == "soft" else lab[name])
            if dead_before and not lab["viable"]:
                after_error.append(lab["rollout_soft"])
            if t.answer_correct and lab["prefix_correct"]:
                solved.append(lab["rollout_soft"])
            dead_before = not lab["viable"]
    return RolloutAgreement(
        auc_viable=roc_auc(cols["soft"], cols["viable"]),
        auc_prefix_correct=roc_auc(cols["soft"], cols["prefix_correct"]),
        auc_correct=roc_auc(cols["soft"], cols["correct"]),
        mean_soft_after_error=_mean(after_error),
        mean_soft_solved_correct=_mean(solved),
        n_steps=len(cols["soft"]),
        n_after_error=len(after_error),
    )


@dataclass(frozen=True, kw_only=True)
class PotentialTrend:
    """How Φ evolves over the steps of correctly solved traces."""

    mean_spearman: float
    """Mean over traces of the Spearman correlation between step index and Φ (constant-Φ traces skipped)."""
    frac_rising: float
    """Share of traces whose Φ at the last step exceeds Φ at the first."""
    mean_phi_by_third: tuple[float, float, float]
    """Mean Φ of steps in the first, middle and last third of their trace."""
    n_traces: int
    """Correctly solved traces with at least two steps."""


def potential_trend(traces: Sequence[Trace]) -> PotentialTrend:
    """Summarise ``spae_phi`` over the steps of correctly solved traces (at least two steps)."""
    rhos, rising, thirds = [], [], ([], [], [])
    solved = [t for t in traces if t.answer_correct and len(t.steps) >= 2]
    for t in solved:
        phi = [s.labels["spae_phi"] for s in t.steps]
        rho = spearman(list(range(len(phi))), phi)
        if rho == rho:  # not NaN
            rhos.append(rho)
        rising.append(phi[-1] > phi[0])
        for i, p in enumerate(phi):
            thirds[min(2, 3 * i // len(phi))].append(p)
    return PotentialTrend(
        mean_spearman=_mean(rhos),
        frac_rising=_mean(rising),
        mean_phi_by_third=tuple(_mean(x) for x in thirds),
        n_traces=len(solved),
    )


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")
