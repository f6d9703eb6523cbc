"""Segmenters: cut a completion into steps, selected by name, with parameters recorded beside the data.

Every segmenter returns raw chunk spans ``(start, end)`` that cover the completion in order without gaps or
overlap; a chunk includes its trailing delimiter and all whitespace up to the next step's first character,
and whitespace-only chunks are folded into their neighbour. :func:`segment_trace` turns the spans into
:class:`~workbench.traces.types.Step` objects, aligns them to tokens and records ``{"name": ..., **params}``
in ``trace.segmenter``. With a tokenizer, a cut that falls inside a token moves to the token's edge
(:func:`~workbench.traces.align.align_trace`), so no token belongs to two steps.

This module holds the base class, the registry and the two line-based segmenters; the others (sentence,
SPAE token boundary, marker/regex, given step lists) live in :mod:`workbench.traces.segmenters` and are
registered when the package is imported. A segmenter that reads tokens (``uses_tokens``) gets the
completion's token character spans from :func:`segment_trace`, which then needs a tokenizer.

Register a new segmenter with :func:`register_segmenter`; :func:`get_segmenter` lists the known names when
asked for an unknown one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

from workbench.traces.align import align_trace, token_offsets
from workbench.traces.types import Step, Trace

__all__ = [
    "Segmenter",
    "NewlineSegmenter",
    "DoubleNewlineSegmenter",
    "register_segmenter",
    "get_segmenter",
    "segmenter_names",
    "segment_trace",
    "completion_token_spans",
    "spans_after",
    "normalise_spans",
]


class Segmenter:
    """Base class: subclasses are frozen dataclasses whose fields are their parameters."""

    name: str = ""
    uses_tokens: ClassVar[bool] = False
    """True when :meth:`split` needs ``token_spans`` (then :func:`segment_trace` needs a tokenizer)."""

    def split(self, completion: str, *, token_spans: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
        """Chunk spans covering ``completion``; ``token_spans`` are the completion's tokens as character spans."""
        raise NotImplementedError

    def params(self) -> dict:
        """The parameters as JSON values (tuples become lists, so a saved trace compares equal on reload)."""
        raw = asdict(self) if hasattr(self, "__dataclass_fields__") else {}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}

    def describe(self) -> dict:
        """``{"name": ..., **params}``: what is recorded with the data."""
        return {"name": self.name, **self.params()}


_SPACE = re.compile(r"\s*")


def normalise_spans(text: str, cuts: list[int]) -> list[tuple[int, int]]:
    """Spans from cut positions: cover ``text`` fully, fold whitespace-only chunks into their neighbour.

    Whitespace between two steps always belongs to the earlier one: every cut moves forward to the next
    non-whitespace character, so any segmenter (and a ``given`` list of the same steps) owns it the same
    way. :func:`~workbench.traces.align.align_trace` then moves a cut that falls inside a token to the
    token's edge (a GPT-2-style ``ĠNext`` takes its space along to the next step).
    """
    bounds = sorted({_SPACE.match(text, c).end() for c in cuts if 0 < c < len(text)} - {len(text)})
    spans = list(zip([0, *bounds], [*bounds, len(text)], strict=True)) if text else []
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and not text[a:b].strip():
            out[-1] = (out[-1][0], b)  # trailing whitespace belongs to the step before
        elif out and not text[out[-1][0] : out[-1][1]].strip():
            out[-1] = (out[-1][0], b)  # leading whitespace belongs to the step after
        else:
            out.append((a, b))
    return out


def spans_after(text: str, delimiter: re.Pattern[str]) -> list[tuple[int, int]]:
    """Cut after every match of ``delimiter`` (the delimiter stays with the step it ends)."""
    return normalise_spans(text, [m.end() for m in delimiter.finditer(text)])


@dataclass(frozen=True, kw_only=True)
class NewlineSegmenter(Segmenter):
    """One step per line (the toy task, GSM8K style); optionally the final line joins the step before."""

    merge_final_line: bool = False
    """Fold the last line (e.g. GSM8K's ``#### 42``) into the previous step."""
    name = "newline"

    def split(self, completion: str, *, token_spans=None) -> list[tuple[int, int]]:
        spans = spans_after(completion, re.compile(r"\n+"))
        if self.merge_final_line and len(spans) > 1:
            spans[-2:] = [(spans[-2][0], spans[-1][1])]
        return spans


@dataclass(frozen=True, kw_only=True)
class DoubleNewlineSegmenter(Segmenter):
    """RISE's segmentation: a step ends at a blank line (``\\n\\n``)."""

    name = "double_newline"

    def split(self, completion: str, *, token_spans=None) -> list[tuple[int, int]]:
        return spans_after(completion, re.compile(r"\n\s*\n"))


_REGISTRY: dict[str, Callable[..., Segmenter]] = {}


def register_segmenter(name: str, factory: Callable[..., Segmenter]) -> None:
    """Make ``get_segmenter(name, **params)`` build ``factory(**params)``."""
    _REGISTRY[name] = factory


def segmenter_names() -> list[str]:
    return sorted(_REGISTRY)


def get_segmenter(name: str | Segmenter | dict, **params) -> Segmenter:
    """A segmenter by name (or a recorded ``{"name": ..., **params}`` dict); unknown names list the valid ones."""
    if isinstance(name, Segmenter):
        return replace(name, **params) if params else name
    if isinstance(name, dict):
        params = {**{k: v for k, v in name.items() if k != "name"}, **params}
        name = name.get("name", "")
    if name not in _REGISTRY:
        raise ValueError(f"segmenter={name!r} is unknown; choose one of {segmenter_names()}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as e:
        raise ValueError(f"segmenter={name!r}: bad parameters {params}: {e}") from e


def completion_token_spans(offsets: Sequence[tuple[int, int]], prompt_len: int) -> list[tuple[int, int]]:
    """Token character spans of ``prompt + completion`` re-expressed in the completion (prompt tokens dropped).

    A token straddling the prompt/completion border is clipped to its completion part.
    """
    return [(max(a, prompt_len) - prompt_len, b - prompt_len) for a, b in offsets if b > prompt_len]


def segment_trace(
    trace: Trace, segmenter: str | Segmenter | dict = "newline", *, tokenizer=None, n_ctx: int | None = None, **params
) -> Trace:
    """Cut ``trace.completion`` into steps; with a ``tokenizer``, also align them to tokens.

    Raises ``ValueError`` naming the field for an empty completion, an unknown segmenter name, bad
    parameters, or a token-reading segmenter without a tokenizer.
    """
    seg = get_segmenter(segmenter, **params)
    if not trace.completion.strip():
        raise ValueError(f"Trace {trace.trace_id}: completion is empty; there is nothing to segment")
    if seg.uses_tokens and tokenizer is None:
        raise ValueError(f"tokenizer: segmenter={seg.name!r} reads token boundaries; pass tokenizer=")
    offsets = token_offsets(tokenizer, trace.text) if tokenizer is not None else None
    spans_tok = completion_token_spans(offsets, len(trace.prompt)) if seg.uses_tokens else None
    steps = []
    for i, (a, b) in enumerate(seg.split(trace.completion, token_spans=spans_tok)):
        steps.append(Step(index=i, text=trace.completion[a:b].strip(), char_start=a, char_end=b))
    out = replace(trace, steps=tuple(steps), segmenter=seg.describe())
    return align_trace(out, tokenizer, n_ctx=n_ctx, offsets=offsets) if tokenizer is not None else out


register_segmenter("newline", NewlineSegmenter)
register_segmenter("double_newline", DoubleNewlineSegmenter)
