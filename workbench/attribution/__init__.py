"""Attribution: which steps matter and which steps depend on which (Thought Anchors, arXiv 2506.19143).

Three families of methods, each a pure function of a model and traces returning named step×step results
and tidy long-format DataFrames:

- :mod:`~workbench.attribution.attention`: step attention matrices per layer and head;
- :mod:`~workbench.attribution.receivers`: receiver heads (vertical scores, kurtosis) and receiver scores;
- :mod:`~workbench.attribution.suppression`: the causal matrix from masking attention to one step at a time;
- :mod:`~workbench.attribution.resampling`: counterfactual importance from rollouts that resample a step;
- :mod:`~workbench.attribution.evaluate`: scoring any of them against the toy task's true dependencies
  (:func:`workbench.labels.dependency_labels`).
"""

from workbench.attribution.attention import AttentionConfig, StepAttention, attention_frame, step_attention
from workbench.attribution.evaluate import BASELINES, auc_table, dependency_pairs, per_query
from workbench.attribution.layout import PROMPT_STEP, TraceTokens, trace_tokens
from workbench.attribution.masks import causal_mask, eager_attention
from workbench.attribution.receivers import head_kurtosis, receiver_scores, top_heads, vertical_scores
from workbench.attribution.resampling import (
    HiddenStateSimilarity,
    ResamplingConfig,
    StepSimilarity,
    ToySimilarity,
    answer_kl,
    resampling_importance,
)
from workbench.attribution.suppression import (
    StepSuppression,
    SuppressionConfig,
    masked_logits,
    step_suppression,
    suppression_frame,
)

__all__ = [
    "PROMPT_STEP",
    "TraceTokens",
    "trace_tokens",
    "eager_attention",
    "causal_mask",
    "AttentionConfig",
    "StepAttention",
    "step_attention",
    "attention_frame",
    "SuppressionConfig",
    "StepSuppression",
    "step_suppression",
    "masked_logits",
    "suppression_frame",
    "vertical_scores",
    "head_kurtosis",
    "top_heads",
    "receiver_scores",
    "ResamplingConfig",
    "StepSimilarity",
    "ToySimilarity",
    "HiddenStateSimilarity",
    "resampling_importance",
    "answer_kl",
    "dependency_pairs",
    "auc_table",
    "per_query",
    "BASELINES",
]
