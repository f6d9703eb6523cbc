"""Keyword behaviour labels: reflection, backtracking and verification steps found by word lists.

RISE's cheap stand-in for an LLM judge (keyword matching agrees with a judge about 85% of the time): a step
is a reflection / backtracking / verification step when it contains one of the configured words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from workbench.labels.table import StepKey, StepLabels, unique_traces
from workbench.traces.types import Trace

__all__ = ["KeywordConfig", "keyword_labels"]


@dataclass(frozen=True, kw_only=True)
class KeywordConfig:
    """Word lists for the keyword behaviour labels (matched as whole words or phrases)."""

    reflection: tuple[str, ...] = ("wait", "hmm", "hold on", "let me reconsider", "on second thought")
    """Words that mark a reflection step (RISE: "Wait")."""
    backtracking: tuple[str, ...] = ("alternatively", "instead", "let me try", "another approach", "start over")
    """Words that mark a backtracking step (RISE: "Alternatively")."""
    verification: tuple[str, ...] = ("check", "verify", "double-check", "confirm", "let me make sure")
    """Words that mark a verification step."""
    ignore_case: bool = True
    """Match regardless of case."""
    at_start: bool = False
    """Only count words at the very start of the step (stricter; "Wait," but not "... wait ...")."""

    def __post_init__(self) -> None:
        for name in ("reflection", "backtracking", "verification"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(w, str) and w.strip() for w in value):
                raise ValueError(f"{name}={value!r}: give a list of non-empty words")
            object.__setattr__(self, name, tuple(value))

    def pattern(self, behaviour: str) -> re.Pattern[str] | None:
        """The compiled matcher of one behaviour (None for an empty word list)."""
        words = getattr(self, behaviour)
        if not words:
            return None
        body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        lead = r"^\W*" if self.at_start else r"(?<!\w)"
        return re.compile(rf"{lead}(?:{body})(?!\w)", re.IGNORECASE if self.ignore_case else 0)


def keyword_labels(traces: Sequence[Trace], config: KeywordConfig = KeywordConfig()) -> StepLabels:
    """``reflection``/``backtracking``/``verification`` flags for every step, from word lists."""
    matchers = {b: config.pattern(b) for b in ("reflection", "backtracking", "verification")}
    out: StepLabels = {}
    for t in unique_traces(traces):
        for s in t.steps:
            out[StepKey(t.trace_id, s.index)] = {
                b: bool(m is not None and m.search(s.text)) for b, m in matchers.items()
            }
    return out
