"""Traces and steps: what a trace *is* — types, IO, segmentation, token alignment, and generation.

How steps get labels (the checker, keywords, rollouts, forced-answer potential, judges, importers) lives
one layer up, in :mod:`workbench.labels`. Importing the package registers every segmenter
(:mod:`workbench.traces.segmenters`).
"""

from workbench.traces import segmenters as _segmenters  # noqa: F401  (registers the segmenters)
from workbench.traces.align import align_trace, token_offsets
from workbench.traces.generate import Completion, GenerationConfig, generate_traces, sample_completions
from workbench.traces.io import (
    TraceFormatError,
    load_jsonl,
    load_parquet,
    load_traces,
    save_jsonl,
    save_parquet,
    save_traces,
    to_dataframe,
    trace_from_dict,
    trace_to_dict,
)
from workbench.traces.segment import get_segmenter, register_segmenter, segment_trace, segmenter_names
from workbench.traces.types import Step, Trace

__all__ = [
    "Step",
    "Trace",
    "align_trace",
    "token_offsets",
    "get_segmenter",
    "register_segmenter",
    "segment_trace",
    "segmenter_names",
    "GenerationConfig",
    "Completion",
    "sample_completions",
    "generate_traces",
    "TraceFormatError",
    "trace_to_dict",
    "trace_from_dict",
    "save_jsonl",
    "load_jsonl",
    "save_parquet",
    "load_parquet",
    "save_traces",
    "load_traces",
    "to_dataframe",
]
