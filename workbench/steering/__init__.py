"""Steering: vectors and scoped interventions on the hot path; sweeps with controls; confidence vectors.

- :mod:`~workbench.steering.vectors`: :class:`SteeringVector` (hook, norm convention, provenance; saved
  as ``cfg.json`` + ``vector.safetensors``) and the equal-norm random control;
- :mod:`~workbench.steering.sources`: vectors from a difference of means between two groups of store
  steps, an SAE decoder column, a RISE behaviour vector, a probe's weight;
- :mod:`~workbench.steering.interventions`: additive, projection and SAE-latent clamp edits at every
  token, at step boundaries (found live with the segmenter) or from a token on, composable, working in
  KV-cached batched generation; :func:`steer` is scoped (``with`` or ``.remove()``);
- :mod:`~workbench.steering.sweep`: alpha grid x problems x seeds on the toy task, checker- and
  keyword-labelled, one tidy row per trace, with a random control; bootstrap summaries over problems;
- :mod:`~workbench.steering.confidence`: RISE's confidence-vector search over SAE decoder columns.
"""

from workbench.steering.interventions import Additive, Clamp, Intervention, Projection, SteeringHandle, steer
from workbench.steering.positions import POSITION_KINDS, Positions, TokenTracker
from workbench.steering.saefile import SaeWeights, as_sae_weights, load_sae_weights
from workbench.steering.sources import (
    behaviour_vector,
    diff_of_means,
    mean_activation_norm,
    probe_vector,
    sae_latent_vector,
    select_steps,
    with_neighbour_kinds,
)
from workbench.steering.vectors import NORMS, SteeringError, SteeringVector, load_vector, random_like

__all__ = [
    "SteeringVector",
    "SteeringError",
    "NORMS",
    "load_vector",
    "random_like",
    "SaeWeights",
    "load_sae_weights",
    "as_sae_weights",
    "diff_of_means",
    "mean_activation_norm",
    "sae_latent_vector",
    "behaviour_vector",
    "probe_vector",
    "select_steps",
    "with_neighbour_kinds",
    "Positions",
    "POSITION_KINDS",
    "TokenTracker",
    "Additive",
    "Projection",
    "Clamp",
    "Intervention",
    "SteeringHandle",
    "steer",
]
