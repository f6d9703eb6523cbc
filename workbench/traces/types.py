"""Trace and Step: the workbench's unit of data.

A :class:`Trace` is one prompt and one completion (chain of thought), cut into :class:`Step` objects by a
segmenter. A step's character span is a half-open range in the *completion*; the spans of a trace's steps
cover the completion in order without overlap (each step's raw chunk includes its trailing delimiter,
while ``text`` is the chunk without surrounding whitespace and delimiter).

Token positions refer to the tokenisation of ``prompt + completion`` (no special tokens added) — the
sequence that capture feeds the model. ``boundary_token`` is the token containing the step's last
character; with ``\\n\\n``-style segmenters that is the delimiter token RISE reads, and when a BPE token
merges the delimiter with its neighbour (``.\\n\\n``) it is that merged token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Step", "Trace"]


@dataclass(frozen=True, kw_only=True)
class Step:
    """One reasoning step of a trace."""

    index: int
    """Position in the trace, 0-based."""
    text: str
    """The step's text without its delimiter and surrounding whitespace."""
    char_start: int
    """Start of the step's raw chunk in the completion (inclusive)."""
    char_end: int
    """End of the step's raw chunk in the completion (exclusive); the chunk includes its delimiter."""
    kind: str = "step"
    """What the step does (toy task: compute/wait/check/answer/garbled; otherwise 'step' or a label)."""
    token_start: int | None = None
    """First token of the step in the prompt+completion token sequence (None until aligned)."""
    token_end: int | None = None
    """One past the last token of the step (exclusive)."""
    boundary_token: int | None = None
    """The token containing the step's last character (the delimiter token, RISE's read-out position)."""
    beyond_context: bool = False
    """Part of the step lies beyond the model's context window; its vectors are not captured."""
    labels: dict[str, Any] = field(default_factory=dict)
    """Per-step labels by source (e.g. ``correct``, ``soft_label``, ``reflection``)."""

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"Step.index={self.index}: must be >= 0")
        if not 0 <= self.char_start <= self.char_end:
            raise ValueError(
                f"Step.char_start={self.char_start}, char_end={self.char_end}: need 0 <= char_start <= char_end"
            )
        if self.token_start is not None and self.token_end is not None and self.token_start > self.token_end:
            raise ValueError(f"Step.token_start={self.token_start} > token_end={self.token_end}")

    def with_labels(self, **labels: Any) -> Step:
        """A copy with ``labels`` merged in (later sources win on equal names)."""
        return replace(self, labels={**self.labels, **labels})


@dataclass(frozen=True, kw_only=True)
class Trace:
    """A prompt, a completion, its steps, and trace-level facts (answer, settings, provenance)."""

    trace_id: str
    """Unique id of this trace (several traces may share a problem)."""
    problem_id: str
    """Id of the problem; data splits are made by this id, never by step."""
    prompt: str
    """The text the model was conditioned on."""
    completion: str
    """The model's (or a dataset's) chain of thought and answer."""
    steps: tuple[Step, ...] = ()
    """The completion cut into steps, in order."""
    answer: str | None = None
    """The final answer the trace states, if any."""
    answer_correct: bool | None = None
    """Whether the final answer is right (None: unknown)."""
    gold_answer: str | None = None
    """The reference answer, when known (rollout and forced-answer labels need it)."""
    generation: dict[str, Any] = field(default_factory=dict)
    """How the completion was produced (temperature, top_p, seed, max_new_tokens, stop, source)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Provenance of the model that wrote or will read the trace."""
    segmenter: dict[str, Any] = field(default_factory=dict)
    """Name and parameters of the segmenter that made ``steps``."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Anything else (dataset fields, judge notes)."""

    def __post_init__(self) -> None:
        if not self.trace_id:
            raise ValueError("Trace.trace_id is empty: give every trace a unique id")
        for i, step in enumerate(self.steps):
            if step.index != i:
                raise ValueError(f"Trace {self.trace_id}: steps[{i}].index={step.index}; indices must be 0..n-1")
            if step.char_end > len(self.completion):
                raise ValueError(
                    f"Trace {self.trace_id}: steps[{i}].char_end={step.char_end} is beyond the "
                    f"completion ({len(self.completion)} characters)"
                )

    @property
    def text(self) -> str:
        """The full sequence the model reads: prompt followed by completion."""
        return self.prompt + self.completion

    def with_steps(self, steps: tuple[Step, ...] | list[Step]) -> Trace:
        return replace(self, steps=tuple(steps))
