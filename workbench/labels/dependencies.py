"""Step dependencies: which earlier steps each step of a toy-task trace reads — the ground truth of attribution.

In the toy task every value a step uses comes from a known place. A step *reads* a variable's value from
the step that last **defined** it: the last ``compute`` line for that variable, or a ``wait`` line that
corrected it (the correction is the defining step from then on). A variable no line has defined yet is read
from the prompt, step ``-1``. ``check`` lines restate a value but define nothing (the checker's belief does
not change on them), so they are never a source.

What each kind of line reads:

- ``compute`` ``y=c71+n39=y10``: the defining steps of its two operands (``c``, ``n``);
- ``wait`` ``wait y12``: the defining steps of the operands of ``y``'s statement (it recomputes the value);
  the line it corrects is recorded separately as ``corrects`` (that link is control, not data: it usually is
  the step right before, and a correct rewrite of it would change no value downstream);
- ``check`` ``check n39``: the defining step of ``n``;
- ``answer`` ``ans=10``: the defining step of the queried variable;
- ``garbled``: nothing (unknown).

``source="stated"`` reads each value instead from the step that last *wrote* it in any form (a compute
line's operands and result, a ``wait``/``check`` value, the answer): the nearest copy of the digits.

``on_answer_path``: the step is the final answer line (the last ``ans=`` line) or some step on the path
reads from it, transitively — the steps whose values the stated answer is computed from. A wrong value the
answer uses (an uncorrected error) is on the path; an error a ``wait`` corrected is not, the ``wait`` is.
``read_later``: some later step reads from this step. ``read_chars``: the character ranges (in the
completion) where the step writes a value it read — the operand digits of a compute line, the value of a
``wait``/``check``/answer line — the positions where attention to the source step should matter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from workbench.labels.table import StepKey, StepLabels, unique_traces
from workbench.toy.checker import check_trace, parse_prompt
from workbench.toy.task import Problem
from workbench.traces.types import Trace

__all__ = ["PROMPT_STEP", "SOURCES", "StepDependency", "step_dependencies", "dependency_labels", "DEPENDENCY_LABELS"]

PROMPT_STEP = -1
"""The step index that stands for the prompt (the source of every input variable)."""

DEPENDENCY_LABELS = ("depends_on", "corrects", "on_answer_path", "read_later", "read_chars")
"""The label names :func:`dependency_labels` writes."""

# Same step forms as the checker (workbench.toy.checker); here the spans of the digits matter.
_COMPUTE = re.compile(r"^([a-z])=([a-z])(\d+)([+-])([a-z])(\d+)=([a-z])(\d+)$")
_VALUE_LINE = re.compile(r"^(?:wait|check) ([a-z])(\d+)$")
_ANSWER = re.compile(r"^ans=(\d+)$")


class StepDependency(NamedTuple):
    """Where one step's values come from, and whether the answer depends on it."""

    index: int
    """Position of the step in the trace (0-based; the same numbering as the checker's lines)."""
    kind: str
    """The checker's kind: compute | wait | check | answer | garbled."""
    variable: str | None
    """The variable the step defines or restates (the query for the answer line)."""
    depends_on: tuple[int, ...]
    """Sorted indices of the steps it reads values from; ``-1`` is the prompt."""
    corrects: int | None
    """For a ``wait`` line: the step whose value it corrects (the last definition it replaces); else None."""
    on_answer_path: bool
    """The final answer line, or a step the answer's values are (transitively) read from."""
    read_later: bool
    """Some later step reads a value from this step."""
    read_chars: tuple[tuple[int, int], ...]
    """Half-open character ranges, in the completion, of the values the step writes after reading them."""


def _lines(completion: str) -> list[tuple[int, str]]:
    """Completion offset and stripped text of every non-empty line (the checker's steps, in order)."""
    out, offset = [], 0
    for raw in completion.split("\n"):
        text = raw.strip()
        if text:
            out.append((offset + len(raw) - len(raw.lstrip()), text))
        offset += len(raw) + 1
    return out


