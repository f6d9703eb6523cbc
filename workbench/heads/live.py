"""Live step scoring: head scores for each step while the model is still generating the trace.

No second forward pass: scoped hooks on the head's feature hooks copy the newest position of every
generating forward (the KV cache feeds one token per forward, so that position *is* the newest token),
and a Hugging Face stopping criterion — called after every sampled token with the ids so far — notices
when a step is complete and scores it. A generated token's hidden state is computed by the forward that
reads it, i.e. the one that samples the next token; so a step ending in the boundary token ``\\n`` is
scored right after the following token is sampled (a last step ending in end-of-sequence when that
token is sampled). All rows whose step completed at the same token are scored in one batched head call
(at most one call per generated token, whatever the batch size), on exactly their new tokens.

The cost that remains is the head's own arithmetic on every generated token: compare the head's weight
matrices with the model's (``benchmarks/live_scoring.py`` reports the overhead by head size).

The head is causal (:class:`~workbench.heads.HeadConfig` ``causal=True``), so each live score equals the
offline score of the same trace (tested). Only hidden-state features are available live; a head trained
with ``logit_features`` is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench.heads.model import UncertaintyHead, pool_steps
from workbench.traces.generate import GenerationConfig, left_pad, rng_devices

__all__ = ["LiveStepScorer", "LiveResult", "generate_scored"]

_GROW = 64
"""Token slots the feature buffer and the key/value caches start with (they double when full)."""


class _IncrementalHead:
    """The causal encoder of every row of a batch, run step by step with a key/value cache per layer.

    Causality means earlier tokens' encoder outputs never change, so scoring a new step only runs its own
    tokens through the head (queries of the new tokens against cached keys / values), instead of the whole
    prefix again. All rows whose step completed at the same token are scored in one call: their new tokens
    are padded to the longest (padding writes cache slots the row's next step overwrites before anyone reads
    them, and its outputs are dropped). Mirrors ``nn.TransformerEncoderLayer`` with ``norm_first=True`` (ReLU
    feed-forward) in eval mode, as plain functional calls with the input standardisation folded into the
    first projection; the live-vs-offline test checks that the scores agree.
    """

    def __init__(self, head: UncertaintyHead, batch: int, device: torch.device) -> None:
        self.head, self.cfg = head, head.cfg
        first = head.proj[0]
        w0 = first.weight / head.feat_scale  # (x - mean) / scale @ W.T + b == x @ (W / scale).T + b'
        self.proj0 = (w0.to(device), (first.bias - w0 @ head.feat_mean).to(device))
        self.layers = [
            tuple(
                t.detach().to(device)
                for t in (
                    layer.norm1.weight,
                    layer.norm1.bias,
                    layer.self_attn.in_proj_weight,
                    layer.self_attn.in_proj_bias,
                    layer.self_attn.out_proj.weight,
                    layer.self_attn.out_proj.bias,
                    layer.norm2.weight,
                    layer.norm2.bias,
                    layer.linear1.weight,
                    layer.linear1.bias,
                    layer.linear2.weight,
                    layer.linear2.bias,
                )
            )  # fmt: skip
            for layer in head.encoder.layers
        ]
        self.eps = [(layer.norm1.eps, layer.norm2.eps) for layer in head.encoder.layers]
        self.device, self.width, self.batch = device, self.cfg.width, batch
        self.keys = [torch.zeros(batch, 0, self.width, device=device) for _ in self.layers]
        self.values = [torch.zeros(batch, 0, self.width, device=device) for _ in self.layers]
        self.n = [0] * batch  # tokens already encoded, per row
        self.n_steps = [0] * batch

    def _reserve(self, length: int) -> None:
        cap = self.keys[0].shape[1]
        if length <= cap:
            return
        new = max(length, 2 * cap, _GROW)
        for cache in (self.keys, self.values):
            for i, c in enumerate(cache):
                cache[i] = torch.cat([c, c.new_zeros(self.batch, new - cap, self.width)], 1)

    @torch.no_grad()
    def step_logits(self, rows: list[int], feats: Float[Tensor, "tok feat"], lengths: list[int]) -> list[float]:
        """Encode one new step per row and return the steps' logits.

        ``feats`` holds the new tokens of all rows back to back (``lengths[i]`` tokens for ``rows[i]``): the
        token-wise parts (projection, feed-forward) run on exactly those tokens; only attention pads them.
        """
        h, cfg, dev, w = self.head, self.cfg, self.device, self.width
        r_, t = len(rows), max(lengths)
        seg, inner, pos, slot = [], [], [], []  # per new token: its row, place in the step, in the trace, padded
        for i, (r, m) in enumerate(zip(rows, lengths, strict=True)):
            seg += [i] * m
            inner += range(m)
            pos += range(self.n[r], self.n[r] + m)
            slot += range(i * t, i * t + m)
        top = max(pos) + 1
        if top > cfg.max_len:
            raise ValueError(f"a trace has {top} step tokens; this head covers max_len={cfg.max_len}")
        self._reserve(max(self.n[r] for r in rows) + t)
        seg_t, pos_t, slot_t = (torch.tensor(z, device=dev) for z in (seg, pos, slot))
        row_t = torch.tensor(rows, device=dev)
        tok_row = row_t[seg_t]
        x = F.linear(F.gelu(F.linear(feats.to(dev), *self.proj0)), h.proj[2].weight, h.proj[2].bias)
        in_step = torch.tensor(inner, device=dev).clamp_(max=cfg.max_in_step - 1)
        x = x + h.in_step.weight[in_step] + h.pos.weight[pos_t]
        n0 = torch.tensor([self.n[r] for r in rows], device=dev).view(-1, 1, 1, 1)
        query_pos = n0 + torch.arange(t, device=dev).view(1, 1, -1, 1)  # [row, 1, tok, 1] (padding included)
        may_see = torch.arange(top, device=dev).view(1, 1, 1, -1) <= query_pos  # [row, 1, tok, key]
        nh = cfg.n_heads
        for i, (n1w, n1b, qkv_w, qkv_b, ow, ob, n2w, n2b, l1w, l1b, l2w, l2b) in enumerate(self.layers):
            e1, e2 = self.eps[i]
            q, k, v = F.linear(F.layer_norm(x, (w,), n1w, n1b, e1), qkv_w, qkv_b).chunk(3, dim=-1)
            self.keys[i][tok_row, pos_t] = k
            self.values[i][tok_row, pos_t] = v
            q = q.new_zeros(r_ * t, w).index_copy_(0, slot_t, q).view(r_, t, nh, -1).transpose(1, 2)
            keys, vals = (c[row_t, :top].view(r_, top, nh, -1).transpose(1, 2) for c in (self.keys[i], self.values[i]))
            o = F.scaled_dot_product_attention(q, keys, vals, attn_mask=may_see)  # [row, head, tok, dh]
            x = x + F.linear(o.transpose(1, 2).reshape(r_ * t, w)[slot_t], ow, ob)
            x = x + F.linear(F.relu(F.linear(F.layer_norm(x, (w,), n2w, n2b, e2), l1w, l1b)), l2w, l2b)
        pooled = pool_steps(x, seg_t, r_, cfg.pool, h.pool_score)  # one vector per new step, as offline
        for r, m in zip(rows, lengths, strict=True):
            self.n[r] += m
        return h.out(pooled).squeeze(-1).tolist()


class LiveStepScorer(StoppingCriteria):
    """Collects the head's features during ``generate`` and scores each step as soon as it is complete."""

    def __init__(self, model, head: UncertaintyHead, *, boundary: str = "\n") -> None:
        if head.cfg.logit_features:
            raise ValueError("live scoring reads hidden states only; train the head with logit_features=False")
        if not head.cfg.causal:
            raise ValueError("live scoring needs a causal head (HeadConfig(causal=True)) to match offline scores")
        model.validate_hooks(head.cfg.hooks)
        self.model, self.head, self.boundary = model, head.eval(), boundary
        tok = model.tokenizer
        kind = [int(boundary in tok.decode([i])) for i in range(len(tok))]  # bit 1: ends a step
        kind[tok.eos_token_id] |= 2  # bit 2: end of sequence
        self._kind = torch.tensor(kind, dtype=torch.uint8)
        d = model.d_model
        self._cols = {h: slice(i * d, (i + 1) * d) for i, h in enumerate(head.cfg.hooks)}
        self._n_feats = d * len(head.cfg.hooks)

    # ---- hooks ------------------------------------------------------------------------------------
    def _record(self, activation, hook):
        name = getattr(hook, "name", hook)
        calls = self._calls[name] = self._calls[name] + 1
        if calls == 1:  # the first forward reads the prompt; later ones one new token each
            return
        j = calls - 2  # completion token whose hidden state this is
        if self._feats is None:
            self._feats = activation.new_zeros(activation.shape[0], _GROW, self._n_feats, dtype=torch.float32)
        if j >= self._feats.shape[1]:
            self._feats = torch.cat([self._feats, torch.zeros_like(self._feats)], 1)
        self._feats[:, j, self._cols[name]] = activation[:, -1]

    @contextmanager
    def attached(self, prompt_len: int):
        """Hooks on for one ``generate`` call over prompts left-padded to ``prompt_len``."""
        self.prompt_len = prompt_len
        self._calls = dict.fromkeys(self.head.cfg.hooks, 0)
        self._feats: torch.Tensor | None = None  # [batch, completion token, feature], grown by doubling
        self._start: list[int] = []  # per row: first token of the step being written
        self._done: list[bool] = []  # per row: finished (end-of-sequence seen)
        self._enc: _IncrementalHead | None = None
        self.records: list[dict] = []
        with self.model.hooks([(h, self._record) for h in self.head.cfg.hooks]):
            yield self

    # ---- the per-token callback -------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        b, k = input_ids.shape[0], input_ids.shape[1] - self.prompt_len  # k completion tokens so far
        if not self._done:
            self._start, self._done = [0] * b, [False] * b
        known = k - 1  # features exist for completion tokens 0..k-2
        if known >= 1:
            # per row: kind of the newest token with features and of the newest token (1 boundary, 2 eos)
            kinds = self._kind[input_ids[:, -2:].cpu()].tolist()
            ready = []
            for r, (last, new) in enumerate(kinds):
                if self._done[r] or last & 2:
                    self._done[r] = True
                    continue
                if last & 1 or new & 2:
                    ready.append(r)
                self._done[r] = bool(new & 2)
            if ready:
                self._score(ready, known)
        return torch.zeros(b, dtype=torch.bool, device=input_ids.device)

    def _score(self, rows: list[int], end: int) -> None:
        """Score the step ``start[r]:end`` of every row in ``rows`` with one batched head call."""
        dev = next(self.head.parameters()).device
        if self._enc is None:
            self._enc = _IncrementalHead(self.head, len(self._done), dev)
        starts = [self._start[r] for r in rows]
        lengths = [end - s for s in starts]
        tok_row = [r for r, m in zip(rows, lengths, strict=True) for _ in range(m)]
        tok = [j for s in starts for j in range(s, end)]
        feats = self._feats[torch.tensor(tok_row), torch.tensor(tok)]  # [new tokens of all rows, feature]
        step_index = [self._enc.n_steps[r] for r in rows]
        logits = self._enc.step_logits(rows, feats, lengths)
        for r, s, i, logit in zip(rows, starts, step_index, logits, strict=True):
            self.records.append(
                {"row": r, "step_index": i, "token_start": s, "token_end": end, "head_score": logit,
                 "scored_after_tokens": end + 1}
            )  # fmt: skip
            self._enc.n_steps[r] += 1
            self._start[r] = end


