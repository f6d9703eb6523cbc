"""Capture: one forward pass per batch turns traces into pooled step vectors in a step-activation store.

:func:`capture` is the entry point (the CLI's ``workbench capture`` calls it); :func:`step_activations`
runs the same loop and returns the step vectors in memory instead; :class:`CaptureConfig` says what to
record. The hot path runs the unwrapped model with plain hooks (:mod:`.record`); the
reference implementation it is checked against lives in :mod:`.reference`.
"""

from workbench.capture.config import POOLINGS, CaptureConfig, TokenFeatureConfig
from workbench.capture.engine import CaptureResult, capture, key_specs
from workbench.capture.logits import STEP_STATS
from workbench.capture.memory import StepActivations, step_activations
from workbench.capture.plan import BEYOND_CONTEXT, CAPTURED, NO_TOKENS

__all__ = [
    "capture",
    "step_activations",
    "StepActivations",
    "CaptureConfig",
    "TokenFeatureConfig",
    "CaptureResult",
    "POOLINGS",
    "STEP_STATS",
    "CAPTURED",
    "BEYOND_CONTEXT",
    "NO_TOKENS",
    "key_specs",
]
