"""Counterfactual importance by resampling (Thought Anchors): does the answer change when a step changes?

For each step ``i`` sample rollouts from two prefixes: one that *keeps* the step (prompt and completion
through step ``i``) and one that *resamples* it (through step ``i - 1``: the rollout writes a new step ``i``
and goes on). Only resamples whose new step ``i`` **differs in meaning** from the original count — a
resample that rewrites the same statement tests nothing. Importance compares the final answers of the two
groups: the accuracy difference (keep minus different) and ``KL(p_keep || p_different)`` of the answer
distributions (additive smoothing, one pseudo-count per answer seen).

Meaning is pluggable (:class:`StepSimilarity`): :class:`ToySimilarity` compares the statement the toy line
makes (kind, variable, operands, stated value); :class:`HiddenStateSimilarity` compares the cosine of mean
hidden states (for models without a checker). The rollouts are the labels layer's machinery
(:class:`~workbench.labels.rollouts.RolloutConfig`, batched :func:`~workbench.traces.sample_completions`);
the prefix through step ``i`` is also the resampling prefix of step ``i + 1``, so a trace of S steps costs
``S + 1`` prefixes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch

from workbench.labels.rollouts import RolloutConfig
from workbench.traces.generate import sample_completions
from workbench.traces.types import Trace

__all__ = [
    "ResamplingConfig",
    "StepSimilarity",
    "ToySimilarity",
    "HiddenStateSimilarity",
    "resampling_importance",
    "answer_kl",
]


@runtime_checkable
class StepSimilarity(Protocol):
    """Decides whether resampled step texts say the same thing as the original step."""

    def same(self, original: str, candidates: Sequence[str]) -> list[bool]: ...


_COMPUTE = re.compile(r"^([a-z])=([a-z])(\d+)([+-])([a-z])(\d+)=([a-z])(\d+)$")


def _statement(text: str) -> tuple:
    """What a toy line states; lines of no known form are compared as text."""
    text = text.strip()
    if m := _COMPUTE.match(text):
        g = m.groups()
        return ("compute", g[0], g[1], int(g[2]), g[3], g[4], int(g[5]), g[6], int(g[7]))
    if m := re.match(r"^(wait|check) ([a-z])(\d+)$", text):
        return (m.group(1), m.group(2), int(m.group(3)))
    if m := re.match(r"^ans=(\d+)$", text):
        return ("answer", int(m.group(1)))
    return ("text", text)


@dataclass(frozen=True)
class ToySimilarity:
    """Toy task: same meaning iff the same statement (kind, variable, operands, stated value)."""

    def same(self, original: str, candidates: Sequence[str]) -> list[bool]:
        ref = _statement(original)
        return [_statement(c) == ref for c in candidates]


@dataclass(frozen=True)
class HiddenStateSimilarity:
    """Same meaning iff the cosine of mean hidden states (``hook``, each text encoded alone) ≥ ``threshold``."""

    model: object
    hook: str | None = None
    """Hot-path hook name (default: the last layer's ``hook_resid_post``)."""
    threshold: float = 0.8

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        name = self.hook or f"blocks.{self.model.n_layers - 1}.hook_resid_post"
        got = {}
        enc = self.model.tokenize([t or " " for t in texts], padding_side="right")
        with self.model.hooks([(name, lambda act, hook: got.__setitem__("x", act))]):
            self.model.forward(enc["input_ids"], enc["attention_mask"])
        m = enc["attention_mask"].to(got["x"].device).unsqueeze(-1).float()
        return (got["x"].float() * m).sum(1) / m.sum(1)

    def same(self, original: str, candidates: Sequence[str]) -> list[bool]:
        if not candidates:
            return []
        emb = self._embed([original, *candidates])
        cos = torch.nn.functional.cosine_similarity(emb[:1], emb[1:])
        return (cos >= self.threshold).tolist()


@dataclass(frozen=True, kw_only=True)
class ResamplingConfig:
    """Rollouts per prefix and what counts as a different step."""

    rollouts: RolloutConfig = field(default_factory=RolloutConfig)
    """Rollouts per prefix, their sampling and the answer format (the labels layer's rollout settings)."""
    similarity: StepSimilarity = field(default_factory=ToySimilarity)
    """Decides which resampled steps mean the same as the original (those are dropped)."""
    progress: bool = True
    """Show a progress bar."""


def answer_kl(p: Sequence[str | None], q: Sequence[str | None], alpha: float = 1.0) -> float:
    """``KL(P || Q)`` of two samples of answers, ``alpha`` pseudo-counts per answer seen in either (NaN if empty)."""
    if not p or not q:
        return float("nan")
    cp, cq = Counter(p), Counter(q)
    support = set(cp) | set(cq)
    np_, nq = len(p) + alpha * len(support), len(q) + alpha * len(support)
    return float(
        sum((cp[a] + alpha) / np_ * math.log(((cp[a] + alpha) / np_) / ((cq[a] + alpha) / nq)) for a in support)
    )


def _first_line(text: str) -> str:
    return text.lstrip("\n").split("\n", 1)[0].strip()


def resampling_importance(
    model, traces: Sequence[Trace], config: ResamplingConfig = ResamplingConfig()
) -> pd.DataFrame:
    """Per step: ``trace_id, step, kind, n_keep, n_resampled, n_different, acc_keep, acc_different,
    importance_acc, importance_kl, n_rollouts``. Traces need ``gold_answer`` (accuracy) and steps."""
    fmt, n = config.rollouts.answer, config.rollouts.n_rollouts
    prefixes, owners = [], []
    for t in traces:
        if t.gold_answer is None:
            raise ValueError(f"Trace {t.trace_id}: gold_answer is None; resampling importance needs it")
        cuts = [s.char_start for s in t.steps] + [t.steps[-1].char_end if t.steps else 0]
        for j, c in enumerate(cuts):
            prefixes.append(t.prompt + t.completion[:c])
            owners.append((t, j, c))
    gen = replace(config.rollouts.generation, num_samples=n)
    done = sample_completions(model, prefixes, gen, progress=config.progress, desc="resampling")
    answers: list[list[str | None]] = [[] for _ in prefixes]
    firsts: list[list[str]] = [[] for _ in prefixes]
    for c in done:
        t, _, cut = owners[c.prompt_index]
        answers[c.prompt_index].append(fmt.extract(t.completion[:cut] + c.text))
        firsts[c.prompt_index].append(_first_line(c.text))
    rows, base = [], 0
    for t in traces:
        for i, step in enumerate(t.steps):
            keep = answers[base + i + 1]
            differ = config.similarity.same(step.text, firsts[base + i])
            different = [a for a, same in zip(answers[base + i], differ, strict=True) if not same]
            acc_keep = float(np.mean([a == t.gold_answer for a in keep])) if keep else float("nan")
            acc_diff = float(np.mean([a == t.gold_answer for a in different])) if different else float("nan")
            rows.append(
                (t.trace_id, i, step.kind, len(keep), len(differ), len(different), acc_keep, acc_diff)
                + (acc_keep - acc_diff, answer_kl(keep, different), n)
            )
        base += len(t.steps) + 1
    cols = ["trace_id", "step", "kind", "n_keep", "n_resampled", "n_different", "acc_keep", "acc_different"]
    return pd.DataFrame(rows, columns=[*cols, "importance_acc", "importance_kl", "n_rollouts"])
