"""Importing traces made elsewhere: an inference server's JSONL, ProcessBench, per-step rated data.

Generation dominates the cost of step-level research, so completions often come from a server (vLLM,
SGLang) rather than :mod:`workbench.traces.generate`. Imports are lossless: prompt and completion are kept
character for character, a given step list is validated against the completion (``given`` segmenter), and
every field of the record that is not consumed stays in ``trace.meta``. Field names are configurable and
may be dotted paths into nested objects (``choices.0.text``); a record whose fields are nested keeps the
whole record in ``meta``.

Formats:

- completions: ``{"prompt", "completion", "steps"?: [str], ...}`` (one trace per line);
- ProcessBench: ``{"id", "problem", "steps": [str], "label": earliest wrong step or -1,
  "final_answer_correct", "generator"}``; step labels ``first_error`` and ``correct`` (True before the
  earliest error, False at it, None after: ProcessBench does not judge later steps);
- per-step rated data: ``{"problem", "steps": [str], "ratings": [number|bool]}`` or steps as objects
  ``{"text", "rating"}``; labels ``rating`` and ``correct`` (rating > 0, or the bool itself).

Errors (missing field, wrong type, empty completion, a step list that does not match, non-UTF-8 bytes)
raise :class:`~workbench.traces.io.TraceFormatError` naming the file, the line and the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.traces.io import TraceFormatError, read_jsonl_records
from workbench.traces.segment import segment_trace
from workbench.traces.types import Trace

__all__ = ["import_completions", "import_processbench", "import_rated_steps", "get_field"]

_MISSING = object()


def get_field(record: dict, path: str, default: Any = _MISSING) -> Any:
    """``record[path]`` where ``path`` may be dotted (``choices.0.text``); KeyError names the path."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif default is not _MISSING:
            return default
        else:
            raise KeyError(path)
    return value


