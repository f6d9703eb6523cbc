"""Trace files: lossless JSONL and Parquet round trips, and a tidy one-row-per-step DataFrame.

JSONL holds one trace per line as the dataclass fields (``steps`` a list of step objects). Parquet holds one
row per trace with ``steps`` as a list of structs; the free-form dicts (``labels``, ``generation``, ``model``,
``segmenter``, ``meta``) are stored as JSON text so that any JSON value survives (Parquet would otherwise
force one schema on every label). Round trips are exact for JSON-native values; anything else (tuples,
sets, non-string dict keys) is refused when saving, naming the field, instead of coming back changed.
NumPy scalars are converted to Python numbers.

Reading JSONL decodes strictly as UTF-8: invalid bytes raise :class:`TraceFormatError` naming the file,
the line and the field that holds them. Every write is atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.atomic import atomic_path, atomic_write_bytes  # atomic_write_bytes: re-exported
from workbench.traces.types import Step, Trace

__all__ = [
    "TraceFormatError",
    "trace_to_dict",
    "trace_from_dict",
    "save_jsonl",
    "load_jsonl",
    "save_parquet",
    "load_parquet",
    "save_traces",
    "load_traces",
    "read_jsonl_records",
    "to_dataframe",
    "atomic_write_bytes",
]

FORMAT = "workbench.traces/1"
_DICT_FIELDS = ("generation", "model", "segmenter", "meta")


class TraceFormatError(ValueError):
    """A trace file (or record) cannot be read as traces; the message names the file, line and field."""


# ---- plain dicts ------------------------------------------------------------------------------------


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON-native Python, or TypeError naming ``where`` (a tuple would come back as a list)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string; JSON keys must be strings")
        return {k: _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalars
        return value.item()
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON value (use lists, dicts, str, numbers, bool)")


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """JSON-ready dict of every field of ``trace`` (steps included)."""
    out = {f.name: getattr(trace, f.name) for f in dataclasses.fields(Trace) if f.name != "steps"}
    for name in _DICT_FIELDS:
        out[name] = _jsonable(out[name], f"Trace {trace.trace_id}: {name}")
    out["steps"] = []
    for step in trace.steps:
        d = {f.name: getattr(step, f.name) for f in dataclasses.fields(Step)}
        d["labels"] = _jsonable(step.labels, f"Trace {trace.trace_id}: steps[{step.index}].labels")
        out["steps"].append(d)
    return out


def _known(cls, record: dict, where: str) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise TraceFormatError(f"{where}: unknown field(s) {unknown}; a {cls.__name__} has {sorted(names)}")


# JSON type of every field ("?" allows null): a wrong type is named by its path, e.g. steps[0].char_end.
_FIELD_TYPES = {
    Step: {"index": "int", "text": "str", "char_start": "int", "char_end": "int", "kind": "str",
           "token_start": "int?", "token_end": "int?", "boundary_token": "int?", "beyond_context": "bool",
           "labels": "dict"},
    Trace: {"trace_id": "str", "problem_id": "str", "prompt": "str", "completion": "str", "answer": "str?",
            "answer_correct": "bool?", "gold_answer": "str?", "generation": "dict", "model": "dict",
            "segmenter": "dict", "meta": "dict", "steps": "list?"},
}  # fmt: skip
_PY_TYPES = {"int": numbers.Integral, "str": str, "bool": bool, "dict": dict, "list": (list, tuple)}


def _check_types(cls, record: dict, where: str, prefix: str = "") -> None:
    for name, want in _FIELD_TYPES[cls].items():
        value = record.get(name)
        kind = want.rstrip("?")
        if name not in record or (value is None and want.endswith("?")):
            continue
        if not isinstance(value, _PY_TYPES[kind]) or (kind == "int" and isinstance(value, bool)):
            article = "an" if kind == "int" else "a"
            raise TraceFormatError(
                f"{where}: {prefix}{name} must be {article} {kind}{' or null' if want.endswith('?') else ''}, "
                f"got {type(value).__name__} {_short_repr(value)}"
            )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def trace_from_dict(record: dict[str, Any], *, where: str = "record") -> Trace:
    """Rebuild a :class:`Trace` from :func:`trace_to_dict` output; bad fields raise naming the field."""
    if not isinstance(record, dict):
        raise TraceFormatError(f"{where}: a trace must be a JSON object, got {type(record).__name__}")
    _known(Trace, record, where)
    _check_types(Trace, record, where)
    steps_raw = record.get("steps") or []
    steps = []
    for i, s in enumerate(steps_raw):
        if not isinstance(s, dict):
            raise TraceFormatError(f"{where}: steps[{i}] must be an object, got {type(s).__name__}")
        _known(Step, s, f"{where}: steps[{i}]")
        _check_types(Step, s, where, f"steps[{i}].")
        try:
            steps.append(Step(**s))
        except (TypeError, ValueError) as e:
            raise TraceFormatError(f"{where}: steps[{i}]: {e}") from e
    try:
        return Trace(**{**record, "steps": tuple(steps)})
    except (TypeError, ValueError) as e:
        raise TraceFormatError(f"{where}: {e}") from e


# ---- JSONL ------------------------------------------------------------------------------------------


def save_jsonl(traces: Iterable[Trace], path: str | os.PathLike) -> Path:
    """One trace per line (UTF-8, non-ASCII kept as is), written atomically."""
    lines = [json.dumps(trace_to_dict(t), ensure_ascii=False) for t in traces]
    return atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def _surrogate_field(value: Any, where: str) -> str | None:
    """The path of the first string in ``value`` holding undecodable bytes (``surrogateescape``)."""
    if isinstance(value, str):
        return where if any("\udc80" <= c <= "\udcff" for c in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        if isinstance(k, str) and _surrogate_field(k, where) is not None:
            return f"{where} (a key)"
        found = _surrogate_field(v, f"{where}.{k}" if isinstance(k, str) else f"{where}[{k}]")
        if found:
            return found
    return None


def read_jsonl_records(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; strict UTF-8 and JSON, errors name line and field."""
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                text = raw.decode("utf-8", errors="surrogateescape")
                try:
                    field = _surrogate_field(json.loads(text), "") or "?"
                except json.JSONDecodeError:
                    field = "?"
                raise TraceFormatError(
                    f"{path}: line {lineno}: field {field.lstrip('.')!r} holds bytes that are not valid UTF-8 "
                    f"({raw[e.start : e.end]!r} at byte {e.start}); re-encode the file as UTF-8"
                ) from e
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise TraceFormatError(f"{path}: line {lineno} is not valid JSON: {e}") from e
            if not isinstance(record, dict):
                raise TraceFormatError(f"{path}: line {lineno} must be a JSON object, got {type(record).__name__}")
            yield lineno, record


