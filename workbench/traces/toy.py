"""Toy-task traces: turn task samples or model outputs into segmented traces labelled by the checker.

The checker (``workbench.toy.checker``) is the ground truth of the embedded model's task; this module is
its label source for traces: it writes ``kind``, ``correct``, ``logical`` and ``first_error`` into each
step's labels and ``answer``/``answer_correct`` into the trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from workbench.toy.checker import check_trace, parse_prompt
from workbench.toy.task import Problem, Sample
from workbench.traces.segment import segment_trace
from workbench.traces.types import Trace

__all__ = ["trace_from_text", "traces_from_samples", "label_with_checker"]


def label_with_checker(trace: Trace, problem: Problem | None = None) -> Trace:
    """Checker labels on every step (the trace must be segmented with the ``newline`` segmenter)."""
    problem = problem or parse_prompt(trace.prompt, problem_id=trace.problem_id)
    verdict = check_trace(problem, trace.completion)
    if len(verdict.steps) != len(trace.steps):
        raise ValueError(
            f"Trace {trace.trace_id}: the checker sees {len(verdict.steps)} lines but the trace has "
            f"{len(trace.steps)} steps; segment toy traces with segmenter='newline'"
        )
    steps = []
    for step, lab in zip(trace.steps, verdict.steps, strict=True):
        steps.append(
            replace(step, kind=lab.kind).with_labels(
                kind=lab.kind, correct=lab.correct, logical=lab.logical, first_error=lab.first_error
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
