"""The sae-lens seam: its SAE classes, its trainer's optimisation step, its save format (sole importer).

We train with sae-lens's own training SAEs (``standard`` = ReLU + L1, ``topk``, ``batchtopk``,
``jumprelu``) and its own :class:`sae_lens.SAETrainer`, but drive the trainer one batch at a time through
its public ``step`` method instead of ``fit``: ``fit`` computes metrics only for wandb and checkpoints on
its own schedule, while our loop (:mod:`workbench.sae.train`) records metrics every N steps and writes
resumable checkpoints. Everything else is sae-lens's: the architectures and losses (aux-k for dead TopK
latents, the JumpReLU straight-through L0), the Adam optimiser, gradient clipping, the warm-up + cosine
schedule, the coefficient warm-up, the dead-latent bookkeeping that feeds aux-k, and the input scaling
(``expected_average_only_in``: inputs scaled so their mean norm is sqrt(d_model), the factor folded into
the weights at the end).

A finished SAE is converted to sae-lens's *inference* class (TopK folds its decoder norms; BatchTopK
becomes a JumpReLU with the learned global threshold) and saved as ``cfg.json`` +
``sae_weights.safetensors``, which ``sae_lens.SAE.load_from_disk`` reads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import sae_lens
import torch
from jaxtyping import Float
from sae_lens import (
    SAE,
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    SAETrainer,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.config import SAETrainerConfig
from torch import Tensor

from workbench.sae.config import SAETrainConfig
from workbench.sae.loop import StepOutput

__all__ = ["SAELENS_VERSION", "SaeLensEngine", "StepSAE", "load_saelens"]

SAELENS_VERSION = sae_lens.__version__
_ARCH = {
    "relu": (StandardTrainingSAE, StandardTrainingSAEConfig),
    "topk": (TopKTrainingSAE, TopKTrainingSAEConfig),
    "batchtopk": (BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig),
    "jumprelu": (JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig),
}


def _arch_fields(cfg: SAETrainConfig) -> dict[str, Any]:
    if cfg.arch == "relu":
        return {"l1_coefficient": cfg.l1_coefficient}
    if cfg.arch in ("topk", "batchtopk"):
        return {"k": cfg.k, "aux_loss_coefficient": cfg.aux_coefficient}
    return {"l0_coefficient": cfg.l0_coefficient, "jumprelu_init_threshold": cfg.jumprelu_threshold}


class SaeLensEngine:
    """A sae-lens training SAE and its :class:`SAETrainer`, stepped one batch at a time by our loop."""

    def __init__(self, cfg: SAETrainConfig, d_in: int, metadata: dict[str, Any]) -> None:
        sae_cls, sae_cfg_cls = _ARCH[cfg.arch]
        sae_cfg = sae_cfg_cls(
            d_in=d_in,
            d_sae=cfg.width,
            device=cfg.device,
            normalize_activations="expected_average_only_in" if cfg.normalize else "none",
            **_arch_fields(cfg),
        )
        for key, value in metadata.items():
            sae_cfg.metadata[key] = value
        torch.manual_seed(cfg.seed)  # sae-lens initialises weights from torch's global generator
        self.sae = sae_cls(sae_cfg)
        self.cfg = cfg
        self.trainer = SAETrainer(
            cfg=SAETrainerConfig(
                total_training_samples=cfg.steps * cfg.batch_size,
                train_batch_size_samples=cfg.batch_size,
                lr=cfg.lr,
                lr_end=cfg.lr_end,
                lr_scheduler_name="cosineannealing" if cfg.schedule == "cosine" else "constant",
                lr_warm_up_steps=cfg.warmup_steps,
                device=cfg.device,
                dead_feature_window=max(1, math.ceil(cfg.dead_window / cfg.batch_size)),
                feature_sampling_window=cfg.steps + 1,
            ),
            sae=self.sae,
            data_provider=iter(()),  # batches come through step(); fit() is never called
        )
        self.sae.to(cfg.device)

    # ---- input scaling -----------------------------------------------------------------------------
    @property
    def scaling_factor(self) -> float | None:
        return self.trainer.activation_scaler.scaling_factor

    @scaling_factor.setter
    def scaling_factor(self, value: float | None) -> None:
        self.trainer.activation_scaler.scaling_factor = value

    @torch.no_grad()
    def init_decoder_bias(self, value: Float[Tensor, " d_model"]) -> None:
        """Start the decoder bias at ``value`` (in the scaled input space)."""
        self.sae.b_dec.data.copy_(value.to(self.sae.b_dec))

    # ---- training ----------------------------------------------------------------------------------
    def step(self, batch: Float[Tensor, "batch d_model"]) -> StepOutput:
        out = self.trainer.step(batch)
        self.trainer.n_training_steps += 1  # step() leaves this to its caller (sae-lens's fit does the same)
        return StepOutput(
            sae_in=out.sae_in.detach(),
            sae_out=out.sae_out.detach(),
            feature_acts=out.feature_acts.detach(),
            losses={name: float(v.detach()) for name, v in out.losses.items()},
        )

    @property
    def decoder(self) -> Float[Tensor, "d_sae d_model"]:
        return self.sae.W_dec.detach()

    @property
    def lr(self) -> float:
        return float(self.trainer.optimizer.param_groups[0]["lr"])

    @property
    def n_steps(self) -> int:
        return self.trainer.n_training_steps

    # ---- checkpoints -------------------------------------------------------------------------------
    def weights(self) -> dict[str, Tensor]:
        """The training SAE's tensors (parameters and buffers), for safetensors."""
        return {k: v.detach().clone().contiguous() for k, v in self.sae.state_dict().items()}

    def trainer_state(self) -> dict[str, Any]:
        """Optimiser, schedules and counters: everything besides the weights that a resumed run needs."""
        t = self.trainer
        return {
            "optimizer": t.optimizer.state_dict(),
            "lr_scheduler": t.lr_scheduler.state_dict(),
            "n_training_samples": t.n_training_samples,
            "n_training_steps": t.n_training_steps,
            "act_freq_scores": t.act_freq_scores,
            "n_forward_passes_since_fired": t.n_forward_passes_since_fired,
            "n_frac_active_samples": t.n_frac_active_samples,
            "coefficient_schedulers": {n: s.state_dict() for n, s in t.coefficient_schedulers.items()},
        }

    def load(self, weights: dict[str, Tensor], state: dict[str, Any]) -> None:
        self.sae.load_state_dict(weights)
        t = self.trainer
        t.optimizer.load_state_dict(state["optimizer"])
        t.lr_scheduler.load_state_dict(state["lr_scheduler"])
        for name in ("n_training_samples", "n_training_steps", "act_freq_scores", "n_forward_passes_since_fired"):
            setattr(t, name, state[name])
        t.n_frac_active_samples = state["n_frac_active_samples"]
        for name, sd in state["coefficient_schedulers"].items():
            t.coefficient_schedulers[name].load_state_dict(sd)

    # ---- the finished SAE --------------------------------------------------------------------------
    @torch.no_grad()
    def finish(self) -> StepSAE:
        """Fold the input scaling into the weights and convert to sae-lens's inference SAE."""
        if self.scaling_factor is not None:
            self.sae.fold_activation_norm_scaling_factor(self.scaling_factor)
            self.scaling_factor = None
        state = self.weights()
        self.sae.process_state_dict_for_saving_inference(state)
        inference = SAE.from_dict(self.sae.cfg.get_inference_sae_cfg_dict())
        inference.load_state_dict(state)
        return StepSAE(inference.to(self.cfg.device).eval())


