"""Live step scoring: head scores for each step while the model is still generating the trace.

No second forward pass: scoped hooks on the head's feature hooks copy the newest position of every
generating forward (the KV cache feeds one token per forward, so that position *is* the newest token),
and a Hugging Face stopping criterion — called after every sampled token with the ids so far — notices
when a step is complete and scores it. A generated token's hidden state is computed by the forward that
reads it, i.e. the one that samples the next token; so a step ending in the boundary token ``\\n`` is
scored right after the following token is sampled (a last step ending in end-of-sequence when that
token is sampled). All newly completed steps of the batch are scored in one batched head call.

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
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench.heads.model import UncertaintyHead
from workbench.traces.generate import GenerationConfig, left_pad, rng_devices

__all__ = ["LiveStepScorer", "LiveResult", "generate_scored"]


class _IncrementalHead:
    """One row's causal encoder state: keys and values of every layer for the tokens already encoded.

    Causality means earlier tokens' encoder outputs never change, so scoring a new step only runs its own
    tokens through the head (queries of the new tokens against cached keys / values), instead of the whole
    prefix again. Mirrors ``nn.TransformerEncoderLayer`` with ``norm_first=True`` (ReLU feed-forward) in eval
    mode; the live-vs-offline test checks that the scores agree.
    """

    def __init__(self, head: UncertaintyHead) -> None:
        self.head = head
        self.keys: list[list[torch.Tensor]] = [[] for _ in head.encoder.layers]
        self.values: list[list[torch.Tensor]] = [[] for _ in head.encoder.layers]
        self.n = 0

    @torch.no_grad()
    def step_logit(self, feats: torch.Tensor) -> float:
        """Encode the tokens of one new step (``[tok, feat]``) and return the step's logit."""
        h, t = self.head, feats.shape[0]
        cfg = h.cfg
        pos = torch.arange(self.n, self.n + t, device=feats.device)
        x = h.proj((feats - h.feat_mean) / h.feat_scale)
        x = x + h.in_step(torch.arange(t, device=feats.device).clamp(max=cfg.max_in_step - 1)) + h.pos(pos)
        for i, layer in enumerate(h.encoder.layers):
            attn = layer.self_attn
            q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            self.keys[i].append(k)
            self.values[i].append(v)
            keys, vals = torch.cat(self.keys[i]), torch.cat(self.values[i])  # [n + t, w]
            nh = attn.num_heads
            qh, kh, vh = (z.view(z.shape[0], nh, -1).transpose(0, 1) for z in (q, keys, vals))  # [head, ., dh]
            mask = torch.arange(keys.shape[0], device=x.device).view(1, -1) > pos.view(-1, 1)  # True: future
            o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=~mask)  # [head, t, dh]
            x = x + attn.out_proj(o.transpose(0, 1).reshape(t, -1))
            x = x + layer.linear2(F.relu(layer.linear1(layer.norm2(x))))
        self.n += t
        return float(h.out(x.mean(0, keepdim=True)).squeeze())


class LiveStepScorer(StoppingCriteria):
    """Collects the head's features during ``generate`` and scores each step as soon as it is complete."""

    def __init__(self, model, head: UncertaintyHead, *, boundary: str = "\n") -> None:
        if head.cfg.logit_features:
            raise ValueError("live scoring reads hidden states only; train the head with logit_features=False")
        if not head.cfg.causal:
            raise ValueError("live scoring needs a causal head (HeadConfig(causal=True)) to match offline scores")
        model.validate_hooks(head.cfg.hooks)
        self.model, self.head, self.boundary = model, head.eval(), boundary
        self._is_boundary = torch.tensor(
            [boundary in model.tokenizer.decode([i]) for i in range(len(model.tokenizer))], dtype=torch.bool
        )
        self.eos = model.tokenizer.eos_token_id

    # ---- hooks ------------------------------------------------------------------------------------
    def _record(self, activation, hook):
        name = getattr(hook, "name", hook)
        self._calls[name] += 1
        if self._calls[name] > 1:  # the first forward reads the prompt; later ones one new token each
            self._feats[name].append(activation[:, -1].detach().float())

    @contextmanager
    def attached(self, prompt_len: int):
        """Hooks on for one ``generate`` call over prompts left-padded to ``prompt_len``."""
        self.prompt_len = prompt_len
        self._calls = dict.fromkeys(self.head.cfg.hooks, 0)
        self._feats: dict[str, list] = {h: [] for h in self.head.cfg.hooks}
        self._start: list[int] | None = None  # per row: first token of the step being written
        self._done: torch.Tensor | None = None  # per row: finished (end-of-sequence seen)
        self._enc: dict[int, _IncrementalHead] = {}
        self.records: list[dict] = []
        with self.model.hooks([(h, self._record) for h in self.head.cfg.hooks]):
            yield self

    # ---- the per-token callback -------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        b, k = input_ids.shape[0], input_ids.shape[1] - self.prompt_len  # k completion tokens so far
        if self._done is None:
            self._start, self._done = [0] * b, torch.zeros(b, dtype=torch.bool)
        known = k - 1  # features exist for completion tokens 0..k-2
        if known >= 1:
            pair = input_ids[:, -2:].cpu()  # [batch, 2]: the newest token with features, and the newest token
            last_eos, new_eos = pair[:, 0] == self.eos, pair[:, 1] == self.eos
            self._done |= last_eos
            ready = ~self._done & (self._is_boundary[pair[:, 0]] | new_eos)
            self._done |= new_eos
            rows = torch.nonzero(ready).flatten().tolist()
            if rows:
                self._score([(r, known) for r in rows])
        return torch.zeros(b, dtype=torch.bool, device=input_ids.device)

    def _score(self, todo: list[tuple[int, int]]) -> None:
        dev = next(self.head.parameters()).device
        for r, end in todo:
            start = self._start[r]
            feats = torch.cat([torch.stack(self._feats[h][start:end], dim=1)[r] for h in self.head.cfg.hooks], -1)
            enc = self._enc.setdefault(r, _IncrementalHead(self.head))
            self.records.append(
                {"row": r, "step_index": len(enc.keys[0]), "token_start": start, "token_end": end,
                 "head_score": enc.step_logit(feats.to(dev)), "scored_after_tokens": end + 1}
            )  # fmt: skip
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