@dataclass(frozen=True, kw_only=True)
class LiveResult:
    completions: list[str]
    """The generated text of each prompt (cut at end-of-sequence)."""
    steps: pd.DataFrame
    """One row per scored step: ``row, step_index, token_start, token_end, head_score, head_prob,
    scored_after_tokens`` (completion tokens sampled when the score was ready), ``text``."""


def generate_scored(
    model, head: UncertaintyHead, prompts: Sequence[str], config: GenerationConfig | None = None
) -> LiveResult:
    """Generate for ``prompts`` in one batch and score every step as it is written (see module docstring).

    Sampling uses ``config.seed`` under ``torch.random.fork_rng`` exactly like one batch of
    :func:`workbench.traces.generate.sample_completions`, so the same call without the scorer gives the
    same tokens (the overhead benchmark compares the two).
    """
    config = config or GenerationConfig()
    tok = model.tokenizer
    ids = tok(list(prompts), add_special_tokens=False)["input_ids"]
    batch = left_pad(ids, tok.pad_token_id)
    scorer = LiveStepScorer(model, head)
    kwargs = config.hf_kwargs() | {"eos_token_id": tok.eos_token_id, "use_cache": True}
    with scorer.attached(batch.input_ids.shape[1]), torch.random.fork_rng(devices=rng_devices(model.device)):
        torch.manual_seed(config.seed * 1_000_003)
        out = model.generate(*batch, stopping_criteria=StoppingCriteriaList([scorer]), **kwargs)
    gen = out[:, batch.input_ids.shape[1] :].cpu()
    texts = []
    for row in gen.tolist():
        end = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
        texts.append(tok.decode(row[:end]))
    steps = pd.DataFrame(scorer.records)
    if len(steps):
        steps["head_prob"] = torch.sigmoid(torch.tensor(steps["head_score"].to_numpy())).numpy()
        spans = steps[["row", "token_start", "token_end"]].itertuples(index=False)
        steps["text"] = [tok.decode(gen[r, a:b].tolist()).strip() for r, a, b in spans]
    return LiveResult(completions=texts, steps=steps)
