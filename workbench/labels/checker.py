"""Checker labels: the toy task's ground truth for every step, and toy traces labelled by it.

The checker (``workbench.toy.checker``) is the ground truth of the embedded model's task; this module is
its label source for traces: it writes ``kind``, ``correct``, ``logical``, ``first_error``,
``prefix_correct`` and ``viable`` into each step's labels and ``answer``/``answer_correct`` into the trace.

Two path labels (on the answer line both are the answer's correctness; ``check`` and garbled lines change
no belief):

- ``prefix_correct``: after this step every value the trace believes is the true one — no error is left
  uncorrected (an error step followed by its ``wait`` correction is not, the ``wait`` step is again);
- ``viable``: no uncorrected error in a value the *answer depends on* — the checker's view of what
  Math-Shepherd rollouts estimate (a wrong value the query never uses does not doom the trace).

:func:`generate_toy_traces` samples the model on toy problems and labels the traces with the checker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import NamedTuple

from workbench.labels.table import StepLabels, labels_of, unique_traces
from workbench.toy.checker import StepLabel, check_trace, parse_prompt
from workbench.toy.task import Problem, Sample
from workbench.traces.generate import GenerationConfig, generate_traces
from workbench.traces.segment import segment_trace
from workbench.traces.types import Trace

__all__ = [
    "trace_from_text",
    "traces_from_samples",
    "label_with_checker",
    "prefix_labels",
    "PrefixLabels",
    "answer_dependencies",
    "generate_toy_traces",
    "checker_labels",
]

TOY_GENERATION = GenerationConfig(max_new_tokens=160, temperature=1.0)
"""Default sampling for toy prompts (long enough for 5 statements with corrections and checks)."""


class PrefixLabels(NamedTuple):
    """The checker's two path labels of every step of a trace."""

    prefix_correct: list[bool]
    """No uncorrected error so far: every value the trace believes is true (the answer line: it is right)."""
    viable: list[bool]
    """No uncorrected error in a value the answer depends on (the answer line: it is right)."""


def answer_dependencies(problem: Problem) -> set[str]:
    """The queried variable and every variable it is computed from, transitively."""
    need = {problem.query}
    for st in reversed(problem.program):
        if st.target in need:
            need |= {st.left, st.right}
    return need


def prefix_labels(problem: Problem, steps: Sequence[StepLabel]) -> PrefixLabels:
    """``prefix_correct`` and ``viable`` per step from the checker's step verdicts."""
    need = answer_dependencies(problem)
    believed: dict[str, int] = {}
    correct, viable = [], []
    for lab in steps:
        if lab.kind in ("compute", "wait") and lab.variable is not None:
            believed[lab.variable] = lab.value
        wrong = {v for v, x in believed.items() if problem.values.get(v) != x}
        correct.append(lab.correct if lab.kind == "answer" else not wrong)
        viable.append(lab.correct if lab.kind == "answer" else not wrong & need)
    return PrefixLabels(correct, viable)


def label_with_checker(trace: Trace, problem: Problem | None = None) -> Trace:
    """Checker labels on every step (the trace must be segmented with the ``newline`` segmenter)."""
    problem = problem or parse_prompt(trace.prompt, problem_id=trace.problem_id)
    verdict = check_trace(problem, trace.completion)
    if len(verdict.steps) != len(trace.steps):
        raise ValueError(
            f"Trace {trace.trace_id}: the checker sees {len(verdict.steps)} lines but the trace has "
            f"{len(trace.steps)} steps; segment toy traces with segmenter='newline'"
        )
    paths = prefix_labels(problem, verdict.steps)
    steps = []
    for i, (step, lab) in enumerate(zip(trace.steps, verdict.steps, strict=True)):
        labels = {"kind": lab.kind, "correct": lab.correct, "logical": lab.logical, "first_error": lab.first_error}
        labels |= {"prefix_correct": paths.prefix_correct[i], "viable": paths.viable[i]}
        steps.append(replace(step, kind=lab.kind).with_labels(**labels))
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


def checker_labels(traces: Sequence[Trace]) -> StepLabels:
    """The toy checker's labels (kind, correct, logical, first_error, prefix_correct, viable) as a table."""
    labelled = [label_with_checker(t) for t in unique_traces(traces)]
    return labels_of(labelled, ["kind", "correct", "logical", "first_error", "prefix_correct", "viable"])