def _field(record: dict, path: str, kind: type | tuple, where: str, *, optional: bool = False) -> Any:
    try:
        value = get_field(record, path)
    except KeyError:
        if optional:
            return None
        raise TraceFormatError(f"{where}: field {path!r} is missing (keys: {sorted(record)})") from None
    if value is None and optional:
        return None  # JSON null counts as absent for optional fields
    if not isinstance(value, kind):
        raise TraceFormatError(f"{where}: field {path!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def _rest(record: dict, consumed: list[str]) -> dict:
    """The record without its consumed top-level fields (nested paths consume nothing)."""
    return {k: v for k, v in record.items() if k not in consumed}


def _segment(trace: Trace, steps: list[str] | None, where: str, steps_field: str, segmenter, tokenizer, n_ctx):
    """Segment by the given steps (validated) or by ``segmenter``; errors name the file, line and field."""
    try:
        if steps is not None:
            return segment_trace(trace, "given", steps=steps, field_name=steps_field, tokenizer=tokenizer, n_ctx=n_ctx)
        return segment_trace(trace, segmenter, tokenizer=tokenizer, n_ctx=n_ctx)
    except ValueError as e:
        raise TraceFormatError(f"{where}: {e}") from e


def _records(path: str | os.PathLike, id_field: str) -> Iterator[tuple[str, str, dict]]:
    """``(where, trace id, record)`` per line; ids default to ``<file stem>:<line>`` and must be unique."""
    seen: set[str] = set()
    for lineno, record in read_jsonl_records(path):
        where = f"{path}: line {lineno}"
        raw_id = get_field(record, id_field, None)
        trace_id = str(raw_id) if raw_id is not None else f"{Path(path).stem}:{lineno}"
        if trace_id in seen:
            raise TraceFormatError(
                f"{where}: field {id_field!r}={trace_id!r} repeats an earlier line; ids must be unique"
            )
        seen.add(trace_id)
        yield where, trace_id, record


def import_completions(
    path: str | os.PathLike,
    *,
    prompt_field: str = "prompt",
    completion_field: str = "completion",
    steps_field: str = "steps",
    id_field: str = "id",
    problem_id_field: str | None = None,
    gold_field: str | None = None,
    segmenter: str | dict = "double_newline",
    tokenizer=None,
    n_ctx: int | None = None,
) -> list[Trace]:
    """Traces from a JSONL of prompts and completions (e.g. a vLLM server's output), steps optional."""
    traces = []
    for where, trace_id, record in _records(path, id_field):
        prompt = _field(record, prompt_field, str, where)
        completion = _field(record, completion_field, str, where)
        steps = _field(record, steps_field, list, where, optional=True)
        gold = _field(record, gold_field, (str, int, float), where) if gold_field else None
        problem_id = str(_field(record, problem_id_field, (str, int), where)) if problem_id_field else trace_id
        if not completion.strip():
            raise TraceFormatError(f"{where}: field {completion_field!r} is empty; there is nothing to segment")
        trace = Trace(
            trace_id=trace_id,
            problem_id=problem_id,
            prompt=prompt,
            completion=completion,
            gold_answer=None if gold is None else str(gold),
            generation={"source": "import"},
            meta=_rest(record, [prompt_field, completion_field, steps_field]),
        )
        traces.append(_segment(trace, steps, where, steps_field, segmenter, tokenizer, n_ctx))
    return traces


def _stepwise(
    path: str | os.PathLike,
    *,
    problem_field: str,
    steps_field: str,
    id_field: str,
    separator: str,
    prompt_template: str,
    tokenizer,
    n_ctx: int | None,
    label_steps: Callable[[dict, list, str], tuple[list[str], list[dict], dict]],
) -> list[Trace]:
    """Shared body of the step-list importers: completion = steps joined by ``separator``, labels per step."""
    traces = []
    for where, trace_id, record in _records(path, id_field):
        problem = _field(record, problem_field, str, where)
        raw_steps = _field(record, steps_field, list, where)
        texts, labels, fields = label_steps(record, raw_steps, where)
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise TraceFormatError(f"{where}: field '{steps_field}[{i}]' must be a non-empty string")
        meta = _rest(record, [problem_field, steps_field]) | {"prompt_template": prompt_template}
        trace = Trace(
            trace_id=trace_id,
            problem_id=trace_id,
            prompt=prompt_template.format(problem=problem),
            completion=separator.join(texts),
            generation={"source": "import"},
            meta=meta | {"problem": problem},
            **fields,
        )
        trace = _segment(trace, texts, where, steps_field, None, tokenizer, n_ctx)
        traces.append(trace.with_steps([s.with_labels(**lab) for s, lab in zip(trace.steps, labels, strict=True)]))
    return traces


def import_processbench(
    path: str | os.PathLike,
    *,
    separator: str = "\n\n",
    prompt_template: str = "{problem}\n\n",
    tokenizer=None,
    n_ctx: int | None = None,
) -> list[Trace]:
    """ProcessBench-format JSONL: steps, and ``label`` = index of the earliest wrong step (−1: none)."""

    def labels(record: dict, steps: list, where: str):
        label = _field(record, "label", int, where)
        if not -1 <= label < len(steps):
            raise TraceFormatError(f"{where}: field 'label'={label} is outside [-1, {len(steps) - 1}]")
        per_step = []
        for i in range(len(steps)):
            correct = True if label == -1 or i < label else (False if i == label else None)
            per_step.append({"first_error": i == label, "correct": correct})
        final = _field(record, "final_answer_correct", bool, where, optional=True)
        return steps, per_step, {"answer_correct": final}

    return _stepwise(
        path,
        problem_field="problem",
        steps_field="steps",
        id_field="id",
        separator=separator,
        prompt_template=prompt_template,
        tokenizer=tokenizer,
        n_ctx=n_ctx,
        label_steps=labels,
    )


def import_rated_steps(
    path: str | os.PathLike,
    *,
    problem_field: str = "problem",
    steps_field: str = "steps",
    ratings_field: str = "ratings",
    text_key: str = "text",
    rating_key: str = "rating",
    id_field: str = "id",
    separator: str = "\n\n",
    prompt_template: str = "{problem}\n\n",
    tokenizer=None,
    n_ctx: int | None = None,
) -> list[Trace]:
    """Per-step rated data: steps with one rating each (parallel list, or step objects with a rating)."""

    def labels(record: dict, steps: list, where: str):
        if steps and all(isinstance(s, dict) for s in steps):
            texts = [_field(s, text_key, str, f"{where}: {steps_field}[{i}]") for i, s in enumerate(steps)]
            ratings = [s.get(rating_key) for s in steps]
        else:
            texts, ratings = steps, _field(record, ratings_field, list, where)
            if len(ratings) != len(texts):
                raise TraceFormatError(
                    f"{where}: field {ratings_field!r} has {len(ratings)} ratings for {len(texts)} steps"
                )
        per_step = []
        for i, r in enumerate(ratings):
            if r is not None and not isinstance(r, (bool, int, float)):
                raise TraceFormatError(f"{where}: rating of step {i} must be a number or bool, got {type(r).__name__}")
            per_step.append({"rating": r, "correct": None if r is None else (r if isinstance(r, bool) else r > 0)})
        return texts, per_step, {}

    return _stepwise(
        path,
        problem_field=problem_field,
        steps_field=steps_field,
        id_field=id_field,
        separator=separator,
        prompt_template=prompt_template,
        tokenizer=tokenizer,
        n_ctx=n_ctx,
        label_steps=labels,
    )
