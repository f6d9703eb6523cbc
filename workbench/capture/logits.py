"""Logit features of step tokens: top-k probabilities, entropy, log-probability, and per-step baselines.

A token ``t`` was drawn from the distribution the model predicts at ``t-1``; its features describe that
distribution (the first token of a sequence has none: NaN). Logits are computed from the final-norm
activation at exactly those positions with the model's output embedding, chunked over tokens, so the
full ``[batch, pos, vocab]`` tensor of a big-vocabulary model is never materialised and the forward can
stop right after the final norm.

Per-step baselines (UHeads' logit-based comparisons, arXiv 2511.06209), over the step's tokens that have
a distribution: mean top probability, mean entropy (nats), perplexity ``exp(-mean log p)``, and the sum
of log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from workbench.capture.pooling import StepIndex

__all__ = ["TokenLogits", "STEP_STATS", "token_logit_features", "step_logit_stats"]

#: Index columns written when ``CaptureConfig.logit_stats`` is on.
STEP_STATS = ("logit_max_prob", "logit_mean_entropy", "logit_perplexity", "logit_seq_logprob")


@dataclass(frozen=True, kw_only=True)
class TokenLogits:
    """Features of the distribution each step token was drawn from (NaN / -1 where there is none)."""

    max_prob: Float[Tensor, " tok"]
    entropy: Float[Tensor, " tok"]
    logprob: Float[Tensor, " tok"]
    """Log-probability of the token actually there."""
    topk_probs: Float[Tensor, "tok k"]
    topk_ids: Int[Tensor, "tok k"]


@torch.no_grad()
def token_logit_features(
    normed: Float[Tensor, "batch pos d_model"],
    input_ids: Int[Tensor, "batch pos"],
    idx: StepIndex,
    lm_head: nn.Module,
    *,
    top_k: int = 0,
    softcap: float | None = None,
    chunk: int = 2048,
) -> TokenLogits:
    """Logit features of every captured step token, from the final-norm activation (``ln_final``)."""
    n = idx.tok_pos.shape[0]
    dev = normed.device
    has = idx.tok_pos >= 1
    prev = (idx.tok_pos - 1).clamp(min=0)
    target = input_ids[idx.tok_row, idx.tok_pos]
    nan = torch.full((n,), float("nan"), device=dev)
    max_prob, entropy, logprob = nan.clone(), nan.clone(), nan.clone()
    topk_probs = torch.full((n, top_k), float("nan"), device=dev)
    topk_ids = torch.full((n, top_k), -1, dtype=torch.int64, device=dev)
    for a in range(0, n, chunk):  # bounds the [chunk, vocab] float32 working set
        sl = slice(a, min(a + chunk, n))
        logits = lm_head(normed[idx.tok_row[sl], prev[sl]]).float()  # [chunk, vocab]
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logp = torch.log_softmax(logits, dim=-1)
        ok = has[sl]
        max_prob[sl] = torch.where(ok, logp.max(-1).values.exp(), max_prob[sl])
        entropy[sl] = torch.where(ok, -(logp.exp() * logp).sum(-1), entropy[sl])
        logprob[sl] = torch.where(ok, logp.gather(1, target[sl].unsqueeze(1)).squeeze(1), logprob[sl])
        if top_k:
            vals, ids = logp.topk(top_k, dim=-1)
            topk_probs[sl] = torch.where(ok.unsqueeze(1), vals.exp(), topk_probs[sl])
            topk_ids[sl] = torch.where(ok.unsqueeze(1), ids, topk_ids[sl])
    return TokenLogits(max_prob=max_prob, entropy=entropy, logprob=logprob, topk_probs=topk_probs, topk_ids=topk_ids)


def step_logit_stats(tok: TokenLogits, idx: StepIndex) -> Float[Tensor, "step 4"]:
    """Per-step baselines in the order of :data:`STEP_STATS` (NaN for a step without any distribution)."""
    ok = ~torch.isnan(tok.logprob)
    vals = torch.stack([tok.max_prob, tok.entropy, tok.logprob], dim=1).nan_to_num(0.0)  # [tok, 3]
    sums = torch.zeros((idx.n_steps, 3), device=vals.device).index_add_(0, idx.tok_step, vals)
    count = torch.zeros(idx.n_steps, device=vals.device).index_add_(0, idx.tok_step, ok.float())
    mean = sums / count.unsqueeze(1)  # NaN where count == 0
    seq = torch.where(count > 0, sums[:, 2], torch.nan)
    return torch.stack([mean[:, 0], mean[:, 1], torch.exp(-mean[:, 2]), seq], dim=1)
