"""More segmenters: prose-math sentences, SPAE's ``.\\n\\n`` token boundary, markers/regex, given step lists.

All follow the contract of :mod:`workbench.traces.segment` (chunks cover the completion in order, a chunk
keeps its trailing delimiter) and are registered under their ``name`` when ``workbench.traces`` is imported:

- ``sentence``: prose math. Cuts after a sentence end (``.``/``!``/``?`` + whitespace, unless the next word
  starts lowercase, as after "e.g."), at blank lines, and *before* connectors such as "Therefore"/"So".
  Never cuts inside math: display ``$$…$$``/``\\[…\\]`` and inline ``$…$``/``\\(…\\)`` stay whole.
- ``spae``: SPAE's step boundary, a token whose text ends in ``.\\n\\n``. ``mode="tokens"`` reads the
  tokenizer (faithful to SPAE); ``mode="text"`` cuts after every ``.\\n\\n`` in the text. The two agree
  whenever the tokenizer keeps ``.\\n\\n`` inside one token (Qwen/DeepSeek-style BPE) and the text has no
  ``.\\n\\n\\n``; they differ when ``.`` and ``\\n\\n`` are separate tokens (text mode still cuts).
- ``marker``: a new step starts at each marker word ("Wait", "Alternatively") or regex match; optionally
  also after a delimiter such as a blank line.
- ``given``: ProcessBench-style lists of steps, validated against the completion; a list that does not
  spell out the completion raises ``ValueError`` naming the field (``steps[3]``). Only the field name is
  recorded with the data; the step texts are the trace's steps themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workbench.traces.segment import Segmenter, normalise_spans, register_segmenter, spans_after

__all__ = ["SentenceSegmenter", "SpaeSegmenter", "MarkerSegmenter", "GivenStepsSegmenter", "math_regions"]

_MATH = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]+?\$", re.DOTALL)


def _as_tuple(obj, name: str) -> None:
    """Store a list parameter (as recorded in JSON) as a tuple so that the frozen config stays hashable."""
    value = getattr(obj, name)
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}={value!r}: give a list of strings")
    object.__setattr__(obj, name, tuple(value))


def _compile(pattern: str, name: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ValueError(f"{name}={pattern!r} is not a valid regular expression: {e}") from e


def math_regions(text: str) -> list[tuple[int, int]]:
    """Character spans of math in ``text`` (display first, then inline), never to be cut."""
    return [m.span() for m in _MATH.finditer(text)]


def _outside(cuts: list[int], regions: list[tuple[int, int]]) -> list[int]:
    return [c for c in cuts if not any(a < c < b for a, b in regions)]


@dataclass(frozen=True, kw_only=True)
class SentenceSegmenter(Segmenter):
    """Sentences of prose math; display math whole; a connector word starts a new step."""

    connectors: tuple[str, ...] = ("Therefore", "So", "Thus", "Hence")
    """Words that start a new step wherever they follow whitespace (case-sensitive, whole words)."""
    split_newlines: bool = False
    """Also end a step at every single line break (blank lines always end one)."""
    name = "sentence"

    def __post_init__(self) -> None:
        _as_tuple(self, "connectors")

    def split(self, completion: str, *, token_spans=None) -> list[tuple[int, int]]:
        text = completion
        cuts = [m.end() for m in re.finditer(r"[.!?][\"')\]]*\s+(?=[^a-z\s]|$)", text)]
        cuts += [m.end() for m in re.finditer(r"\n\s*\n" if not self.split_newlines else r"\n\s*", text)]
        if self.connectors:
            words = "|".join(re.escape(c) for c in self.connectors)
            cuts += [m.start() for m in re.finditer(rf"(?<=\s)(?:{words})\b", text)]
        return normalise_spans(text, _outside(cuts, math_regions(text)))


@dataclass(frozen=True, kw_only=True)
class SpaeSegmenter(Segmenter):
    """SPAE: a step ends at a token whose text ends with ``suffix`` (default ``.\\n\\n``)."""

    suffix: str = ".\n\n"
    """The ending that marks a step boundary."""
    mode: str = "tokens"
    """``tokens``: read token boundaries (needs a tokenizer); ``text``: cut after each ``suffix`` in the text."""
    name = "spae"

    def __post_init__(self) -> None:
        if self.mode not in ("tokens", "text"):
            raise ValueError(f"mode={self.mode!r}: use 'tokens' or 'text'")
        if not self.suffix:
            raise ValueError("suffix is empty: give the ending that marks a boundary, e.g. '.\\n\\n'")

    @property
    def uses_tokens(self) -> bool:  # type: ignore[override]
        return self.mode == "tokens"

    def split(self, completion: str, *, token_spans=None) -> list[tuple[int, int]]:
        if self.mode == "text":
            return spans_after(completion, re.compile(re.escape(self.suffix)))
        if token_spans is None:
            raise ValueError("token_spans: segmenter 'spae' with mode='tokens' needs the completion's tokens")
        cuts = [b for a, b in token_spans if completion[a:b].endswith(self.suffix)]
        return normalise_spans(completion, cuts)


@dataclass(frozen=True, kw_only=True)
class MarkerSegmenter(Segmenter):
    """A new step at each marker word or regex match (RISE-style behaviour markers)."""

    markers: tuple[str, ...] = ("Wait", "Alternatively")
    """Whole words that start a new step (ignored when ``pattern`` is given)."""
    pattern: str | None = None
    """A regular expression; a new step starts at each match (overrides ``markers``)."""
    ignore_case: bool = False
    """Match markers/pattern case-insensitively."""
    delimiter: str | None = None
    """Optional regex after which a step also ends, e.g. ``\\n\\s*\\n`` to combine with RISE's blank lines."""
    name = "marker"

    def __post_init__(self) -> None:
        _as_tuple(self, "markers")
        if self.pattern is None and not self.markers:
            raise ValueError("markers is empty and pattern is None: give marker words or a pattern")
        self._regex()
        if self.delimiter is not None:
            _compile(self.delimiter, "delimiter")

    def _regex(self) -> re.Pattern[str]:
        flags = re.IGNORECASE if self.ignore_case else 0
        if self.pattern is not None:
            return _compile(self.pattern, "pattern", flags)
        words = "|".join(re.escape(m) for m in self.markers)
        return _compile(rf"(?<!\w)(?:{words})\b", "markers", flags)

    def split(self, completion: str, *, token_spans=None) -> list[tuple[int, int]]:
        cuts = [m.start() for m in self._regex().finditer(completion)]
        if self.delimiter is not None:
            cuts += [m.end() for m in re.finditer(self.delimiter, completion)]
        return normalise_spans(completion, cuts)


