"""Best-of-N and weighted majority voting on a hand-made pool; step-scored traces as one table."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.probes.voting import scored_steps, trace_wrongness, vote, voting_table

TRACES = pd.DataFrame(
    {
        "trace_id": ["t1", "t2", "t3", "t4", "t5"],
        "problem_id": ["P1", "P1", "P1", "P2", "P2"],
        "answer": ["5", "7", "7", "3", None],
        "gold_answer": ["5", "5", "5", "3", "3"],
        "answer_correct": [True, False, False, True, False],
    }
)
STEPS = pd.DataFrame(
    {
        "trace_id": ["t1", "t1", "t2", "t2", "t3", "t4", "t5"],
        "step_index": [0, 1, 0, 1, 0, 0, 0],
        "p": [0.1, 0.1, 0.9, 0.2, 0.8, 0.3, 0.6],
    }
)


def test_votes_by_hand():
    assert vote(TRACES).set_index("problem_id").answer.to_dict() == {"P1": "7", "P2": "3"}  # plain majority
    wrong = trace_wrongness(STEPS, "p")
    assert wrong.to_dict() == pytest.approx({"t1": 0.1, "t2": 0.9, "t3": 0.8, "t4": 0.3, "t5": 0.6})
    weighted = vote(TRACES, 1 - wrong).set_index("problem_id")  # "5": 0.9 against "7": 0.1 + 0.2
    assert weighted.answer["P1"] == "5" and weighted.correct.all()
    t = voting_table(TRACES, STEPS, ["p"], weight="prob").set_index(["method", "scorer"]).accuracy
    assert t["single sample", ""] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert t["majority", ""] == 0.5 and t["pass@N (ceiling)", ""] == 1.0
    assert t["best-of-N", "p"] == 1.0 and t["weighted majority", "p"] == 1.0
    ranked = voting_table(TRACES, STEPS, ["p"]).set_index(["method", "scorer"]).accuracy
    assert ranked["weighted majority", "p"] == 1.0  # rank weights: t1 0.8, t2 0.0, t3 0.2


def test_scored_steps_joins_scores_as_columns():
    index = STEPS[["trace_id", "step_index"]].assign(kind="compute")
    head = STEPS.rename(columns={"p": "head_prob"})
    probe = STEPS.assign(score=STEPS.p * 2).drop(columns="p").iloc[:3]
    df = scored_steps(index, {"head": head, "probe": probe})
    assert list(df.columns) == ["trace_id", "step_index", "kind", "head", "probe"]
    assert df.probe.isna().sum() == 4
    with pytest.raises(ValueError, match="prob"):
        voting_table(TRACES, STEPS.assign(p=STEPS.p * 5), ["p"], weight="prob")
