"""The checker: ground-truth labels for every step of a toy-task trace, computed by a program.

Works on any completion, also one the model wrote: each line is one step, parsed leniently; a line that
matches no step form is labelled ``garbled`` (never an exception). Labels (see ``docs/embedded-model.md``):

- ``kind``: compute | wait | check | answer | garbled
- ``correct``: the stated value equals the true value of that variable (the answer: of the query)
- ``logical``: the stated value follows from what *this trace* stated before (a step can be logical yet
  incorrect after an uncorrected earlier error)
- ``first_error``: this is the earliest incorrect step of the trace (ProcessBench's label)
- per trace: ``answer`` (the stated final answer or None) and ``answer_correct``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.toy.task import Problem, Statement, apply_op

__all__ = ["StepLabel", "TraceLabels", "check_trace", "parse_prompt", "STEP_KINDS"]

STEP_KINDS = ("compute", "wait", "check", "answer", "garbled")

# n=i68+c71=n39 | wait n39 | check n39 | ans=39 ; prompt b48,i68,c71;n=i+c;y=c+n;?y
_COMPUTE = re.compile(r"^([a-z])=([a-z])(\d+)([+-])([a-z])(\d+)=([a-z])(\d+)$")
_WAIT = re.compile(r"^wait ([a-z])(\d+)$")
_CHECK = re.compile(r"^check ([a-z])(\d+)$")
_ANSWER = re.compile(r"^ans=(\d+)$")
_PROMPT = re.compile(r"^((?:[a-z]\d+,)*[a-z]\d+);((?:[a-z]=[a-z][+-][a-z];)+)\?([a-z])$")


@dataclass(frozen=True, kw_only=True)
class StepLabel:
    """The checker's verdict on one line of a completion."""

    index: int
    """Position of the step in the trace (0-based)."""
    text: str
    """The line as written."""
    kind: str
    """One of ``STEP_KINDS``."""
    variable: str | None
    """The variable the step states a value for (the query for the answer line)."""
    value: int | None
    """The value the step states."""
    correct: bool
    """Stated value equals the variable's true value."""
    logical: bool
    """Stated value follows from the values this trace stated before."""
    first_error: bool = False
    """This is the earliest incorrect step of the trace."""


@dataclass(frozen=True, kw_only=True)
class TraceLabels:
    """All step labels of a trace plus the trace-level verdict."""

    steps: tuple[StepLabel, ...]
    """One label per non-empty line, in order."""
    answer: int | None
    """The final answer the trace states (last ``ans=`` line), or None."""
    answer_correct: bool
    """The stated final answer equals the true answer."""
    first_error_index: int
    """Index of the earliest incorrect step, or -1 when every step is correct (ProcessBench convention)."""


def parse_prompt(prompt: str, modulus: int = 100, problem_id: str = "") -> Problem:
    """Rebuild a :class:`Problem` from its prompt text (so traces from files can be checked)."""
    m = _PROMPT.match(prompt.strip())
    if not m:
        raise ValueError(f"prompt={prompt!r} is not a toy-task prompt such as 'a1,b2;c=a+b;?c'")
    inputs = {kv[0]: int(kv[1:]) for kv in m.group(1).split(",")}
    values = dict(inputs)
    program = []
    for text in m.group(2).rstrip(";").split(";"):
        st = Statement(text[0], text[2], text[3], text[4])
        if st.left not in values or st.right not in values:
            raise ValueError(f"prompt={prompt!r}: statement {text!r} uses an undefined variable")
        values[st.target] = apply_op(values[st.left], st.op, values[st.right], modulus)
        program.append(st)
    return Problem(
        problem_id=problem_id, inputs=inputs, program=tuple(program), query=m.group(3), modulus=modulus, values=values
    )


def _judge_line(line: str, problem: Problem, believed: dict[str, int], ops: dict[str, tuple[str, str, str]]):
    """(kind, variable, value, correct, logical) for one line, updating ``believed`` in place."""
    truth, mod = problem.values, problem.modulus
    if m := _COMPUTE.match(line):
        var, left, op, right, result_var = m.group(1), m.group(2), m.group(4), m.group(5), m.group(7)
        value = int(m.group(8))
        if (
            var not in truth
            or result_var != var
            or left not in believed
            or right not in believed
            or ops.get(var) != (left, op, right)
        ):
            return "garbled", var, value, False, False
        logical = value == apply_op(believed[left], op, believed[right], mod)
        believed[var] = value
        return "compute", var, value, value == truth[var], logical
    if m := _WAIT.match(line):
        var, value = m.group(1), int(m.group(2))
        if var not in ops or var not in believed:
            return "garbled", var, value, False, False
        left, op, right = ops[var]
        logical = left in believed and right in believed and value == apply_op(believed[left], op, believed[right], mod)
        believed[var] = value
        return "wait", var, value, value == truth[var], logical
    if m := _CHECK.match(line):
        var, value = m.group(1), int(m.group(2))
        if var not in believed:
            return "garbled", var, value, False, False
        return "check", var, value, value == truth[var], value == believed[var]
    if m := _ANSWER.match(line):
        value = int(m.group(1))
        stated = believed.get(problem.query)
        return "answer", problem.query, value, value == problem.answer, value == stated
    return "garbled", None, None, False, False


def check_trace(problem: Problem, completion: str) -> TraceLabels:
    """Label every non-empty line of ``completion`` as a step of ``problem``; never raises on bad text."""
    believed = dict(problem.inputs)
    ops = {st.target: (st.left, st.op, st.right) for st in problem.program}
    labels: list[StepLabel] = []
    seen_error = False
    for line in (ln.strip() for ln in completion.split("\n")):
        if not line:
            continue
        kind, var, value, correct, logical = _judge_line(line, problem, believed, ops)
        first = not correct and not seen_error
        seen_error |= not correct
        labels.append(
            StepLabel(
                index=len(labels),
                text=line,
                kind=kind,
                variable=var,
                value=value,
                correct=correct,
                logical=logical,
                first_error=first,
            )
        )
    answers = [s for s in labels if s.kind == "answer"]
    answer = answers[-1].value if answers else None
    first_error = next((s.index for s in labels if s.first_error), -1)
    return TraceLabels(
        steps=tuple(labels), answer=answer, answer_correct=answer == problem.answer, first_error_index=first_error
    )