@dataclass(frozen=True, kw_only=True)
class GivenStepsSegmenter(Segmenter):
    """Steps given as a list (ProcessBench, an inference server's output), checked against the completion."""

    steps: tuple[str, ...] = field(default=(), repr=False)
    """The step texts, in order; each must appear in the completion, separated only by whitespace."""
    field_name: str = "steps"
    """Name of the field the list came from (used in error messages and recorded with the data)."""
    name = "given"

    def __post_init__(self) -> None:
        if isinstance(self.steps, str) or not all(isinstance(s, str) for s in self.steps):
            raise ValueError(f"{self.field_name}: give a list of step strings, got {type(self.steps).__name__}")
        object.__setattr__(self, "steps", tuple(self.steps))

    def params(self) -> dict:
        return {"field_name": self.field_name}

    def split(self, completion: str, *, token_spans=None) -> list[tuple[int, int]]:
        if not self.steps:
            raise ValueError(f"{self.field_name}: the step list is empty")
        starts, pos = [], 0
        for i, raw in enumerate(self.steps):
            text = raw.strip()
            if not text:
                raise ValueError(f"{self.field_name}[{i}] is empty or whitespace")
            while pos < len(completion) and completion[pos].isspace():
                pos += 1
            if not completion.startswith(text, pos):
                raise ValueError(
                    f"{self.field_name}[{i}]={_short(text)} does not match the completion at character {pos} "
                    f"(found {_short(completion[pos:])}); the steps must spell out the completion in order"
                )
            starts.append(pos)
            pos += len(text)
        if completion[pos:].strip():
            raise ValueError(
                f"{self.field_name}: the completion continues after the last step at character {pos} "
                f"({_short(completion[pos:])}); the step list is incomplete"
            )
        return normalise_spans(completion, starts[1:])


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "…")


register_segmenter("sentence", SentenceSegmenter)
register_segmenter("spae", SpaeSegmenter)
register_segmenter("marker", MarkerSegmenter)
register_segmenter("given", GivenStepsSegmenter)
