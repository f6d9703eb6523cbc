"""Configuration of a step-SAE training run: one frozen dataclass, saved beside the weights.

:class:`SAETrainConfig` covers the four sae-lens architectures we train on step vectors (ReLU + L1 with
the RISE defaults, TopK, BatchTopK, JumpReLU); :class:`SSAEConfig` adds the context-conditioned SSAE's
fields. Both are validated on construction, so a bad value fails before anything is read or written, and
both round-trip through JSON (``to_json`` / ``from_json``), which is how a checkpoint proves that a resumed
run has the configuration of the interrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["ARCHITECTURES", "CONTEXTS", "SPARSITIES", "SAETrainConfig", "SSAEConfig"]

#: Plain step-SAE architectures (sae-lens training classes behind them: standard, topk, batchtopk, jumprelu).
ARCHITECTURES = ("relu", "topk", "batchtopk", "jumprelu")
#: SSAE context vectors: the previous step's vector, or the mean of all previous steps of the trace.
CONTEXTS = ("previous", "mean")
#: SSAE sparsity: L1 of the L2-normalised code with an adaptive weight, or TopK.
SPARSITIES = ("adaptive_l1", "topk")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if name in _INTS:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        else:
            ok = isinstance(value, int | float) and math.isfinite(value) and value > 0
        if not ok:
            hint = "an integer >= 1" if name in _INTS else "a finite number > 0"
            raise ValueError(f"{type(obj).__name__}.{name}={value!r}: must be {hint}")


_INTS = {"width", "k", "batch_size", "samples", "metrics_every", "dead_window", "checkpoint_every", "norm_batches"}


@dataclass(frozen=True, kw_only=True)
class SAETrainConfig:
    """One plain step-SAE training run (defaults: RISE's ReLU SAE; see docs/sae.md)."""

    arch: str = "relu"
    """Architecture: ``relu`` (ReLU + L1, RISE), ``topk``, ``batchtopk`` (saved as JumpReLU) or ``jumprelu``."""
    width: int = 2048
    """Number of latents (dictionary size); RISE uses 2048 because behaviours are fewer than words."""
    k: int = 16
    """TopK: active latents per step; BatchTopK: active latents per step on average over a batch."""
    l1_coefficient: float = 2e-3
    """ReLU: weight of the L1 penalty on decoder-norm-weighted activations (RISE's lambda)."""
    l0_coefficient: float = 1e-3
    """JumpReLU: weight of the (straight-through) L0 penalty."""
    jumprelu_threshold: float = 0.01
    """JumpReLU: initial threshold of every latent."""
    aux_coefficient: float = 1.0
    """TopK/BatchTopK: weight of sae-lens's aux-k loss that makes dead latents reconstruct the residual;
    0 turns dead-latent handling off."""
    lr: float = 1e-4
    """Adam learning rate (peak, after warm-up)."""
    lr_end: float = 0.0
    """Learning rate at the end of the cosine decay."""
    warmup_fraction: float = 0.1
    """Share of the steps spent warming the learning rate up linearly (RISE: 10%)."""
    schedule: str = "cosine"
    """Learning-rate schedule after warm-up: ``cosine`` or ``constant``."""
    batch_size: int = 1024
    """Step vectors per optimiser step (RISE: 1024)."""
    samples: int = 3_072_000
    """Training samples in all (steps = samples // batch_size; the store is cycled as often as needed)."""
    seed: int = 0
    """Seed of the initial weights and of the batch order (same seed, same batches, same weights)."""
    normalize: bool = True
    """Scale inputs so their mean norm is sqrt(d_model) (sae-lens's ``expected_average_only_in``); the
    factor is recorded in the manifest and folded into the saved weights."""
    norm_batches: int = 8
    """Batches used to estimate the scaling factor and the input mean."""
    b_dec_init: str = "mean"
    """Starting decoder bias: ``mean`` (the input mean, so latents start out reading deviations from it;
    step vectors at a fixed boundary token share a large common component) or ``zeros`` (sae-lens's)."""
    metrics_every: int = 100
    """Record FVU, L0, dead fraction and decoder cosine every this many steps."""
    dead_window: int = 100_000
    """A latent is dead when it did not fire in this many most recent training samples (also sae-lens's
    dead-latent window for aux-k, converted to steps)."""
    checkpoint_every: int = 500
    """Write a resumable checkpoint every this many steps."""
    device: str = "cpu"
    """Torch device of the SAE and its batches."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"{type(self).__name__}.arch={self.arch!r}: choose one of {ARCHITECTURES}")
        self._validate_common()

    def _validate_common(self) -> None:
        if self.b_dec_init not in ("mean", "zeros"):
            raise ValueError(f"{type(self).__name__}.b_dec_init={self.b_dec_init!r}: use 'mean' or 'zeros'")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"{type(self).__name__}.schedule={self.schedule!r}: use 'cosine' or 'constant'")
        _positive(self, "width", "k", "batch_size", "samples", "metrics_every", "dead_window")
        _positive(self, "checkpoint_every", "norm_batches", "lr")
        if self.k > self.width:
            raise ValueError(f"{type(self).__name__}.k={self.k} exceeds width={self.width}: lower k")
        if self.samples < self.batch_size:
            raise ValueError(f"{type(self).__name__}.samples={self.samples} < batch_size={self.batch_size}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"{type(self).__name__}.warmup_fraction={self.warmup_fraction}: must be in [0, 1)")
        for name in ("l1_coefficient", "l0_coefficient", "aux_coefficient", "lr_end", "jumprelu_threshold"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{type(self).__name__}.{name}={getattr(self, name)}: must be finite and >= 0")

    @property
    def steps(self) -> int:
        """Optimiser steps of the run."""
        return self.samples // self.batch_size

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_fraction * self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SAETrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class SSAEConfig(SAETrainConfig):
    """A context-conditioned step SAE (SSAE, activation-space variant): same fields plus the context."""

    arch: str = "ssae"
    """Always ``ssae``."""
    context: str = "previous"
    """Context vector: ``previous`` (the previous step's vector) or ``mean`` (mean of all previous steps of
    the trace); zeros for a trace's first step."""
    sparsity: str = "topk"
    """``topk`` (exactly k active latents) or ``adaptive_l1`` (L1 of the L2-normalised code, weight nudged
    x1.01 / x0.99 every ``adapt_every`` batches toward a target of sqrt(k))."""
    l1_coefficient: float = 1e-2
    """adaptive_l1: starting weight of the L1 penalty on the L2-normalised code."""
    adapt_every: int = 100
    """adaptive_l1: batches between weight updates."""
    code_noise: float = 0.01
    """Standard deviation of Gaussian noise added to the code in training (SSAE's sigma)."""
    lr: float = 1e-3
    """Adam learning rate (peak, after warm-up)."""

    def __post_init__(self) -> None:
        if self.arch != "ssae":
            raise ValueError(f"SSAEConfig.arch={self.arch!r}: must be 'ssae' (plain SAEs use SAETrainConfig)")
        self._validate_common()
        if self.context not in CONTEXTS:
            raise ValueError(f"SSAEConfig.context={self.context!r}: choose one of {CONTEXTS}")
        if self.sparsity not in SPARSITIES:
            raise ValueError(f"SSAEConfig.sparsity={self.sparsity!r}: choose one of {SPARSITIES}")
        if self.adapt_every < 1 or not (math.isfinite(self.code_noise) and self.code_noise >= 0):
            raise ValueError(f"SSAEConfig: adapt_every={self.adapt_every} must be >= 1, code_noise >= 0")

    @property
    def target_l1(self) -> float:
        """Target L1 of the normalised code: sqrt(k), the value of k equally active latents."""
        return math.sqrt(self.k)