def _reads(text: str, kind: str, problem: Problem) -> tuple[list[str], list[tuple[int, int]]]:
    """The variables a line reads and the character spans (within the line) of the values it writes."""
    ops = {st.target: (st.left, st.right) for st in problem.program}
    if kind == "compute" and (m := _COMPUTE.match(text)):
        return [m.group(2), m.group(5)], [m.span(3), m.span(6)]
    if kind == "wait" and (m := _VALUE_LINE.match(text)):
        return list(ops.get(m.group(1), ())), [m.span(2)]
    if kind == "check" and (m := _VALUE_LINE.match(text)):
        return [m.group(1)], [m.span(2)]
    if kind == "answer" and (m := _ANSWER.match(text)):
        return [problem.query], [m.span(1)]
    return [], []


SOURCES = ("defined", "stated")
"""Where a step reads a variable's value from: the step that last *defined* it, or that last *wrote* it."""


def step_dependencies(problem: Problem, completion: str, *, source: str = "defined") -> list[StepDependency]:
    """The dependency record of every step (non-empty line) of ``completion``; never raises on bad text.

    ``source="defined"`` (the default, see the module docstring) reads each value from the step that last
    defined it. ``source="stated"`` reads it from the step that last *wrote* it in any form — a compute
    line's operands and result, a ``wait``/``check`` value, the answer — i.e. the nearest place the digits
    can be copied from: a ``wait`` line then reads its operands from the line it corrects (which wrote them
    just before), and an answer may read from a ``check`` line.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: choose one of {SOURCES}")
    verdict = check_trace(problem, completion)
    lines = _lines(completion)
    defined_by = {var: PROMPT_STEP for var in problem.inputs}
    stated_by = dict(defined_by)
    depends, corrects, spans = [], [], []
    for lab, (offset, text) in zip(verdict.steps, lines, strict=True):
        variables, local = _reads(text, lab.kind, problem)
        origin = defined_by if source == "defined" else stated_by
        depends.append(tuple(sorted({origin[v] for v in variables if v in origin})))
        spans.append(tuple((offset + a, offset + b) for a, b in local))
        corrects.append(defined_by.get(lab.variable) if lab.kind == "wait" else None)
        if lab.kind in ("compute", "wait") and lab.variable is not None:
            defined_by[lab.variable] = lab.index
        written = ([] if lab.kind == "wait" else variables) + (
            [lab.variable] if lab.kind in ("compute", "wait") else []
        )
        stated_by.update({v: lab.index for v in written if v is not None})
    answers = [lab.index for lab in verdict.steps if lab.kind == "answer"]
    on_path = [False] * len(lines)
    frontier = answers[-1:]
    while frontier:
        i = frontier.pop()
        if i >= 0 and not on_path[i]:
            on_path[i] = True
            frontier.extend(depends[i])
    read_later = [False] * len(lines)
    for deps in depends:
        for k in deps:
            if k >= 0:
                read_later[k] = True
    return [
        StepDependency(
            index=lab.index,
            kind=lab.kind,
            variable=lab.variable,
            depends_on=depends[i],
            corrects=corrects[i],
            on_answer_path=on_path[i],
            read_later=read_later[i],
            read_chars=spans[i],
        )
        for i, lab in enumerate(verdict.steps)
    ]


def dependency_labels(
    traces: Sequence[Trace], problems: Sequence[Problem] | None = None, *, source: str = "defined"
) -> StepLabels:
    """``depends_on`` (list), ``corrects``, ``on_answer_path``, ``read_later``, ``read_chars`` for every step.

    Traces must be toy-task traces cut with the ``newline`` segmenter; their problem is parsed from the prompt
    unless ``problems`` (by ``problem_id``) are given. ``source``: see :func:`step_dependencies`.
    """
    by_id = {p.problem_id: p for p in problems or ()}
    out: StepLabels = {}
    for t in unique_traces(traces):
        problem = by_id.get(t.problem_id) or parse_prompt(t.prompt, problem_id=t.problem_id)
        deps = step_dependencies(problem, t.completion, source=source)
        if len(deps) != len(t.steps):
            raise ValueError(
                f"Trace {t.trace_id}: {len(deps)} non-empty lines but {len(t.steps)} steps; "
                "segment toy traces with segmenter='newline'"
            )
        for d in deps:
            out[StepKey(t.trace_id, d.index)] = {
                "depends_on": list(d.depends_on),
                "corrects": d.corrects,
                "on_answer_path": d.on_answer_path,
                "read_later": d.read_later,
                "read_chars": [list(span) for span in d.read_chars],
            }
    return out
