"""Traces and steps: types, segmenters, token alignment, generation with step tracking, and label sources."""

from workbench.traces.align import align_trace, token_offsets
from workbench.traces.segment import get_segmenter, register_segmenter, segment_trace, segmenter_names
from workbench.traces.toy import label_with_checker, trace_from_text, traces_from_samples
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
    "label_with_checker",
    "trace_from_text",
    "traces_from_samples",
]
