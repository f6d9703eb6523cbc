"""The synthetic reasoning task: seeded programs whose every step a program can check.

A problem names a few variables with values and a short straight-line program; the chain of thought
executes one statement per line, writing every value right after its variable's letter, then states the
answer:

    prompt:      b48,i68,c71;n=i+c;y=c+n;?y
    completion:  n=i68+c71=n39
                 y=c71+n39=y10
                 ans=10

Why values sit right after their letter (``i68``, not ``i=68`` as in the first sketch of the task):
reading a variable's value is then a one-hop induction look-up (find the earlier ``i`` followed by digits,
copy them). With ``i=68`` it needs a two-hop composition, and a 1M-parameter model on 2 CPU cores stayed
on that plateau (≈15% accuracy after 2,500 steps; arithmetic and statement copying were already right).

Values live mod ``modulus``. Training data also carries *reasoning behaviours* so that the model learns
them (see ``docs/embedded-model.md``): an injected wrong result, often followed by a
``wait n=<right value>`` self-correction, and occasional ``check n=<value>`` verification lines.

This module owns the problem format. The checker (``workbench.toy.checker``) parses it back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["TaskConfig", "Statement", "Problem", "Sample", "generate_problem", "render_solution", "generate_samples"]

VARIABLE_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """Everything that shapes a batch of problems; recorded with the data and in the model card."""

    n_inputs: int = 3
    """How many variables the prompt gives values for."""
    min_statements: int = 2
    """Shortest program (statements), inclusive."""
    max_statements: int = 5
    """Longest program (statements), inclusive. Longer programs than in training are out of distribution."""
    ops: str = "+-"
    """Operations to draw from; each is a single character applied mod ``modulus``."""
    modulus: int = 100
    """Values are taken mod this number (100 gives two-digit values, which the model learns best)."""
    p_error: float = 0.1
    """Chance that a compute step states a wrong result (training data only)."""
    p_correct: float = 0.6
    """Chance that an injected error is followed by a ``wait v<right value>`` line."""
    p_check: float = 0.1
    """Chance of a ``check v<value>`` line after a compute step."""
    shared_tens_share: float = 0.0
    """Share of problems whose input values all start with one tens digit (``b63,i68,c61``); training only.

    Why: a small model first learns to read a variable by a one-token induction shortcut keyed on the
    value's first digit, copying the second digit from the most recent value that starts the same way
    (``x14`` read as ``x19`` because ``u19`` is in the prompt). With uniform values that shortcut is right
    often enough to plateau at about 70% accuracy; problems whose values share a tens digit punish it every
    time, so the model has to key on the variable's letter. Evaluation problems stay uniform: ``clean()``
    sets this back to 0. A value of 0 draws no extra random numbers, so existing seeds give the same
    problems."""

    def __post_init__(self) -> None:
        if not 1 <= self.n_inputs <= 10:
            raise ValueError(f"n_inputs={self.n_inputs}: give between 1 and 10 input variables")
        if not 1 <= self.min_statements <= self.max_statements:
            raise ValueError(
                f"min_statements={self.min_statements}, max_statements={self.max_statements}: "
                "need 1 <= min_statements <= max_statements"
            )
        if self.n_inputs + self.max_statements > len(VARIABLE_LETTERS):
            raise ValueError(
                f"n_inputs + max_statements = {self.n_inputs + self.max_statements} exceeds the "
                f"{len(VARIABLE_LETTERS)} variable letters; shorten the program"
            )
        if not self.ops or set(self.ops) - {"+", "-"}:
            raise ValueError(f"ops={self.ops!r}: use a non-empty string of '+' and '-'")
        if not 2 <= self.modulus <= 1000:
            raise ValueError(f"modulus={self.modulus}: use a modulus between 2 and 1000")
        for name in ("p_error", "p_correct", "p_check", "shared_tens_share"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}={p}: a probability must lie in [0, 1]")

    def clean(self) -> TaskConfig:
        """The same task without injected behaviours (for evaluation prompts and gold traces)."""
        return TaskConfig(
            n_inputs=self.n_inputs,
            min_statements=self.min_statements,
            max_statements=self.max_statements,
            ops=self.ops,
            modulus=self.modulus,
            p_error=0.0,
            p_correct=0.0,
            p_check=0.0,
            shared_tens_share=0.0,
        )


@dataclass(frozen=True)
class Statement:
    """One program line ``target = left op right``."""

    target: str
    left: str
    op: str
    right: str

    def text(self) -> str:
        return f"{self.target}={self.left}{self.op}{self.right}"


def apply_op(a: int, op: str, b: int, modulus: int) -> int:
    """The task's arithmetic: ``a op b`` mod ``modulus``."""
    if op == "+":
        return (a + b) % modulus
    if op == "-":
        return (a - b) % modulus
    raise ValueError(f"op={op!r}: only '+' and '-' are defined")