class StepSAE:
    """A trained plain step SAE: a sae-lens inference SAE behind our small interface."""

    needs_context = False

    def __init__(self, sae: SAE) -> None:
        self.sae = sae

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def architecture(self) -> str:
        """sae-lens's inference architecture name (BatchTopK is saved as ``jumprelu``)."""
        return self.sae.cfg.architecture()

    @property
    def decoder(self) -> Float[Tensor, "d_sae d_model"]:
        return self.sae.W_dec.detach()

    @torch.no_grad()
    def encode(self, x: Float[Tensor, "batch d_model"], context: None = None) -> Float[Tensor, "batch d_sae"]:
        return self.sae.encode(x.to(self.sae.W_dec))

    @torch.no_grad()
    def decode(self, acts: Float[Tensor, "batch d_sae"], context: None = None) -> Float[Tensor, "batch d_model"]:
        return self.sae.decode(acts.to(self.sae.W_dec))

    def save(self, path: str | os.PathLike) -> None:
        """Write ``cfg.json`` and ``sae_weights.safetensors`` (sae-lens's format) into ``path``."""
        self.sae.save_model(Path(path))


def load_saelens(path: str | os.PathLike, device: str = "cpu") -> StepSAE:
    """Load a plain step SAE with ``sae_lens.SAE.load_from_disk``."""
    return StepSAE(SAE.load_from_disk(str(path), device=device).eval())