def load_jsonl(path: str | os.PathLike) -> list[Trace]:
    """Traces saved by :func:`save_jsonl`."""
    return [trace_from_dict(r, where=f"{path}: line {n}") for n, r in read_jsonl_records(path)]


# ---- Parquet ----------------------------------------------------------------------------------------

_STEP_TYPE = pa.struct(
    [
        ("index", pa.int64()),
        ("text", pa.string()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("kind", pa.string()),
        ("token_start", pa.int64()),
        ("token_end", pa.int64()),
        ("boundary_token", pa.int64()),
        ("beyond_context", pa.bool_()),
        ("labels", pa.string()),
    ]
)
_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("problem_id", pa.string()),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("steps", pa.list_(_STEP_TYPE)),
        ("answer", pa.string()),
        ("answer_correct", pa.bool_()),
        ("gold_answer", pa.string()),
        *[(name, pa.string()) for name in _DICT_FIELDS],
    ],
    metadata={"workbench.format": FORMAT},
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def save_parquet(traces: Iterable[Trace], path: str | os.PathLike) -> Path:
    """One row per trace; dict fields as JSON text. Written to a temporary file, then ``os.replace``."""
    rows = []
    for t in traces:
        d = trace_to_dict(t)
        for name in _DICT_FIELDS:
            d[name] = _dumps(d[name])
        d["steps"] = [{**s, "labels": _dumps(s["labels"])} for s in d["steps"]]
        rows.append(d)
    table = pa.Table.from_pylist(rows, schema=_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def load_parquet(path: str | os.PathLike) -> list[Trace]:
    """Traces saved by :func:`save_parquet`."""
    table = pq.read_table(path)
    fmt = (table.schema.metadata or {}).get(b"workbench.format", b"").decode()
    if fmt != FORMAT:
        raise TraceFormatError(f"{path}: not a workbench traces file (format {fmt!r}, expected {FORMAT!r})")
    out = []
    for i, row in enumerate(table.to_pylist()):
        for name in _DICT_FIELDS:
            row[name] = json.loads(row[name])
        row["steps"] = [{**s, "labels": json.loads(s["labels"])} for s in row["steps"]]
        out.append(trace_from_dict(row, where=f"{path}: row {i}"))
    return out


def save_traces(traces: Iterable[Trace], path: str | os.PathLike) -> Path:
    """Save by suffix: ``.jsonl`` or ``.parquet``."""
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return save_jsonl(traces, path)
    if suffix == ".parquet":
        return save_parquet(traces, path)
    raise ValueError(f"path={str(path)!r}: use a .jsonl or .parquet suffix")


def load_traces(path: str | os.PathLike) -> list[Trace]:
    """Load by suffix: ``.jsonl`` or ``.parquet``."""
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return load_jsonl(path)
    if suffix == ".parquet":
        return load_parquet(path)
    raise ValueError(f"path={str(path)!r}: use a .jsonl or .parquet suffix")


# ---- DataFrame --------------------------------------------------------------------------------------

_STEP_COLUMNS = (
    "trace_id",
    "problem_id",
    "step_index",
    "n_steps",
    "text",
    "kind",
    "char_start",
    "char_end",
    "token_start",
    "token_end",
    "boundary_token",
    "beyond_context",
    "answer",
    "answer_correct",
    "gold_answer",
)


def to_dataframe(traces: Sequence[Trace]):
    """One row per step: trace and step fields, then one ``label_<name>`` column per label name.

    The same column names as a step store's index (``label_correct``, ``label_kind``, ...; see
    ``docs/labels.md``), so frames from traces and from stores join and feed the same probes and charts.
    Steps without a label get NA.
    """
    import pandas as pd

    rows = []
    for t in traces:
        for s in t.steps:
            row = {
                "trace_id": t.trace_id,
                "problem_id": t.problem_id,
                "step_index": s.index,
                "n_steps": len(t.steps),
                "text": s.text,
                "kind": s.kind,
                "char_start": s.char_start,
                "char_end": s.char_end,
                "token_start": s.token_start,
                "token_end": s.token_end,
                "boundary_token": s.boundary_token,
                "beyond_context": s.beyond_context,
                "answer": t.answer,
                "answer_correct": t.answer_correct,
                "gold_answer": t.gold_answer,
            }
            for k, v in s.labels.items():
                row[f"label_{k}"] = v
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(_STEP_COLUMNS))
