"""Step metrics against hand-computed values; ProcessBench F1 on a hand-made set; bad input raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.probes import metrics as m

Y = [0, 0, 1, 1]
S = [0.1, 0.4, 0.35, 0.8]


def test_ranking_metrics_by_hand():
    assert m.roc_auc(Y, S) == pytest.approx(0.75)  # 3 of 4 (wrong, correct) pairs ordered right
    assert m.pr_auc(Y, S) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # hits at ranks 1 and 3
    assert m.pr_auc_reverse(Y, S) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # correct steps: ranks 1 and 3 of -S


def test_ties_count_one_half():
    assert m.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(3.5 / 4)
    assert m.roc_auc([0, 1], [0.3, 0.3]) == pytest.approx(0.5)


def test_calibration_by_hand():
    assert m.brier([0, 1], [0.2, 0.6]) == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert m.accuracy([0, 0, 1, 1], [0.1, 0.5, 0.7, 0.4]) == pytest.approx(0.5)  # 0.5 counts as "wrong"
    bins = m.reliability_bins([0, 0, 1, 1], [0.1, 0.2, 0.7, 1.0], n_bins=2)
    assert list(bins.columns) == ["bin", "lo", "hi", "n", "mean_prob", "frac_positive", "gap"]
    assert bins.n.tolist() == [2, 2]  # 1.0 lands in the last bin
    assert bins.mean_prob.tolist() == pytest.approx([0.15, 0.85])
    assert bins.gap.tolist() == pytest.approx([0.15, -0.15])
    assert m.expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.7, 1.0], n_bins=2) == pytest.approx(0.15)
    empty = m.reliability_bins([0, 1], [0.1, 0.15], n_bins=5)
    assert empty.n.tolist() == [2, 0, 0, 0, 0] and np.isnan(empty.gap[1])


def test_report_and_curves():
    r = m.binary_report(Y, S, prob=S)
    assert (r.n, r.n_pos, r.base_rate, r.roc_auc) == (4, 2, 0.5, pytest.approx(0.75))
    assert r.accuracy == pytest.approx(0.75)
    assert np.isnan(m.binary_report(Y, S).brier)
    roc = m.roc_points(Y, S)
    assert list(roc.columns) == ["fpr", "tpr", "threshold"] and roc.tpr.iloc[-1] == 1.0
    pr = m.pr_points(Y, S)
    assert list(pr.columns) == ["recall", "precision", "threshold"]


@pytest.mark.parametrize(
    "y, s, msg",
    [
        ([], [], "empty"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "all 3 labels are wrong"),
        ([0, 0], [0.1, 0.2], "all 2 labels are correct"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "one length"),
        ([0, 2], [0.1, 0.2], "0/1 or bool"),
    ],
)
def test_bad_input_raises_not_nan(y, s, msg):
    for fn in (m.roc_auc, m.pr_auc, m.brier, m.expected_calibration_error):
        with pytest.raises(m.MetricInputError, match=msg):
            fn(y, s)


def test_probabilities_must_be_probabilities():
    with pytest.raises(m.MetricInputError, match=r"\[0, 1\]"):
        m.brier([0, 1], [-0.5, 2.0])


def _hand_made() -> pd.DataFrame:
    rows = []
    made = (("A", 1, [0.1, 0.9, 0.2]), ("B", -1, [0.2, 0.3]), ("C", 0, [0.6, 0.1]), ("D", -1, [0.7, 0.1]))
    for trace, gold, scores in made:
        for i, s in enumerate(scores):
            rows.append({"trace_id": trace, "step_index": i, "score": s, "label_first_error": i == gold})
    return pd.DataFrame(rows)


def test_processbench_f1_on_a_hand_made_set():
    df = _hand_made()
    gold = m.gold_first_errors(df)
    assert gold.to_dict() == {"A": 1, "B": -1, "C": 0, "D": -1}
    pred = m.first_error_predictions(df, "score", 0.5)
    assert pred.to_dict() == {"A": 1, "B": -1, "C": 0, "D": 0}
    r = m.processbench_f1(pred, gold, 0.5)
    assert (r.acc_error, r.acc_correct, r.f1) == (1.0, 0.5, pytest.approx(2 / 3))
    r = m.processbench_f1(m.first_error_predictions(df, "score", 0.65), gold)
    assert (r.acc_error, r.acc_correct, r.f1) == (0.5, 0.5, 0.5)
    assert m.choose_threshold(df, "score") == pytest.approx(0.9)  # F1 2/3 on (0.3, 0.6] and (0.7, 0.9]: highest wins
    table = m.processbench_table(df, df, ["score"]).set_index("scorer")
    assert table.loc["score", "f1"] == pytest.approx(2 / 3)
    assert table.loc["always no error", "f1"] == 0.0 and table.loc["always no error", "acc_correct"] == 1.0
    assert table.loc["always first step", "acc_error"] == 0.5 and table.loc["always first step", "f1"] == 0.0


def test_vectorised_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    rows = []
    for t in range(25):
        n, gold = rng.integers(2, 7), rng.integers(-3, 4)
        for i in range(n):
            s = round(float(rng.random() + (0.5 if i == gold else 0.0)), 2)  # rounding makes ties
            rows.append({"trace_id": f"t{t}", "step_index": i, "score": s, "label_first_error": i == gold})
    df = pd.DataFrame(rows)
    gold = m.gold_first_errors(df)
    brute = max(
        m.processbench_f1(m.first_error_predictions(df, "score", t), gold).f1
        for t in np.append(df.score.unique(), np.inf)
    )
    best = m.choose_threshold(df, "score")
    assert m.processbench_f1(m.first_error_predictions(df, "score", best), gold).f1 == pytest.approx(brute)


def test_processbench_needs_both_kinds_of_trace():
    df = _hand_made()
    only_errors = df[df.trace_id.isin(["A", "C"])]
    with pytest.raises(m.MetricInputError, match="every trace has an error"):
        m.processbench_f1(m.first_error_predictions(only_errors, "score", 0.5), m.gold_first_errors(only_errors))
    with pytest.raises(m.MetricInputError, match="missing columns"):
        m.gold_first_errors(df.drop(columns="label_first_error"))
