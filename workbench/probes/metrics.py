"""Metrics for step scorers: ranking, calibration and ProcessBench-style first-error F1.

Every scorer in the workbench (probe, head, logit baseline) outputs a score per step where **higher means
"more likely wrong"**, and is judged here with the same functions. Ranking metrics come from scikit-learn:
ROC-AUC (``roc_auc_score``), PR-AUC as average precision (``average_precision_score``) with the wrong step as
the positive class, and the reverse PR-AUC (correct steps positive, score negated), which is what a reader
interested in "which steps can I trust" looks at. Calibration needs probabilities: Brier score and expected
calibration error (ECE) over equal-width bins, with the bins as a tidy table for reliability diagrams.

ProcessBench (arXiv 2412.06559; ``docs/methods.md``) scores a whole trace: the prediction is the first step whose
score crosses a threshold (−1 when none does), the threshold is chosen on held-out traces, and F1 is the
harmonic mean of the accuracy on traces with an error (the predicted index must equal the gold one) and
on error-free traces (the prediction must be −1). Trivial baselines ("always no error", "always the first
step") belong in the same table.

Single-class or empty inputs raise :class:`MetricInputError` instead of returning NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score, roc_curve

__all__ = [
    "MetricInputError",
    "BinaryReport",
    "check_binary",
    "roc_auc",
    "pr_auc",
    "pr_auc_reverse",
    "accuracy",
    "brier",
    "reliability_bins",
    "expected_calibration_error",
    "binary_report",
    "roc_points",
    "pr_points",
    "ProcessBenchResult",
    "first_error_predictions",
    "gold_first_errors",
    "processbench_f1",
    "choose_threshold",
    "processbench_table",
]


class MetricInputError(ValueError):
    """Labels or scores a metric cannot be computed on (empty, one class only, NaN, mismatched lengths)."""


def check_binary(y, score, what: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """``y`` as 0/1 integers and ``score`` as floats, validated: same length, non-empty, finite, both classes."""
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or score.ndim != 1 or len(y) != len(score):
        raise MetricInputError(f"{what}: labels {y.shape} and scores {score.shape} must be 1-D and of one length")
    if len(y) == 0:
        raise MetricInputError(f"{what}: no steps to score (empty input); check the split or the label filter")
    if y.dtype == object or not np.isin(y, [0, 1, True, False]).all():
        raise MetricInputError(f"{what}: labels must be 0/1 or bool; got values {sorted(set(y.tolist()))[:5]}")
    if not np.isfinite(score).all():
        raise MetricInputError(f"{what}: {int((~np.isfinite(score)).sum())} scores are NaN or infinite; drop them")
    y = y.astype(np.int64)
    if y.min() == y.max():
        cls = "wrong (1)" if y[0] else "correct (0)"
        raise MetricInputError(
            f"{what}: all {len(y)} labels are {cls}; ranking metrics need both classes (use more traces)"
        )
    return y, score


def _check_prob(prob: np.ndarray, what: str) -> None:
    if prob.min() < 0 or prob.max() > 1:
        raise MetricInputError(f"{what}: probabilities must lie in [0, 1]; pass a calibrated probability")


def roc_auc(y, score) -> float:
    """Area under the ROC curve (ties count one half, as in scikit-learn)."""
    y, score = check_binary(y, score, "roc_auc")
    return float(roc_auc_score(y, score))


def pr_auc(y, score) -> float:
    """Average precision with the wrong step (``y == 1``) as the positive class."""
    y, score = check_binary(y, score, "pr_auc")
    return float(average_precision_score(y, score))


def pr_auc_reverse(y, score) -> float:
    """Average precision with the *correct* step as the positive class (score negated)."""
    y, score = check_binary(y, score, "pr_auc_reverse")
    return float(average_precision_score(1 - y, -score))


def accuracy(y, prob, threshold: float = 0.5) -> float:
    """Share of steps where ``prob >= threshold`` equals the label."""
    y, prob = check_binary(y, prob, "accuracy")
    return float(((prob >= threshold).astype(np.int64) == y).mean())


def brier(y, prob) -> float:
    """Mean squared error of the probability of "wrong" (scikit-learn's ``brier_score_loss``)."""
    y, prob = check_binary(y, prob, "brier")
    _check_prob(prob, "brier")
    return float(brier_score_loss(y, prob))


def reliability_bins(y, prob, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: columns ``bin, lo, hi, n, mean_prob, frac_positive, gap`` (empty bins kept).

    ``gap`` is ``mean_prob - frac_positive`` (positive: over-confident that steps are wrong); NaN in empty bins.
    """
    y, prob = check_binary(y, prob, "reliability_bins")
    _check_prob(prob, "reliability_bins")
    if n_bins < 1:
        raise MetricInputError(f"n_bins={n_bins}: must be >= 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, n_bins - 1)  # prob == 1 joins the last bin
    rows = []
    for b in range(n_bins):
        sel = which == b
        n = int(sel.sum())
        mp = float(prob[sel].mean()) if n else np.nan
        fp = float(y[sel].mean()) if n else np.nan
        rows.append({"bin": b, "lo": edges[b], "hi": edges[b + 1], "n": n, "mean_prob": mp, "frac_positive": fp})
    df = pd.DataFrame(rows)
    df["gap"] = df["mean_prob"] - df["frac_positive"]
    return df


def expected_calibration_error(y, prob, n_bins: int = 10) -> float:
    """ECE: the step-weighted mean of ``|mean_prob - frac_positive|`` over equal-width bins."""
    bins = reliability_bins(y, prob, n_bins)
    full = bins[bins.n > 0]
    return float((full.n * full.gap.abs()).sum() / full.n.sum())


@dataclass(frozen=True, kw_only=True)
class BinaryReport:
    """All step metrics of one scorer on one set of steps (higher score = more likely wrong)."""

    n: int
    """Steps scored."""
    n_pos: int
    """Wrong steps among them."""
    base_rate: float
    """Share of wrong steps (the PR-AUC of a random scorer)."""
    roc_auc: float
    pr_auc: float
    """Average precision, wrong step positive."""
    pr_auc_reverse: float
    """Average precision, correct step positive."""
    accuracy: float
    """At probability 0.5; NaN when the scorer has no probabilities."""
    brier: float
    """NaN when the scorer has no probabilities."""
    ece: float
    """10 equal-width bins; NaN when the scorer has no probabilities."""

    def as_dict(self) -> dict:
        return asdict(self)


def binary_report(y, score, prob=None, *, n_bins: int = 10) -> BinaryReport:
    """Ranking metrics of ``score``; calibration metrics of ``prob`` when given (the score itself may be one)."""
    y, score = check_binary(y, score, "binary_report")
    nan = float("nan")
    acc = bri = ece = nan
    if prob is not None:
        acc, bri, ece = accuracy(y, prob), brier(y, prob), expected_calibration_error(y, prob, n_bins)
    return BinaryReport(
        n=len(y),
        n_pos=int(y.sum()),
        base_rate=float(y.mean()),
        roc_auc=roc_auc(y, score),
        pr_auc=pr_auc(y, score),
        pr_auc_reverse=pr_auc_reverse(y, score),
        accuracy=acc,
        brier=bri,
        ece=ece,
    )


def roc_points(y, score) -> pd.DataFrame:
    """The ROC curve as a table: columns ``fpr, tpr, threshold``."""
    y, score = check_binary(y, score, "roc_points")
    fpr, tpr, thr = roc_curve(y, score)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def pr_points(y, score) -> pd.DataFrame:
    """The precision-recall curve (wrong step positive) as a table: columns ``recall, precision, threshold``."""
    y, score = check_binary(y, score, "pr_points")
    precision, recall, thr = precision_recall_curve(y, score)
    return pd.DataFrame({"recall": recall, "precision": precision, "threshold": np.append(thr, np.inf)})


# ---- ProcessBench ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProcessBenchResult:
    """ProcessBench-style first-error detection on a set of traces."""

    threshold: float
    """Score threshold (a step is flagged when its score is ``>=`` it); NaN for fixed baselines."""
    n_error: int
    """Traces with an error."""
    n_correct: int
    """Error-free traces."""
    acc_error: float
    """Share of traces with an error whose predicted first error is the gold one."""
    acc_correct: float
    """Share of error-free traces predicted error-free (−1)."""
    f1: float
    """Harmonic mean of ``acc_error`` and ``acc_correct`` (0 when either is 0)."""

    def as_dict(self) -> dict:
        return asdict(self)


def _by_trace(steps: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in ["trace_id", "step_index", *columns] if c not in steps.columns]
    if missing:
        raise MetricInputError(f"steps: missing columns {missing}; have {list(steps.columns)}")
    if len(steps) == 0:
        raise MetricInputError("steps: no steps (empty input)")
    return steps.sort_values(["trace_id", "step_index"], kind="stable")


def gold_first_errors(steps: pd.DataFrame, label: str = "label_first_error") -> pd.Series:
    """Per trace, the ``step_index`` of the step marked True in ``label`` (−1 when none); indexed by trace_id."""
    df = _by_trace(steps, [label])
    flagged = df[df[label].fillna(False).astype(bool)]
    gold = flagged.groupby("trace_id")["step_index"].min()
    return gold.reindex(df["trace_id"].unique(), fill_value=-1).astype(np.int64)


def first_error_predictions(steps: pd.DataFrame, score: str, threshold: float) -> pd.Series:
    """Per trace, the ``step_index`` of the first step with ``score >= threshold`` (−1 when none)."""
    df = _by_trace(steps, [score])
    hit = df[df[score].to_numpy(dtype=np.float64) >= threshold]
    pred = hit.groupby("trace_id")["step_index"].min()
    return pred.reindex(df["trace_id"].unique(), fill_value=-1).astype(np.int64)


def processbench_f1(pred: pd.Series, gold: pd.Series, threshold: float = float("nan")) -> ProcessBenchResult:
    """F1 of predicted first-error indices against gold ones (both indexed by trace_id, −1 = no error)."""
    if len(gold) == 0:
        raise MetricInputError("processbench_f1: no traces (empty input)")
    pred = pred.reindex(gold.index)
    if pred.isna().any():
        raise MetricInputError(f"processbench_f1: {int(pred.isna().sum())} traces have no prediction")
    err = gold.to_numpy() >= 0
    if err.all() or not err.any():
        which = "an error" if err.all() else "no error"
        raise MetricInputError(f"processbench_f1: every trace has {which}; F1 needs both kinds of trace")
    hit = pred.to_numpy() == gold.to_numpy()
    a_err, a_ok = float(hit[err].mean()), float(hit[~err].mean())
    f1 = 0.0 if a_err + a_ok == 0 else 2 * a_err * a_ok / (a_err + a_ok)
    return ProcessBenchResult(
        threshold=threshold,
        n_error=int(err.sum()),
        n_correct=int((~err).sum()),
        acc_error=a_err,
        acc_correct=a_ok,
        f1=f1,
    )


def choose_threshold(steps: pd.DataFrame, score: str, label: str = "label_first_error") -> float:
    """The threshold maximising ProcessBench F1 on ``steps`` (held-out traces; never the test traces).

    Candidates are the distinct scores plus +inf (flag nothing); ties go to the highest threshold. Vectorised
    with running maxima: a trace with gold first error ``g`` is hit exactly for thresholds in
    ``(max score before g, max score up to g]``, an error-free trace for thresholds above its maximum.
    """
    df = _by_trace(steps, [score, label])
    s = df[score].to_numpy(dtype=np.float64)
    if not np.isfinite(s).all():
        raise MetricInputError(f"choose_threshold: {score} has NaN or infinite scores; drop those steps first")
    gold = gold_first_errors(df, label)
    run = pd.Series(s, index=df.index).groupby(df["trace_id"].to_numpy()).cummax().to_numpy()
    prev = pd.Series(run, index=df.index).groupby(df["trace_id"].to_numpy()).shift(1).fillna(-np.inf).to_numpy()
    is_gold = df["step_index"].to_numpy() == df["trace_id"].map(gold).to_numpy()
    lo, hi = np.sort(prev[is_gold]), np.sort(run[is_gold])  # error traces: hit for lo < t <= hi
    top = np.sort(df[df["trace_id"].map(gold).to_numpy() < 0].groupby("trace_id")[score].max().to_numpy())
    if len(hi) == 0 or len(top) == 0:
        which = "an error" if len(top) == 0 else "no error"
        raise MetricInputError(f"choose_threshold: every trace has {which}; F1 needs both kinds of trace")
    cand = np.unique(np.append(s, np.inf))
    a_err = (np.searchsorted(lo, cand, side="left") - np.searchsorted(hi, cand, side="left")) / len(hi)
    a_ok = np.searchsorted(top, cand, side="left") / len(top)
    f1 = np.where(a_err + a_ok > 0, 2 * a_err * a_ok / np.maximum(a_err + a_ok, 1e-300), 0.0)
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(cand[best])


def processbench_table(
    val: pd.DataFrame, test: pd.DataFrame, scores: list[str], label: str = "label_first_error"
) -> pd.DataFrame:
    """F1 of each score column (threshold chosen on ``val``, measured on ``test``) and the trivial baselines.

    Columns: ``scorer, threshold, n_error, n_correct, acc_error, acc_correct, f1``.
    """
    gold = gold_first_errors(test, label)
    rows = []
    for s in scores:
        t = choose_threshold(val, s, label)
        rows.append({"scorer": s, **processbench_f1(first_error_predictions(test, s, t), gold, t).as_dict()})
    first = test.sort_values(["trace_id", "step_index"]).groupby("trace_id")["step_index"].min()
    for name, pred in (("always no error", pd.Series(-1, index=gold.index)), ("always first step", first)):
        rows.append({"scorer": name, **processbench_f1(pred, gold).as_dict()})
    return pd.DataFrame(rows)
