"""Labels: every way a step gets a label, all joined by (trace id, step index).

Each source is one module and returns the same table (:data:`~workbench.labels.table.StepLabels`), or, for
importers of already-labelled data, traces whose steps carry labels:

- :mod:`~workbench.labels.checker`: the toy task's checker (ground truth: kind, correct, logical,
  first_error, prefix_correct, viable) and toy traces labelled by it;
- :mod:`~workbench.labels.dependencies`: which earlier steps each toy step reads (depends_on,
  on_answer_path) — the ground truth of step attribution;
- :mod:`~workbench.labels.keywords`: reflection / backtracking / verification by word lists;
- :mod:`~workbench.labels.rollouts`: Math-Shepherd-style soft labels from rollouts after each step;
- :mod:`~workbench.labels.potential`: SPAE's forced-answer step potential Φ;
- :mod:`~workbench.labels.judge`: a step judge (a local model, or the checker behind the same interface);
- :mod:`~workbench.labels.importers`: ProcessBench, rated steps, plain completions;
- :mod:`~workbench.labels.agreement`: how well a label source agrees with ground truth.
"""

from workbench.labels.agreement import (
    PotentialTrend,
    RolloutAgreement,
    potential_trend,
    roc_auc,
    rollout_agreement,
)
from workbench.labels.answers import TOY_ANSWER, AnswerFormat
from workbench.labels.checker import (
    checker_labels,
    generate_toy_traces,
    label_with_checker,
    trace_from_text,
    traces_from_samples,
)
from workbench.labels.dependencies import DEPENDENCY_LABELS, StepDependency, dependency_labels, step_dependencies
from workbench.labels.importers import import_completions, import_processbench, import_rated_steps
from workbench.labels.judge import CheckerJudge, JudgeRequest, JudgeVerdict, LocalModelJudge, StepJudge, judge_labels
from workbench.labels.keywords import KeywordConfig, keyword_labels
from workbench.labels.potential import PotentialConfig, forced_answer_labels, step_potential
from workbench.labels.rollouts import RolloutConfig, rollout_labels
from workbench.labels.table import StepKey, StepLabels, join_labels, labels_frame, labels_of

__all__ = [
    "StepKey",
    "StepLabels",
    "join_labels",
    "labels_frame",
    "labels_of",
    "label_with_checker",
    "trace_from_text",
    "traces_from_samples",
    "generate_toy_traces",
    "checker_labels",
    "StepDependency",
    "step_dependencies",
    "dependency_labels",
    "DEPENDENCY_LABELS",
    "KeywordConfig",
    "keyword_labels",
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
    "AnswerFormat",
    "TOY_ANSWER",
    "roc_auc",
    "RolloutAgreement",
    "rollout_agreement",
    "PotentialTrend",
    "potential_trend",
]
