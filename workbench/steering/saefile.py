"""SAE weights read straight from sae-lens's saved format, for steering (decoder columns, latent clamps).

Steering needs only the numbers of a trained SAE: decoder columns ``W_dec[latent]`` (RISE's "reasoning
vectors") and, for clamping a latent, the encoder. sae-lens saves ``cfg.json`` + ``sae_weights.safetensors``
with ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``; this module
reads those files with safetensors (sae-lens itself is owned by ``workbench/sae/saelens.py``) and encodes
the ``standard`` (ReLU), ``topk`` and ``jumprelu`` architectures exactly as sae-lens does.

:func:`as_sae_weights` also accepts any object with those tensors as attributes (an in-memory sae-lens SAE
or the workbench's own SAE class), so callers can pass whichever they have.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors.torch import load_file
from torch import Tensor

from workbench.steering.vectors import SteeringError

__all__ = ["SaeWeights", "load_sae_weights", "as_sae_weights"]

ARCHITECTURES = ("standard", "topk", "jumprelu")


@dataclass(frozen=True, kw_only=True, eq=False)
class SaeWeights:
    """The tensors of a trained SAE plus the facts needed to encode with it."""

    W_enc: Float[Tensor, "d_model d_sae"]
    b_enc: Float[Tensor, " d_sae"]
    W_dec: Float[Tensor, "d_sae d_model"]
    b_dec: Float[Tensor, " d_model"]
    architecture: str = "standard"
    """``standard`` (ReLU), ``topk`` or ``jumprelu``."""
    k: int | None = None
    """Active latents per input (``topk`` only)."""
    threshold: Tensor | None = None
    """Per-latent thresholds (``jumprelu`` only)."""
    apply_b_dec_to_input: bool = True
    """Subtract ``b_dec`` before encoding (sae-lens's default)."""
    rescale_acts_by_decoder_norm: bool = False
    """sae-lens's TopK option: pre-activations are scaled by the decoder norms and decoded through unit columns."""
    hook: str | None = None
    """The hook the SAE was trained on, when recorded (``metadata.hook_name``)."""
    source: str = ""
    """Where the weights came from (a path, or the class name of an in-memory SAE)."""
    cfg: dict = field(default_factory=dict)

    @property
    def d_sae(self) -> int:
        return int(self.W_dec.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.W_dec.shape[1])

    def encode(self, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_sae"]:
        """Latent activations of ``h`` (same maths as sae-lens's ``encode`` for the architecture)."""
        x = h.to(self.W_enc.dtype)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc  # [..., d_sae]
        if self.rescale_acts_by_decoder_norm:
            pre = pre * self.W_dec.norm(dim=-1)
        if self.architecture == "standard":
            return torch.relu(pre)
        if self.architecture == "jumprelu":
            return pre * (pre > self.threshold)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decoder_row(self, latent: int) -> Float[Tensor, " d_model"]:
        """What one unit of ``latent``'s activation adds to the reconstruction."""
        row = self.W_dec[latent]
        return row / row.norm() if self.rescale_acts_by_decoder_norm else row

    def check_latent(self, latent: int) -> int:
        if not 0 <= int(latent) < self.d_sae:
            raise SteeringError(f"latent={latent}: this SAE has latents 0..{self.d_sae - 1}")
        return int(latent)


def load_sae_weights(path: str | os.PathLike) -> SaeWeights:
    """Read an SAE saved in sae-lens's format (``cfg.json`` + ``sae_weights.safetensors``)."""
    root = Path(path)
    if not (root / "cfg.json").is_file() or not (root / "sae_weights.safetensors").is_file():
        raise FileNotFoundError(f"{root}: not a saved SAE (needs cfg.json and sae_weights.safetensors)")
    cfg = json.loads((root / "cfg.json").read_text())
    w = {k: v.float() for k, v in load_file(root / "sae_weights.safetensors").items()}
    arch = cfg.get("architecture", "standard")
    if arch not in ARCHITECTURES:
        raise SteeringError(f"{root}: architecture={arch!r} is not supported for steering; use one of {ARCHITECTURES}")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise SteeringError(f"{root}: normalize_activations={cfg['normalize_activations']!r} is not supported")
    meta = cfg.get("metadata") or {}
    return SaeWeights(
        W_enc=w["W_enc"],
        b_enc=w["b_enc"],
        W_dec=w["W_dec"],
        b_dec=w["b_dec"],
        architecture=arch,
        k=cfg.get("k"),
        threshold=w.get("threshold"),
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        rescale_acts_by_decoder_norm=bool(cfg.get("rescale_acts_by_decoder_norm", False)),
        hook=meta.get("hook_name") or cfg.get("hook_name"),
        source=str(root),
        cfg=cfg,
    )


def as_sae_weights(sae) -> SaeWeights:
    """A :class:`SaeWeights` from a path, a :class:`SaeWeights`, or an object with ``W_enc/b_enc/W_dec/b_dec``."""
    if isinstance(sae, SaeWeights):
        return sae
    if isinstance(sae, (str, os.PathLike)):
        return load_sae_weights(sae)
    missing = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if not hasattr(sae, n)]
    if missing:
        raise SteeringError(f"sae: {type(sae).__name__} has no {missing}; pass a saved SAE folder instead")
    cfg = getattr(sae, "cfg", None)
    get = (lambda n, d=None: getattr(cfg, n, d)) if cfg is not None else (lambda n, d=None: d)
    meta = get("metadata")
    arch = get("architecture", None)
    arch = arch() if callable(arch) else (arch or "standard")
    return SaeWeights(
        W_enc=sae.W_enc.detach().float().cpu(),
        b_enc=sae.b_enc.detach().float().cpu(),
        W_dec=sae.W_dec.detach().float().cpu(),
        b_dec=sae.b_dec.detach().float().cpu(),
        architecture=arch,
        k=get("k"),
        threshold=getattr(sae, "threshold", None),
        apply_b_dec_to_input=bool(get("apply_b_dec_to_input", True)),
        rescale_acts_by_decoder_norm=bool(get("rescale_acts_by_decoder_norm", False)),
        hook=getattr(meta, "hook_name", None) if meta is not None else None,
        source=type(sae).__name__,
    )
