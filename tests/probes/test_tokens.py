"""Token-level multiple-instance probes: aggregation, bags from a store, and learning a one-marked-token task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from workbench.probes.tokens import TokenBags, TokenProbeConfig, aggregate, fit_token_probe, token_bags

D = 6
HOOK = "blocks.1.hook_resid_post"


def _bags(n: int, seed: int, *, pair: bool = False) -> TokenBags:
    """Bags of 2–7 noise tokens. Marked task: a wrong bag has one token with +5 on feature 0. Pair task: each
    token carries a "prediction" (previous half) and a "written" (current half) sign; a bag is wrong iff at one
    token they disagree — a token's own half says nothing, only the pair does."""
    g = np.random.default_rng(seed)
    lens = g.integers(2, 8, size=n)
    wrong = g.random(n) < 0.3
    feats = []
    for m, w in zip(lens, wrong, strict=True):
        f = g.normal(size=(m, 2 * D)).astype(np.float32)
        bad = g.integers(m)
        if pair:
            s = g.choice([-1.0, 1.0], size=m)
            f[:, D], f[:, 0] = 2 * s, 2 * s
            if w:
                f[bad, 0] = -f[bad, 0]
        elif w:
            f[bad, 0] += 5.0
        feats.append(f)
    steps = pd.DataFrame({"trace_id": [f"t{i}" for i in range(n)], "problem_id": [f"p{seed}-{i}" for i in range(n)],
                          "step_index": 0})  # fmt: skip
    return TokenBags(
        feats=torch.as_tensor(np.concatenate(feats)),
        bag=torch.repeat_interleave(torch.arange(n), torch.as_tensor(lens)),
        labels=torch.as_tensor(wrong.astype(np.float32)), steps=steps, n_current=D,
    )  # fmt: skip


def test_aggregate_equals_per_bag_reductions():
    z, bag = torch.tensor([0.5, -1.0, 3.0, 2.0, 2.0, -4.0]), torch.tensor([0, 0, 1, 1, 1, 2])
    torch.testing.assert_close(aggregate(z, bag, 3, "max"), torch.tensor([0.5, 3.0, -4.0]))
    torch.testing.assert_close(aggregate(z, bag, 3, "mean"), torch.tensor([-0.25, 7 / 3, -4.0]))
    want = torch.stack([z[bag == b].logsumexp(0) for b in range(3)])
    torch.testing.assert_close(aggregate(z, bag, 3, "logsumexp"), want)
    with pytest.raises(ValueError, match="how='median'"):
        aggregate(z, bag, 3, "median")


FAST = {"epochs": 40, "patience": 40, "lr": 1e-2, "batch_size": 64, "device": "cpu"}


@pytest.mark.parametrize("agg", ["max", "logsumexp"])
def test_mil_probe_finds_the_one_marked_token(agg):
    cfg = TokenProbeConfig(hooks=("x",), hidden=0, aggregate=agg, **FAST)
    probe = fit_token_probe(_bags(300, 0), _bags(100, 1), cfg)
    test = _bags(300, 2)
    assert roc_auc_score(test.labels, probe.scores(test)) > 0.95
    marked = test.feats[:, 0] > 3.5  # the probe's highest token in a wrong bag is the marked one
    top = aggregate(probe.token_scores(test), test.bag, len(test.labels), "max")
    assert (probe.token_scores(test)[marked] >= top[test.bag[marked]] - 1e-6).float().mean() > 0.9


def test_bilinear_pair_reads_a_disagreement_that_neither_half_shows():
    tr, va, te = _bags(400, 0, pair=True), _bags(100, 1, pair=True), _bags(300, 2, pair=True)
    pair = fit_token_probe(
        tr, va, TokenProbeConfig(hooks=("x",), previous_hooks=("y",), hidden=0, bilinear_rank=2, **FAST)
    )
    assert roc_auc_score(te.labels, pair.scores(te)) > 0.95
    lin = fit_token_probe(tr, va, TokenProbeConfig(hooks=("x",), previous_hooks=("y",), hidden=0, **FAST))
    assert roc_auc_score(te.labels, lin.scores(te)) < 0.85  # a line catches one disagreement sign of two


def test_token_bags_from_a_store_shift_previous_tokens_within_traces(toy_store):
    idx = toy_store.index
    cfg = TokenProbeConfig(hooks=(HOOK,), previous_hooks=(HOOK,))
    bags = token_bags(toy_store, idx, cfg, target="label_logical", positive=False)
    steps = idx[idx.token_row >= 0].sort_values(["trace_id", "step_index"])
    own = torch.cat(toy_store.step_tokens(HOOK, steps)).float()
    d = own.shape[1]
    assert bags.n_current == d and bags.feats.shape == (len(own), 2 * d) and len(bags.labels) == len(steps)
    torch.testing.assert_close(bags.feats[:, :d], own)
    first = np.r_[True, steps.trace_id.to_numpy()[1:] != steps.trace_id.to_numpy()[:-1]]
    starts = np.cumsum(steps.n_token_rows) - steps.n_token_rows
    is_first = torch.zeros(len(own), dtype=torch.bool)
    is_first[torch.as_tensor(starts.to_numpy()[first])] = True
    assert (bags.feats[is_first, d:] == 0).all()  # nothing before a trace's first step token
    later = torch.nonzero(~is_first).squeeze(-1)
    torch.testing.assert_close(bags.feats[later, d:], own[later - 1])
    assert np.array_equal(np.isnan(bags.labels.numpy()), steps.label_logical.isna().to_numpy())


def test_bad_input_is_refused(toy_store):
    with pytest.raises(KeyError, match="tokens/blocks.0.hook_resid_post"):
        token_bags(toy_store, toy_store.index, TokenProbeConfig(hooks=("blocks.0.hook_resid_post",)))
    with pytest.raises(KeyError, match="label_nope"):
        token_bags(toy_store, toy_store.index, TokenProbeConfig(hooks=(HOOK,)), target="label_nope")
    with pytest.raises(ValueError, match="bilinear_rank"):
        TokenProbeConfig(hooks=(HOOK,), bilinear_rank=4)
    with pytest.raises(ValueError, match="aggregate"):
        TokenProbeConfig(aggregate="median")
    tr = _bags(50, 0)
    with pytest.raises(ValueError, match="share a problem"):
        fit_token_probe(tr, tr, TokenProbeConfig(hooks=("x",), **FAST))
