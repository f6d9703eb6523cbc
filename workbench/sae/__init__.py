"""Step-level sparse autoencoders: plain SAEs through sae-lens (RISE), the context-conditioned SSAE, and
the analysis that reads what their latents mean.

- :func:`train_sae` / :func:`train_layers`: ReLU + L1, TopK, BatchTopK or JumpReLU SAEs on step vectors
  from a store, with our metrics, checkpoints and resume; saved in sae-lens's format (:mod:`.saelens` is
  the only module importing sae-lens).
- :func:`train_ssae`: SSAE, activation-space variant (encoder and decoder see a context vector).
- :mod:`.analysis`: encodings of store rows, top steps per latent, AUROC per latent, behaviour
  association and vectors, decoder geometry, activation frequencies (tidy DataFrames).
"""

from workbench.sae.analysis import (
    BehaviourVectors,
    FeatureActivations,
    activation_frequency,
    behaviour_association,
    behaviour_silhouette,
    behaviour_vectors,
    decoder_map,
    encode_store,
    evaluate_sae,
    frequency_histogram,
    latent_auroc,
    layer_of,
    silhouette_by_layer,
    top_activating,
)
from workbench.sae.config import ARCHITECTURES, CONTEXTS, SPARSITIES, SAETrainConfig, SSAEConfig
from workbench.sae.ssae import ContextSAE, context_vectors, train_ssae
from workbench.sae.train import TrainedSAE, load_sae, train_layers, train_sae

__all__ = [
    "ARCHITECTURES",
    "CONTEXTS",
    "SPARSITIES",
    "SAETrainConfig",
    "SSAEConfig",
    "TrainedSAE",
    "train_sae",
    "train_layers",
    "train_ssae",
    "load_sae",
    "ContextSAE",
    "context_vectors",
    "FeatureActivations",
    "BehaviourVectors",
    "encode_store",
    "evaluate_sae",
    "top_activating",
    "latent_auroc",
    "behaviour_association",
    "behaviour_vectors",
    "decoder_map",
    "behaviour_silhouette",
    "silhouette_by_layer",
    "activation_frequency",
    "frequency_histogram",
    "layer_of",
]
