"""Live step scoring: head scores for each step while the model is still generating the trace.

No second forward pass: scoped hooks on the head's feature hooks keep the newest position of every
generating forward (the KV cache feeds one token per forward, so that position *is* the newest token;
they are copied to the CPU once per scoring call, not once per token),
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

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from scipy.special import erf
from threadpoolctl import threadpool_limits
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench.heads.model import UncertaintyHead
from workbench.traces.generate import GenerationConfig, left_pad, rng_devices

__all__ = ["LiveStepScorer", "LiveResult", "generate_scored"]

_GROW = 64
"""Token slots the feature buffer and the key/value caches start with (they double when full)."""


def _np(t: torch.Tensor) -> np.ndarray:
    """A float32 NumPy copy of a weight."""
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``nn.Linear`` as ``(Wᵀ, b)`` for ``x @ Wᵀ + b``."""
    return _np(weight).T.copy(), _np(bias)


def _with_room(a: np.ndarray | None, length: int, shape: tuple[int, int]) -> np.ndarray:
    """``a`` (``[batch, slots, dim]``, or None for a new zero array of ``shape``) with at least ``length`` slots,
    grown by doubling (at least ``_GROW``); the slots already there keep their values."""
    cap = 0 if a is None else a.shape[1]
    if length <= cap:
        return a
    grown = np.zeros((shape[0], max(length, 2 * cap, _GROW), shape[1]), np.float32)
    if cap:
        grown[:, :cap] = a
    return grown


def _norm_then_linear(norm: torch.nn.LayerNorm, linear_weight: torch.Tensor, linear_bias: torch.Tensor) -> tuple:
    """``linear(norm(x))`` as ``(eps, W, c)`` with ``x ↦ standardise(x) @ W + c``: the norm's scale and shift
    folded into the matrix (``W = diag(γ) Aᵀ``, ``c = β Aᵀ + b``)."""
    a = linear_weight.detach().float()
    return norm.eps, _np(norm.weight[:, None] * a.T), _np(norm.bias @ a.T + linear_bias)


def _standardise(x: np.ndarray, eps: float) -> np.ndarray:
    """``(x − mean) / sqrt(var + eps)`` over the last axis (``nn.LayerNorm`` without its affine part)."""
    d = x - x.mean(-1, keepdims=True)
    d /= np.sqrt((d * d).mean(-1, keepdims=True) + eps)
    return d


def _gelu(x: np.ndarray) -> np.ndarray:
    """``nn.GELU()`` (the exact, erf form)."""
    return 0.5 * x * (1.0 + erf(x * np.float32(0.7071067811865476)))


