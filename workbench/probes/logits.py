"""Logit baselines: how unsure the model's own next-token distribution was while writing a step.

UHeads (arXiv 2511.06209) compares every learned scorer with these, aggregated per step. They come from
what capture stored (``CaptureConfig.logit_stats`` → index columns ``logit_*``; ``TokenFeatureConfig.top_k``
→ ``tokens/logprob``), so no model is needed here. Each is turned into a *wrongness* score (higher = more
likely wrong) so that it is scored by the same metrics as probes and heads:

- ``one_minus_max_prob``: 1 − mean over the step's tokens of the top probability;
- ``mean_entropy``: mean entropy (nats) of the distributions the step's tokens were drawn from;
- ``perplexity``: ``exp(−mean log p)`` of the tokens actually written;
- ``one_minus_min_prob``: 1 − the smallest probability of any token written in the step (needs token
  log-probabilities; at temperature 1 a sampled mistake is often one unlikely token, so this is strong).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.probes.metrics import binary_report

__all__ = ["BASELINES", "logit_baselines", "baseline_table"]

BASELINES = ("one_minus_max_prob", "mean_entropy", "perplexity", "one_minus_min_prob")
_KEYS = ["trace_id", "problem_id", "step_index"]


def logit_baselines(store, steps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Keys and the wrongness score of each available baseline, one row per step of ``steps`` (default: all).

    Raises when the store has neither logit statistics nor token log-probabilities.
    """
    steps = store.index if steps is None else steps
    have_stats = "logit_max_prob" in steps.columns
    have_tokens = "tokens/logprob" in store.keys
    if not have_stats and not have_tokens:
        raise ValueError(
            f"{store.root}: no logit statistics captured; capture with CaptureConfig(logit_stats=True) "
            "and/or TokenFeatureConfig(top_k=1 or more)"
        )
    out = steps[_KEYS].reset_index(drop=True)
    if have_stats:
        out["one_minus_max_prob"] = 1.0 - steps["logit_max_prob"].to_numpy(dtype=np.float64)
        out["mean_entropy"] = steps["logit_mean_entropy"].to_numpy(dtype=np.float64)
        out["perplexity"] = steps["logit_perplexity"].to_numpy(dtype=np.float64)
    if have_tokens:
        has = (steps["token_row"] >= 0).to_numpy()
        low = np.full(len(steps), np.nan)
        if has.any():
            lp = store.step_tokens("logprob", steps[has])
            low[has] = [float(t[~t.isnan()].min().exp()) if (~t.isnan()).any() else np.nan for t in lp]
        out["one_minus_min_prob"] = 1.0 - low
    return out


def baseline_table(scores: pd.DataFrame, y, names=None) -> pd.DataFrame:
    """Ranking metrics of each baseline column against labels ``y`` (1 = wrong): ``scorer`` + report columns.

    Steps where a baseline is NaN (no distribution, e.g. a sequence's first token) are left out of that row.
    """
    y = np.asarray(y)
    rows = []
    for name in names or [c for c in BASELINES if c in scores.columns]:
        s = scores[name].to_numpy(dtype=np.float64)
        ok = np.isfinite(s)
        rows.append({"scorer": name, **binary_report(y[ok], s[ok]).as_dict()})
    return pd.DataFrame(rows)
