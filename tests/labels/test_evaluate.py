"""Agreement metrics: ROC-AUC against a pairwise reference, Spearman, rollout agreement, the Φ trend."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.labels import StepKey, join_labels, trace_from_text
from workbench.labels.agreement import potential_trend, roc_auc, rollout_agreement, spearman
from workbench.toy import parse_prompt


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=30))
def test_roc_auc_equals_the_pairwise_probability(pairs):
    scores, labels = [float(s) for s, _ in pairs], [y for _, y in pairs]
    pos = [s for s, y in pairs if y]
    neg = [s for s, y in pairs if not y]
    if not pos or not neg:
        assert math.isnan(roc_auc(scores, labels))
        return
    ref = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert roc_auc(scores, labels) == pytest.approx(ref)


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


PROMPT = "b48,i68,c71;n=i+c;y=c+n;d=b+n;?d\n"  # n=39, y=10, d=87


def test_rollout_agreement_and_potential_trend_on_hand_labelled_traces():
    problem = parse_prompt(PROMPT, problem_id="p")
    solved = trace_from_text(problem, "n=i68+c71=n39\ny=c71+n39=y10\nd=b48+n39=d87\nans=87\n", trace_id="ok")
    dead = trace_from_text(problem, "n=i68+c71=n40\ny=c71+n40=y11\nd=b48+n40=d88\nans=88\n", trace_id="dead")
    soft = {"ok": [0.9, 1.0, 1.0, 1.0], "dead": [0.5, 0.0, 0.25, 0.0]}
    phi = {"ok": [-0.2, 0.1, 0.6, 0.95], "dead": [0.0, 0.0, 0.0, 0.0]}
    table = {StepKey(tid, i): {"rollout_soft": soft[tid][i], "spae_phi": phi[tid][i]} for tid in soft for i in range(4)}
    traces = join_labels([solved, dead], table)
    agreement = rollout_agreement(traces)
    assert agreement.auc_viable == agreement.auc_prefix_correct == 1.0  # every viable prefix scores above dead ones
    assert agreement.n_after_error == 3 and agreement.mean_soft_after_error == pytest.approx(0.25 / 3)
    assert agreement.mean_soft_solved_correct == pytest.approx(3.9 / 4)
    trend = potential_trend(traces)
    assert trend.n_traces == 1 and trend.mean_spearman == pytest.approx(1.0) and trend.frac_rising == 1.0
    assert trend.mean_phi_by_third == pytest.approx((-0.05, 0.6, 0.95))
