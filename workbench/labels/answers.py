"""Answer formats: how a completion states its final answer, and the cue that forces one.

Rollout labels (Math-Shepherd) read the final answer out of sampled continuations; the forced-answer step
potential (SPAE) appends a *cue* after a step and teacher-forces the gold answer behind it. Both need to
know the task's answer convention, held in one :class:`AnswerFormat`. The toy task states ``ans=<digits>``
on its own line, so its cue is ``ans=`` (appended after a step's trailing newline) and the answer ends at
the newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AnswerFormat", "TOY_ANSWER"]


@dataclass(frozen=True, kw_only=True)
class AnswerFormat:
    """A task's answer convention: the regex that finds a stated answer, the cue that asks for one."""

    pattern: str = r"(?m)^ans=(\d+)\s*$"
    """Regex whose group 1 is the answer; the last match in a text is its final answer."""
    cue: str = "ans="
    """Text appended after a step prefix to make the model state its answer now (SPAE's answer cue)."""
    terminator: str = "\n"
    """What follows a complete answer (scored with the gold answer, so ``3`` is not a prefix of ``35``)."""

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"pattern={self.pattern!r} is not a valid regular expression: {e}") from e
        if compiled.groups < 1:
            raise ValueError(f"pattern={self.pattern!r}: needs a capturing group holding the answer")

    def extract(self, text: str) -> str | None:
        """The last answer stated in ``text`` (stripped), or None."""
        found = re.findall(self.pattern, text)
        if not found:
            return None
        last = found[-1]
        return (last[0] if isinstance(last, tuple) else last).strip()

    def is_correct(self, text: str, gold: str) -> bool:
        """Whether the final answer stated in ``text`` equals ``gold`` (both stripped)."""
        answer = self.extract(text)
        return answer is not None and answer == gold.strip()


TOY_ANSWER = AnswerFormat()
"""The toy task: ``ans=<digits>`` on its own line."""
