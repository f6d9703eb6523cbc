"""Step pooling of the head: mean, max and attention equal per-step loops, stay causal, and learn the synthetic task."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import roc_auc_score

from tests.heads.test_head import FAST, SMALL, _synthetic
from workbench.heads import HeadConfig, HeadTrainConfig, UncertaintyHead, score_sequences, train_on_sequences
from workbench.heads.data import collate
from workbench.heads.model import pool_steps


def test_pool_steps_equals_a_loop_over_steps():
    torch.manual_seed(0)
    x, seg = torch.randn(9, 5), torch.tensor([0, 0, 2, 2, 2, 3, 0, 3, 3])  # segment 1 is empty
    score = torch.nn.Linear(5, 1).requires_grad_(False)
    got = {m: pool_steps(x, seg, 4, m, score) for m in ("mean", "max", "attention")}
    for s in range(4):
        rows = x[seg == s]
        if len(rows) == 0:
            assert all(float(g[s].abs().sum()) == 0.0 for g in got.values())
            continue
        torch.testing.assert_close(got["mean"][s], rows.mean(0))
        torch.testing.assert_close(got["max"][s], rows.amax(0))
        w = torch.softmax(score(rows).squeeze(-1), 0)
        torch.testing.assert_close(got["attention"][s], (w.unsqueeze(-1) * rows).sum(0))
    with pytest.raises(ValueError, match="score module"):
        pool_steps(x, seg, 4, "attention")


def test_pool_is_checked_and_only_attention_adds_parameters():
    with pytest.raises(ValueError, match="pool='median'"):
        HeadConfig(hooks=("a",), pool="median")
    n = {p: sum(q.numel() for q in UncertaintyHead.build(HeadConfig(**{**SMALL.to_json(), "pool": p}), 6).parameters())
         for p in ("mean", "max", "attention")}  # fmt: skip
    assert n["mean"] == n["max"] == n["attention"] - 33  # the attention score: Linear(32, 1)


@pytest.mark.parametrize("pool", ["max", "attention"])
def test_pooled_heads_learn_the_synthetic_problem_and_stay_causal(pool, tmp_path):
    cfg = HeadConfig(**{**SMALL.to_json(), "pool": pool})
    train = HeadTrainConfig(**{**FAST.__dict__, "epochs": 20, "patience": 20})
    res = train_on_sequences(_synthetic(200, 0), _synthetic(40, 1), tmp_path / "h", cfg, train)
    df = score_sequences(res.head, _synthetic(200, 2))
    assert roc_auc_score(df.y, df.head_score) > 0.95
    seq = _synthetic(1, 5)[0]
    full = collate([seq])
    head = res.head.eval()
    z_full = head(full.feats, full.token_step, full.in_step, full.labels.shape[1])
    cut = int((seq.token_step <= 0).sum())
    z_cut = head(full.feats[:, :cut], full.token_step[:, :cut], full.in_step[:, :cut], 1)
    torch.testing.assert_close(z_cut[0, 0], z_full[0, 0], atol=1e-5, rtol=1e-5)
