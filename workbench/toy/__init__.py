"""The synthetic reasoning task, its checker, and training of the embedded model."""

from workbench.toy.checker import STEP_KINDS, StepLabel, TraceLabels, check_trace, parse_prompt
from workbench.toy.task import Problem, Sample, Statement, TaskConfig, generate_problem, generate_samples

__all__ = [
    "TaskConfig",
    "Problem",
    "Sample",
    "Statement",
    "generate_problem",
    "generate_samples",
    "check_trace",
    "parse_prompt",
    "StepLabel",
    "TraceLabels",
    "STEP_KINDS",
]
