"""The uncertainty head: learns a synthetic problem, refuses > 10M parameters, is causal, saves and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from workbench.heads import (
    HeadConfig,
    HeadTrainConfig,
    TraceSequence,
    UncertaintyHead,
    load_head,
    score_sequences,
    score_steps,
    train_head,
    train_on_sequences,
)
from workbench.heads.data import collate

D = 6


def _synthetic(n_traces: int, seed: int) -> list[TraceSequence]:
    """A step is wrong iff one of its tokens carries +2 on feature 0 (plus noise everywhere): a known answer."""
    g = np.random.default_rng(seed)
    out = []
    for t in range(n_traces):
        n_steps = int(g.integers(2, 6))
        lens = g.integers(2, 6, size=n_steps)
        wrong = g.random(n_steps) < 0.3
        feats = [g.normal(size=(n, D)).astype(np.float32) for n in lens]
        for f, w in zip(feats, wrong, strict=True):
            if w:
                f[g.integers(len(f)), 0] += 4.0
        token_step = np.repeat(np.arange(n_steps), lens)
        in_step = np.concatenate([np.arange(n) for n in lens])
        out.append(
            TraceSequence(
                trace_id=f"t{seed}-{t}", problem_id=f"p{seed}-{t}", feats=torch.as_tensor(np.concatenate(feats)),
                token_step=torch.as_tensor(token_step), in_step=torch.as_tensor(in_step),
                step_index=np.arange(n_steps), labels=torch.as_tensor(wrong.astype(np.float32)),
            )
        )  # fmt: skip
    return out


SMALL = HeadConfig(hooks=("synthetic",), width=32, n_heads=4, dropout=0.0)
FAST = HeadTrainConfig(epochs=12, batch_size=16, lr=3e-3, patience=12, device="cpu", progress=False)


def test_head_learns_a_synthetic_problem_and_round_trips(tmp_path):
    tr, va, te = _synthetic(200, 0), _synthetic(40, 1), _synthetic(60, 2)
    res = train_on_sequences(tr, va, tmp_path / "h", SMALL, FAST)
    df = score_sequences(res.head, te)
    assert roc_auc_score(df.y, df.head_score) > 0.95
    assert {"cfg.json", "head.safetensors", "manifest.json"} <= {p.name for p in (tmp_path / "h").iterdir()}
    again = score_sequences(load_head(tmp_path / "h"), te)
    np.testing.assert_allclose(again.head_score, df.head_score, rtol=1e-5, atol=1e-6)
    assert list(res.history.columns)[:5] == ["epoch", "train_loss", "val_loss", "val_roc_auc", "val_pr_auc"]


def test_training_resumes_from_its_checkpoint(tmp_path):
    tr, va = _synthetic(40, 0), _synthetic(10, 1)
    first = train_on_sequences(tr, va, tmp_path / "h", SMALL, FAST.__class__(**{**FAST.__dict__, "epochs": 2}))
    assert first.resumed_from == 0 and len(first.history) == 2
    second = train_on_sequences(tr, va, tmp_path / "h", SMALL, FAST.__class__(**{**FAST.__dict__, "epochs": 3}))
    assert second.resumed_from == 2 and second.history.epoch.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="other settings"):
        train_on_sequences(tr, va, tmp_path / "h", SMALL, FAST.__class__(**{**FAST.__dict__, "lr": 1.0}))


def test_a_head_over_ten_million_parameters_is_refused():
    with pytest.raises(ValueError, match="under 10,000,000"):
        UncertaintyHead.build(HeadConfig(hooks=("a",), width=1024, n_layers=2, n_heads=8), 4096)
    assert sum(p.numel() for p in UncertaintyHead.build(SMALL, D).parameters()) < 10_000_000


def test_causal_head_scores_a_step_from_its_prefix_only():
    torch.manual_seed(0)
    head = UncertaintyHead.build(SMALL, D).eval()
    seq = _synthetic(1, 5)[0]
    full = collate([seq])
    z_full = head(full.feats, full.token_step, full.in_step, full.labels.shape[1])
    cut = int((seq.token_step <= 0).sum())  # tokens of step 0 only
    z_cut = head(full.feats[:, :cut], full.token_step[:, :cut], full.in_step[:, :cut], 1)
    torch.testing.assert_close(z_cut[0, 0], z_full[0, 0], atol=1e-5, rtol=1e-5)


def test_head_on_a_store(toy_store, tmp_path):
    cfg = HeadConfig(hooks=("blocks.1.hook_resid_post",), logit_features=True, top_k=2, width=32, n_heads=4)
    splits = toy_store.split(fractions={"train": 0.6, "val": 0.4})
    res = train_head(
        toy_store, tmp_path / "h", cfg, HeadTrainConfig(epochs=2, device="cpu", progress=False), splits=splits
    )
    scored = score_steps(res.head, toy_store)
    assert len(scored) == (toy_store.index.token_row >= 0).sum()
    assert list(scored.columns) == ["trace_id", "problem_id", "step_index", "head_score", "head_prob", "y"]
    with pytest.raises(KeyError, match="label_nope"):
        train_head(toy_store, tmp_path / "x", cfg, HeadTrainConfig(target="label_nope"), splits=splits)
    with pytest.raises(KeyError, match="tokens/blocks.0.hook_resid_post"):
        train_head(toy_store, tmp_path / "y", HeadConfig(hooks=("blocks.0.hook_resid_post",)), splits=splits)
