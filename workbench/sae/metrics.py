"""Our own SAE training metrics: FVU, L0, dead-latent fraction, largest decoder cosine (no wandb).

sae-lens computes its step metrics only when it logs to wandb, so the training loop records these itself
every N steps into a history table. Definitions (the tests compare them with a plain reference):

- **FVU** (fraction of variance unexplained) = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over a batch;
  1 - FVU is sae-lens's ``explained_variance``.
- **L0** = mean number of non-zero latents per step.
- **dead fraction** = share of latents that did not fire on any of the last ``window`` samples seen
  (a latent counts as alive until ``window`` samples have passed, as in sae-lens).
- **max decoder cosine** = largest cosine similarity between two different decoder columns (1.0 means a
  duplicated feature).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["fvu", "l0", "max_decoder_cosine", "DeadLatentTracker", "RunningFVU"]


@torch.no_grad()
def fvu(x: Float[Tensor, "batch d_model"], x_hat: Float[Tensor, "batch d_model"]) -> float:
    """Fraction of variance unexplained of one batch (0 is perfect; 1 is as good as predicting the mean)."""
    x, x_hat = x.double(), x_hat.double()
    total = (x - x.mean(0)).pow(2).sum()
    return float((x - x_hat).pow(2).sum() / total) if total > 0 else float("nan")


@torch.no_grad()
def l0(acts: Float[Tensor, "batch d_sae"]) -> float:
    """Mean number of active (non-zero) latents per row."""
    return float((acts != 0).sum(-1).double().mean())


@torch.no_grad()
def max_decoder_cosine(decoder: Float[Tensor, "d_sae d_model"]) -> float:
    """Largest cosine similarity between two different decoder columns (rows of ``W_dec``)."""
    unit = torch.nn.functional.normalize(decoder.double(), dim=-1)
    sim = unit @ unit.T  # [d_sae, d_sae]
    sim.fill_diagonal_(-torch.inf)
    return float(sim.max())


@dataclass
class DeadLatentTracker:
    """Counts samples since each latent last fired; a latent is dead after ``window`` silent samples."""

    window: int
    """Samples without activation after which a latent counts as dead."""
    since_fired: Tensor
    """``[d_sae]`` int64: samples seen since the latent last fired (or since the start)."""

    @classmethod
    def create(cls, d_sae: int, window: int) -> DeadLatentTracker:
        return cls(window=window, since_fired=torch.zeros(d_sae, dtype=torch.int64))

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "batch d_sae"]) -> None:
        fired = (acts != 0).any(0).cpu()
        self.since_fired += acts.shape[0]
        self.since_fired[fired] = 0

    @property
    def dead(self) -> Tensor:
        """Boolean ``[d_sae]`` mask of dead latents."""
        return self.since_fired >= self.window

    @property
    def dead_fraction(self) -> float:
        return float(self.dead.double().mean())


class RunningFVU:
    """FVU over many batches without holding them: accumulates squared error and the sums of x."""

    def __init__(self) -> None:
        self.sq_err = 0.0
        self.n = 0
        self.sum: Tensor | None = None
        self.sum_sq = 0.0

    @torch.no_grad()
    def update(self, x: Float[Tensor, "batch d_model"], x_hat: Float[Tensor, "batch d_model"]) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.sq_err += float((x - x_hat).pow(2).sum())
        self.sum = x.sum(0) if self.sum is None else self.sum + x.sum(0)
        self.sum_sq += float(x.pow(2).sum())
        self.n += x.shape[0]

    @property
    def value(self) -> float:
        if self.sum is None or self.n == 0:
            return float("nan")
        total = self.sum_sq - float(self.sum.pow(2).sum()) / self.n  # sum ||x - mean||^2
        return self.sq_err / total if total > 0 else float("nan")
