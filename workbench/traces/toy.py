"""Toy-task traces: turn task samples or model outputs into segmented traces labelled by the checker.

The checker (``workbench.toy.checker``) is the ground truth of the embedded model's task; this module is
its label source for traces: it writes ``kind``, ``correct``, ``logical``, ``first_error`` and
``prefix_correct`` into each step's labels and ``answer``/``answer_correct`` into the trace.

``prefix_correct`` is the checker's view of *path viability* (what Math-Shepherd rollouts estimate): after
this step every value the trace believes is the true one, i.e. no error is left uncorrected (an error step
followed by its ``wait`` correction is not viable, the ``wait`` step is again); on the answer line it is
the answer's correctness. ``check`` and garbled lines change no belief.

:func:`generate_toy_traces` samples the model on toy problems and labels the traces with the checker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from workbench.toy.checker import StepLabel, check_trace, parse_prompt
from workbench.toy.task import Problem, Sample
from workbench.traces.generate import GenerationConfig, generate_traces
from workbench.traces.segment import segment_trace
from workbench.traces.types import Trace

__all__ = ["trace_from_text", "traces_from_samples", "label_with_checker", "prefix_correct", "generate_toy_traces"]

TOY_GENERATION = GenerationConfig(max_new_tokens=160, temperature=1.0)
"""Default sampling for toy prompts (long enough for 5 statements with corrections and checks)."""


def prefix_correct(problem: Problem, steps: Sequence[StepLabel]) -> list[bool]:
    """Per step: no uncorrected error so far (every believed value is true); the answer: it is right."""
    believed: dict[str, int] = {}
    out = []
    for lab in steps:
        if lab.kind in ("compute", "wait") and lab.variable is not None:
            believed[lab.variable] = lab.value
        if lab.kind == "answer":
            out.append(lab.correct)
        else:
            out.append(all(problem.values.get(v) == x for v, x in believed.items()))
    return out


def label_with_checker(trace: Trace, problem: Problem | None = None) -> Trace:
    """Checker labels on every step (the trace must be segmented with the ``newline`` segmenter)."""
    problem = problem or parse_prompt(trace.prompt, problem_id=trace.problem_id)
    verdict = check_trace(problem, trace.completion)
    if len(verdict.steps) != len(trace.steps):
        raise ValueError(
            f"Trace {trace.trace_id}: the checker sees {len(verdict.steps)} lines but the trace has "
            f"{len(trace.steps)} steps; segment toy traces with segmenter='newline'"
        )
    viable = prefix_correct(problem, verdict.steps)
    steps = []
    for step, lab, ok in zip(trace.steps, verdict.steps, viable, strict=True):
        steps.append(
            replace(step, kind=lab.kind).with_labels(
                kind=lab.kind, correct=lab.correct, logical=lab.logical, first_error=lab.first_error, prefix_correct=ok
            )
        )
    answer = None if verdict.answer is None else str(verdict.answer)
    return replace(
        trace, steps=tuple(steps), answer=answer, answer_correct=verdict.answer_correct, gold_answer=str(problem.answer)
    )


def trace_from_text(
    problem: Problem, completion: str, *, trace_id: str, tokenizer=None, n_ctx: int | None = None, **fields
) -> Trace:
    """A segmented, token-aligned, checker-labelled trace of ``completion`` for ``problem``."""
    trace = Trace(
        trace_id=trace_id,
        problem_id=problem.problem_id,
        prompt=problem.prompt,
        completion=completion,
        gold_answer=str(problem.answer),
        **fields,
    )
    trace = segment_trace(trace, "newline", tokenizer=tokenizer, n_ctx=n_ctx)
    return label_with_checker(trace, problem)


def traces_from_samples(samples: Iterable[Sample], *, tokenizer=None, n_ctx: int | None = None) -> list[Trace]:
    """Traces of the task's own rendered solutions (ground-truth data with injected behaviours)."""
    return [
        trace_from_text(
            s.problem,
            s.completion,
            trace_id=f"{s.problem.problem_id}/gold",
            tokenizer=tokenizer,
            n_ctx=n_ctx,
            generation={"source": "toy-task"},
        )
        for s in samples
    ]


def generate_toy_traces(
    model, problems: Sequence[Problem], *, config: GenerationConfig = TOY_GENERATION, progress: bool = True
) -> list[Trace]:
    """Sample ``model`` on toy ``problems``; traces segmented by line and labelled by the checker."""
    by_id = {p.problem_id: p for p in problems}
    return generate_traces(
        model,
        [p.prompt for p in problems],
        config=config,
        problem_ids=[p.problem_id for p in problems],
        gold_answers=[str(p.answer) for p in problems],
        segmenter="newline",
        label=lambda t: label_with_checker(t, by_id[t.problem_id]),
        progress=progress,
    )
