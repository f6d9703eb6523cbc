"""Traces and steps: types, segmenters, token alignment, generation with step tracking, and label sources.

Importing the package registers every segmenter (:mod:`workbench.traces.segmenters`).
"""

from workbench.traces import segmenters as _segmenters  # noqa: F401  (registers the segmenters)
from workbench.traces.align import align_trace, token_offsets
from workbench.traces.answers import TOY_ANSWER, AnswerFormat
from workbench.traces.evaluate import PotentialTrend, RolloutAgreement, potential_trend, roc_auc, rollout_agreement
from workbench.traces.generate import Completion, GenerationConfig, generate_traces, sample_completions
from workbench.traces.importers import import_completions, import_processbench, import_rated_steps
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
from workbench.traces.judge import CheckerJudge, JudgeRequest, JudgeVerdict, LocalModelJudge, StepJudge, judge_labels
from workbench.traces.labels import (
    KeywordConfig,
    StepKey,
    StepLabels,
    checker_labels,
    join_labels,
    keyword_labels,
    labels_frame,
    labels_of,
)
from workbench.traces.potential import PotentialConfig, forced_answer_labels, step_potential
from workbench.traces.rollouts import RolloutConfig, rollout_labels
from workbench.traces.segment import get_segmenter, register_segmenter, segment_trace, segmenter_names
from workbench.traces.toy import generate_toy_traces, label_with_checker, trace_from_text, traces_from_samples
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
    "generate_toy_traces",
    "GenerationConfig",
    "Completion",
    "sample_completions",
    "generate_traces",
    "AnswerFormat",
    "TOY_ANSWER",
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
    "StepKey",
    "StepLabels",
    "join_labels",
    "labels_frame",
    "labels_of",
    "KeywordConfig",
    "keyword_labels",
    "checker_labels",
    "RolloutConfig",
    "rollout_labels",
    "PotentialConfig",
    "forced_answer_labels",
    "step_potential",
    "import_completions",
    "import_processbench",
    "import_rated_steps",
    "StepJudge",
    "JudgeRequest",
    "JudgeVerdict",
    "LocalModelJudge",
    "CheckerJudge",
    "judge_labels",
    "roc_auc",
    "RolloutAgreement",
    "rollout_agreement",
    "PotentialTrend",
    "potential_trend",
]
