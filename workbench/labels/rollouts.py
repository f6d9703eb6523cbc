"""Rollout labels in the Math-Shepherd style: how often the path through a step still reaches the answer.

From each step prefix (prompt + completion up to the end of the step, delimiter included) sample N
continuations and check their final answer against the gold one: ``rollout_hard`` = any reached it,
``rollout_soft`` = the fraction that did. These labels measure *path viability*, not local validity: a step
after an uncorrected error gets a soft label near 0 even if its own arithmetic is right, and a wrong step the
model tends to correct right away keeps a high one. They are noisy (N samples) — record N with them.

All prefixes of all traces are sampled together in batches of ``generation.batch_size`` sequences
(:func:`workbench.traces.generate.sample_completions`, length-sorted, KV cache on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from workbench.labels.answers import TOY_ANSWER, AnswerFormat
from workbench.labels.table import StepKey, StepLabels, unique_traces
from workbench.traces.generate import GenerationConfig, sample_completions
from workbench.traces.types import Trace

__all__ = ["RolloutConfig", "rollout_labels", "step_prefixes"]


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """How many continuations per step prefix, how to sample them, how to read their answer."""

    n_rollouts: int = 8
    """Continuations sampled from each step prefix (Math-Shepherd used 8)."""
    generation: GenerationConfig = field(
        default_factory=lambda: GenerationConfig(max_new_tokens=128, temperature=1.0, batch_size=256)
    )
    """Sampling of the continuations (its ``num_samples`` is replaced by ``n_rollouts``)."""
    answer: AnswerFormat = TOY_ANSWER
    """Where a continuation states its final answer."""

    def __post_init__(self) -> None:
        if self.n_rollouts < 1:
            raise ValueError(f"n_rollouts={self.n_rollouts}: must be at least 1")


def step_prefixes(trace: Trace) -> list[str]:
    """The text the model sees at the end of each step: prompt + completion through the step's delimiter."""
    return [trace.prompt + trace.completion[: s.char_end] for s in trace.steps]


def rollout_labels(
    model, traces: Sequence[Trace], config: RolloutConfig = RolloutConfig(), *, progress: bool = True
) -> StepLabels:
    """``rollout_hard``, ``rollout_soft`` and ``rollout_n`` for every step of ``traces``.

    Each trace needs ``gold_answer``. The final answer of a rollout is read from the step prefix's
    completion plus the continuation, so a prefix that already states the answer is judged by it.
    """
    keys, prefixes, golds = [], [], []
    for t in unique_traces(traces):
        if t.gold_answer is None:
            raise ValueError(f"Trace {t.trace_id}: gold_answer is None; rollout labels need the reference answer")
        for step, prefix in zip(t.steps, step_prefixes(t), strict=True):
            keys.append(StepKey(t.trace_id, step.index))
            prefixes.append(prefix)
            golds.append((t.gold_answer, len(t.prompt)))
    gen = replace(config.generation, num_samples=config.n_rollouts)
    completions = sample_completions(model, prefixes, gen, progress=progress, desc="rollouts")
    hits = [0] * len(prefixes)
    for c in completions:
        gold, prompt_len = golds[c.prompt_index]
        hits[c.prompt_index] += config.answer.is_correct(prefixes[c.prompt_index][prompt_len:] + c.text, gold)
    n = config.n_rollouts
    return {
        key: {"rollout_hard": h > 0, "rollout_soft": h / n, "rollout_n": n} for key, h in zip(keys, hits, strict=True)
    }
