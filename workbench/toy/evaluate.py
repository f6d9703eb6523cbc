"""Evaluating a model on the toy task: greedy accuracy and the behaviour rates of sampled traces.

Works on any Hugging Face causal LM and tokenizer (the embedded model or another one trained on the
task). Batched generation with the KV cache; every completion is labelled by the checker, never by the
model. The numbers defined here are the ones the model card reports:

- ``accuracy``: share of traces whose stated final answer is right;
- ``fresh_error_rate``: share of compute steps whose value does not follow from what the trace stated
  before (a new mistake, not a propagated one) — the "wrong-step rate";
- ``incorrect_step_rate``: share of all steps whose stated value is not the true value (propagation too);
- ``corrected_share``: share of fresh errors followed immediately by a ``wait`` line for that variable;
- ``check_rate``: ``check`` lines per compute step; ``garbled_rate``: unparseable lines per step;
- ``failures_garbled``: share of wrong-answer traces that contain an unparseable line (the rest fail by
  stating wrong values, the model's own mistakes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from workbench.toy.checker import TraceLabels, check_trace
from workbench.toy.task import Problem, TaskConfig, generate_samples

__all__ = ["BehaviourStats", "generate_completions", "evaluate", "behaviour_stats", "heldout_problems"]

HELDOUT_SEED = 10_000
"""Evaluation problems are drawn from seeds at or above this; training uses seed * 1_000_003 + step."""


@dataclass(frozen=True, kw_only=True)
class BehaviourStats:
    """Checker statistics over a set of completions."""

    n_traces: int
    n_steps: int
    accuracy: float
    fresh_error_rate: float
    incorrect_step_rate: float
    corrected_share: float
    check_rate: float
    garbled_rate: float
    failures_garbled: float = 0.0

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def heldout_problems(task: TaskConfig, n: int, seed: int = HELDOUT_SEED) -> list[Problem]:
    """``n`` clean problems from a seed range that training never draws."""
    return [s.problem for s in generate_samples(task.clean(), n, seed=seed, prefix="heldout")]


@torch.inference_mode()
def generate_completions(
    model,
    tokenizer,
    prompts: list[str],
    *,
    temperature: float = 0.0,
    batch_size: int = 128,
    max_new_tokens: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> list[str]:
    """Batched completions (greedy when ``temperature == 0``), cut at the end-of-sequence token."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[str] = []
    try:
        for i in tqdm(range(0, len(prompts), batch_size), desc="generate", disable=not progress):
            enc = tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
            )
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
            out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = old_side
    return out


def behaviour_stats(verdicts: list[TraceLabels]) -> BehaviourStats:
    """Aggregate checker verdicts into the model card's rates."""
    steps = [s for v in verdicts for s in v.steps]
    computes = [s for s in steps if s.kind == "compute"]
    fresh, corrected = 0, 0
    for v in verdicts:
        for i, s in enumerate(v.steps):
            if s.kind == "compute" and not s.logical:
                fresh += 1
                nxt = v.steps[i + 1] if i + 1 < len(v.steps) else None
                corrected += bool(nxt and nxt.kind == "wait" and nxt.variable == s.variable)

    def share(a: int, b: int) -> float:
        return a / b if b else 0.0

    return BehaviourStats(
        n_traces=len(verdicts),
        n_steps=len(steps),
        accuracy=share(sum(v.answer_correct for v in verdicts), len(verdicts)),
        fresh_error_rate=share(fresh, len(computes)),
        incorrect_step_rate=share(sum(not s.correct for s in steps), len(steps)),
        corrected_share=share(corrected, fresh),
        check_rate=share(sum(s.kind == "check" for s in steps), len(computes)),
        garbled_rate=share(sum(s.kind == "garbled" for s in steps), len(steps)),
        failures_garbled=share(
            sum(any(s.kind == "garbled" for s in v.steps) for v in verdicts if not v.answer_correct),
            sum(not v.answer_correct for v in verdicts),
        ),
    )


def evaluate(
    model,
    tokenizer,
    problems: list[Problem],
    *,
    temperature: float = 0.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> BehaviourStats:
    """Generate for ``problems`` and return the checker's statistics."""
    longest = max(len(p.program) for p in problems)
    texts = generate_completions(
        model,
        tokenizer,
        [p.prompt for p in problems],
        temperature=temperature,
        batch_size=batch_size,
        max_new_tokens=24 * (2 * longest + 2),
        seed=seed,
        progress=progress,
    )
    return behaviour_stats([check_trace(p, t) for p, t in zip(problems, texts, strict=True)])
