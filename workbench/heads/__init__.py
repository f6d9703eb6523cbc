"""Uncertainty heads: small transformers on a frozen model's token features that score each step's wrongness.

- :mod:`~workbench.heads.model`: :class:`HeadConfig` and :class:`UncertaintyHead` (UHeads, arXiv 2511.06209);
- :mod:`~workbench.heads.data`: traces of a step store as token sequences with step membership and labels;
- :mod:`~workbench.heads.train`: training with early stopping and resume, saving, loading, scoring;
- :mod:`~workbench.heads.live`: scoring steps during generation from hooks on the generating forward passes.
"""

from workbench.heads.data import TraceSequence, load_sequences
from workbench.heads.model import MAX_PARAMS, HeadConfig, UncertaintyHead
from workbench.heads.train import (
    HeadTrainConfig,
    HeadTrainResult,
    load_head,
    score_sequences,
    score_steps,
    train_head,
    train_on_sequences,
)

__all__ = [
    "HeadConfig",
    "UncertaintyHead",
    "MAX_PARAMS",
    "TraceSequence",
    "load_sequences",
    "HeadTrainConfig",
    "HeadTrainResult",
    "train_head",
    "train_on_sequences",
    "load_head",
    "score_sequences",
    "score_steps",
]
