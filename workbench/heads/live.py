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
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench.heads.data import TraceSequence, collate
from workbench.heads.model import UncertaintyHead
from workbench.traces.generate import GenerationConfig, left_pad, rng_devices

__all__ = ["LiveStepScorer", "LiveResult", "generate_scored"]


class LiveStepScorer(StoppingCriteria):
    """Collects the head's features during ``generate`` and scores each step as soon as it is complete."""

    def __init__(self, model, head: UncertaintyHead, *, boundary: str = "\n") -> None:
        if head.cfg.logit_features:
            raise ValueError("live scoring reads hidden states only; train the head with logit_features=False")
        if not head.cfg.causal:
            raise ValueError("live scoring needs a causal head (HeadConfig(causal=True)) to match offline scores")
        model.validate_hooks(head.cfg.hooks)
        self.model, self.head, self.boundary = model, head, boundary
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
        feats = torch.cat([torch.stack(self._feats[h], dim=1) for h in self.head.cfg.hooks], dim=-1)  # [b, k, f]
        seqs = []
        for r, end in todo:
            steps = self._step_numbers(r, end)
            in_step = torch.cat([torch.arange(int((steps == s).sum())) for s in range(int(steps.max()) + 1)])
            n = int(steps.max()) + 1
            labels = torch.full((n,), float("nan"))
            seqs.append(
                TraceSequence(
                    trace_id=str(r), problem_id=str(r), feats=feats[r, :end].cpu(), token_step=steps, in_step=in_step,
                    step_index=None, labels=labels,
                )
            )  # fmt: skip
        batch = collate(seqs)
        dev = next(self.head.parameters()).device
        with torch.no_grad():
            z = self.head(batch.feats.to(dev), batch.token_step.to(dev), batch.in_step.to(dev), batch.labels.shape[1])
        for i, ((r, end), s) in enumerate(zip(todo, seqs, strict=True)):
            n = len(s.labels)
            self.records.append(
                {"row": r, "step_index": n - 1, "token_start": self._start[r], "token_end": end,
                 "head_score": float(z[i, n - 1]), "scored_after_tokens": end + 1}
            )  # fmt: skip
            self._start[r] = end

    def _step_numbers(self, r: int, end: int) -> torch.Tensor:
        """Step number of each of row ``r``'s completion tokens ``0..end-1`` from the steps scored so far."""
        starts = [rec["token_start"] for rec in self.records if rec["row"] == r] + [self._start[r]]
        steps = torch.zeros(end, dtype=torch.int64)
        for s in starts[1:]:
            steps[s:] += 1
        return steps


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