class _IncrementalHead:
    """The causal encoder of every row of a batch, run step by step with a key/value cache per layer.

    Causality means earlier tokens' encoder outputs never change, so scoring a new step only runs its own
    tokens through the head (queries of the new tokens against cached keys / values), instead of the whole
    prefix again. All rows whose step completed at the same token are scored in one call: the token-wise
    parts run on exactly their new tokens, attention pads them to the longest (padding writes cache slots the
    row's next step overwrites before anyone reads them, and its outputs are dropped).

    It mirrors ``nn.TransformerEncoderLayer`` (``norm_first=True``, ReLU feed-forward, eval mode), the
    head's projection with its standardisation folded in, :func:`~workbench.heads.model.pool_steps` and the
    output MLP in NumPy float32 on the CPU: for the few tokens of one step the cost is per-operation
    overhead, which is lower in NumPy than in torch (about 1.7× faster per call on the embedded model). The
    live-vs-offline test checks that the scores agree for every pooling.
    """

    @torch.no_grad()
    def __init__(self, head: UncertaintyHead, batch: int) -> None:
        self.cfg = head.cfg
        first = head.proj[0]
        w0 = first.weight / head.feat_scale
        self.p0 = (_np(w0).T.copy(), _np(first.bias - w0 @ head.feat_mean))
        self.p1 = _linear(head.proj[2].weight, head.proj[2].bias)
        self.in_step, self.pos = _np(head.in_step.weight), _np(head.pos.weight)
        self.layers = [
            (
                _norm_then_linear(L.norm1, L.self_attn.in_proj_weight, L.self_attn.in_proj_bias),
                _linear(L.self_attn.out_proj.weight, L.self_attn.out_proj.bias),
                _norm_then_linear(L.norm2, L.linear1.weight, L.linear1.bias),
                _linear(L.linear2.weight, L.linear2.bias),
            )
            for L in head.encoder.layers
        ]
        o = head.out
        self.out = (_norm_then_linear(o[0], o[1].weight, o[1].bias), _linear(o[3].weight, o[3].bias))
        ps = head.pool_score
        self.pool_w = None if ps is None else (_np(ps.weight)[0], float(ps.bias))
        self.w, self.batch = self.cfg.width, batch
        self.keys: list[np.ndarray | None] = [None] * len(self.layers)
        self.values: list[np.ndarray | None] = [None] * len(self.layers)
        self.n = [0] * batch
        self.n_steps = [0] * batch
        self.scale = np.float32(1.0 / np.sqrt(self.w // self.cfg.n_heads))

    def _reserve(self, length: int) -> None:
        for cache in (self.keys, self.values):
            for i, c in enumerate(cache):
                cache[i] = _with_room(c, length, (self.batch, self.w))

    def step_logits(self, rows: list[int], feats: Float[np.ndarray, "tok feat"], lengths: list[int]) -> list[float]:
        """Encode one new step per row (``feats``: the rows' new tokens back to back) and return the logits."""
        cfg, w, nh = self.cfg, self.w, self.cfg.n_heads
        r_, t = len(rows), max(lengths)
        starts = np.cumsum([0, *lengths[:-1]])
        seg = np.repeat(np.arange(r_), lengths)
        inner = np.arange(len(seg)) - starts[seg]
        n0 = np.array([self.n[r] for r in rows])
        pos = n0[seg] + inner
        top = int(pos.max()) + 1
        if top > cfg.max_len:
            raise ValueError(f"a trace has {top} step tokens; this head covers max_len={cfg.max_len}")
        self._reserve(int(n0.max()) + t)
        rows_a = np.asarray(rows)
        tok_row = rows_a[seg]
        slot = seg * t + inner
        x = _gelu(feats @ self.p0[0] + self.p0[1]) @ self.p1[0] + self.p1[1]
        x = x + self.in_step[np.minimum(inner, cfg.max_in_step - 1)] + self.pos[pos]
        may_see = np.arange(top)[None, None, None, :] <= (n0[:, None] + np.arange(t))[:, None, :, None]
        for i, ((e1, qkv_w, qkv_b), (o_w, o_b), (e2, f1_w, f1_b), (f2_w, f2_b)) in enumerate(self.layers):
            qkv = _standardise(x, e1) @ qkv_w + qkv_b
            q, k, v = qkv[:, :w], qkv[:, w : 2 * w], qkv[:, 2 * w :]
            self.keys[i][tok_row, pos] = k
            self.values[i][tok_row, pos] = v
            qp = np.zeros((r_ * t, w), np.float32)
            qp[slot] = q
            qh = qp.reshape(r_, t, nh, -1).transpose(0, 2, 1, 3)
            kh = self.keys[i][rows_a, :top].reshape(r_, top, nh, -1).transpose(0, 2, 3, 1)
            vh = self.values[i][rows_a, :top].reshape(r_, top, nh, -1).transpose(0, 2, 1, 3)
            s = np.where(may_see, (qh @ kh) * self.scale, np.float32(-np.inf))
            e = np.exp(s - s.max(-1, keepdims=True))
            o = (e / e.sum(-1, keepdims=True)) @ vh  # [row, head, tok, dh]
            x = x + o.transpose(0, 2, 1, 3).reshape(r_ * t, w)[slot] @ o_w + o_b
            x = x + np.maximum(_standardise(x, e2) @ f1_w + f1_b, 0) @ f2_w + f2_b
        if cfg.pool == "mean":
            pooled = np.add.reduceat(x, starts, axis=0) / np.asarray(lengths, np.float32)[:, None]
        elif cfg.pool == "max":
            pooled = np.maximum.reduceat(x, starts, axis=0)
        else:
            a = x @ self.pool_w[0] + self.pool_w[1]
            e = np.exp(a - np.maximum.reduceat(a, starts)[seg])
            pooled = np.add.reduceat(x * (e / np.add.reduceat(e, starts)[seg])[:, None], starts, axis=0)
        (eps, o1_w, o1_b), (o2_w, o2_b) = self.out
        logits = _gelu(_standardise(pooled, eps) @ o1_w + o1_b) @ o2_w + o2_b
        for r, m in zip(rows, lengths, strict=True):
            self.n[r] += m
        return logits[:, 0].tolist()


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
        self._kind = kind
        d = model.d_model
        self._cols = {h: slice(i * d, (i + 1) * d) for i, h in enumerate(head.cfg.hooks)}
        self._n_feats = d * len(head.cfg.hooks)

    # ---- hooks ------------------------------------------------------------------------------------
    def _record(self, activation, hook):
        name = getattr(hook, "name", hook)
        calls = self._calls[name] = self._calls[name] + 1
        if calls > 1:  # the first forward reads the prompt; later ones one new token each (KV cache)
            self._pending[name].append(activation if activation.shape[1] == 1 else activation[:, -1:])

    def _flush(self) -> None:
        """Move the tokens recorded since the last flush into the feature buffer (one copy per hook)."""
        lists = [self._pending[h] for h in self.head.cfg.hooks]
        n = len(lists[0])
        if n == 0:
            return
        block = np.concatenate([torch.cat(x, 1).detach().to("cpu", torch.float32).numpy() for x in lists], -1)
        j = self._flushed
        self._feats = _with_room(self._feats, j + n, (block.shape[0], self._n_feats))
        self._feats[:, j : j + n] = block
        self._flushed = j + n
        for x in lists:
            x.clear()

    @contextmanager
    def attached(self, prompt_len: int):
        """Hooks on for one ``generate`` call over prompts left-padded to ``prompt_len``."""
        self.prompt_len = prompt_len
        self._calls = dict.fromkeys(self.head.cfg.hooks, 0)
        self._pending: dict[str, list] = {h: [] for h in self.head.cfg.hooks}  # newest-token activations
        self._feats: np.ndarray | None = None  # [batch, completion token, feature] on the CPU, grown by doubling
        self._flushed = 0  # completion tokens already in _feats
        self._start: list[int] = []  # per row: first token of the step being written
        self._done: list[bool] = []  # per row: finished (end-of-sequence seen)
        self._enc: _IncrementalHead | None = None
        self._no_stop: torch.Tensor | None = None  # what the stopping criterion returns: never stop
        self.records: list[dict] = []
        # NumPy's BLAS would otherwise wake its thread pool for every tiny matmul and compete with the model
        with (
            threadpool_limits(limits=1, user_api="blas"),
            self.model.hooks([(h, self._record) for h in self.head.cfg.hooks]),
        ):
            yield self

    # ---- the per-token callback -------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        b, k = input_ids.shape[0], input_ids.shape[1] - self.prompt_len  # k completion tokens so far
        if not self._done:
            self._start, self._done = [0] * b, [False] * b
        known = k - 1  # features exist for completion tokens 0..k-2
        if known >= 1:
            # per row: kind of the newest token with features and of the newest token (1 boundary, 2 eos)
            kind, ready = self._kind, []
            for r, (last, new) in enumerate(input_ids[:, -2:].tolist()):
                last, new = kind[last], kind[new]
                if self._done[r] or last & 2:
                    self._done[r] = True
                    continue
                if last & 1 or new & 2:
                    ready.append(r)
                self._done[r] = bool(new & 2)
            if ready:
                self._score(ready, known)
        if self._no_stop is None or self._no_stop.shape[0] != b:
            self._no_stop = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
        return self._no_stop

    def _score(self, rows: list[int], end: int) -> None:
        """Score the step ``start[r]:end`` of every row in ``rows`` with one batched head call."""
        if self._enc is None:
            self._enc = _IncrementalHead(self.head, len(self._done))
        self._flush()
        starts = [self._start[r] for r in rows]
        lengths = [end - s for s in starts]
        tok_row = [r for r, m in zip(rows, lengths, strict=True) for _ in range(m)]
        tok = [j for s in starts for j in range(s, end)]
        feats = self._feats[tok_row, tok]  # [new tokens of all rows, feature]
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