@dataclass(frozen=True)
class Problem:
    """A problem: input values, program, queried variable; ``values`` holds every variable's true value."""

    problem_id: str
    inputs: dict[str, int]
    program: tuple[Statement, ...]
    query: str
    modulus: int
    values: dict[str, int] = field(repr=False)

    @property
    def prompt(self) -> str:
        given = ",".join(f"{k}{v}" for k, v in self.inputs.items())
        program = ";".join(s.text() for s in self.program)
        return f"{given};{program};?{self.query}\n"

    @property
    def answer(self) -> int:
        return self.values[self.query]


@dataclass(frozen=True)
class Sample:
    """A problem with one rendered solution (the text the model is trained to write)."""

    problem: Problem
    completion: str


def generate_problem(rng: random.Random, cfg: TaskConfig, problem_id: str) -> Problem:
    """Draw one problem: fresh letters for every variable, operands drawn from variables defined so far."""
    n_statements = rng.randint(cfg.min_statements, cfg.max_statements)
    letters = rng.sample(VARIABLE_LETTERS, cfg.n_inputs + n_statements)
    if cfg.shared_tens_share > 0 and cfg.modulus > 10 and rng.random() < cfg.shared_tens_share:
        tens = rng.randrange((cfg.modulus + 9) // 10)
        low, high = tens * 10, min(tens * 10 + 10, cfg.modulus)
        inputs = {letter: rng.randrange(low, high) for letter in letters[: cfg.n_inputs]}
    else:
        inputs = {letter: rng.randrange(cfg.modulus) for letter in letters[: cfg.n_inputs]}
    values = dict(inputs)
    program = []
    for target in letters[cfg.n_inputs :]:
        left, right = rng.choice(list(values)), rng.choice(list(values))
        op = rng.choice(cfg.ops)
        program.append(Statement(target, left, op, right))
        values[target] = apply_op(values[left], op, values[right], cfg.modulus)
    return Problem(
        problem_id=problem_id,
        inputs=inputs,
        program=tuple(program),
        query=program[-1].target,
        modulus=cfg.modulus,
        values=values,
    )


def _wrong_value(rng: random.Random, right: int, modulus: int) -> int:
    # Plausible slips: off by a little, or a wrong tens digit; never the right value.
    delta = rng.choice([1, 2, 3, 5, 10, 20]) * rng.choice([-1, 1])
    return (right + delta) % modulus


def render_solution(rng: random.Random, problem: Problem, cfg: TaskConfig) -> str:
    """Write a chain of thought for ``problem``, injecting behaviours with the probabilities in ``cfg``."""
    believed = dict(problem.inputs)  # the values this trace has stated so far
    lines = []
    for st in problem.program:
        a, b = believed[st.left], believed[st.right]
        right = apply_op(a, st.op, b, problem.modulus)
        stated = right
        if rng.random() < cfg.p_error:
            stated = _wrong_value(rng, right, problem.modulus)
        lines.append(f"{st.target}={st.left}{a}{st.op}{st.right}{b}={st.target}{stated}")
        if stated != right and rng.random() < cfg.p_correct:
            lines.append(f"wait {st.target}{right}")
            stated = right
        believed[st.target] = stated
        if rng.random() < cfg.p_check:
            lines.append(f"check {st.target}{stated}")
    lines.append(f"ans={believed[problem.query]}")
    return "\n".join(lines) + "\n"


def generate_samples(cfg: TaskConfig, n: int, seed: int, prefix: str = "p") -> list[Sample]:
    """``n`` problems with rendered solutions; the same ``(cfg, n, seed)`` always gives the same samples."""
    if n < 0:
        raise ValueError(f"n={n}: the number of samples cannot be negative")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        problem = generate_problem(rng, cfg, f"{prefix}{seed}-{i}")
        out.append(Sample(problem, render_solution(rng, problem, cfg)))
    return out
