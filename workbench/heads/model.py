"""The uncertainty head (UHeads, arXiv 2511.06209): a small transformer on a frozen model's token features.

Per trace: the step tokens' features (hidden states of chosen hooks, optionally the token's entropy,
log-probability and top-k probabilities, all read from a step store) → standardise → projection MLP →
plus a learned *step-membership* embedding (each token's position inside its own step, so the encoder
knows where steps begin) and a position embedding → a 1–2 layer transformer encoder over the trace's
tokens → pool each step's tokens (mean by default; max or attention) → MLP → logit of "this step is wrong".

The encoder is causal by default: a step's score then depends only on tokens up to its end, which is what
lets :mod:`workbench.heads.live` score a step the moment it is written and get the same number as an
offline pass. Heads must stay under 10M parameters (UHeads' budget); :class:`HeadConfig` refuses larger
ones before anything is allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

__all__ = ["MAX_PARAMS", "POOLS", "HeadConfig", "UncertaintyHead", "count_parameters", "pool_steps"]

MAX_PARAMS = 10_000_000
"""UHeads keeps heads below 10M parameters; so do we (asserted on construction)."""

POOLS = ("mean", "max", "attention")
"""How a step's encoder outputs become one vector (:func:`pool_steps`)."""


@dataclass(frozen=True, kw_only=True)
class HeadConfig:
    """Architecture and inputs of an uncertainty head (saved as ``cfg.json`` beside its weights)."""

    hooks: tuple[str, ...] = ("blocks.3.hook_resid_post",)
    """Hooks whose token features (``tokens/{hook}`` in the store) are concatenated as input."""
    logit_features: bool = False
    """Also feed each token's entropy, log-probability and top-k probabilities (``tokens/entropy`` ...)."""
    top_k: int = 0
    """How many top-k probabilities to use when ``logit_features`` (at most what was captured)."""
    width: int = 128
    """Model width of the projection and the encoder."""
    n_layers: int = 1
    """Transformer encoder layers (1 or 2)."""
    n_heads: int = 4
    """Attention heads of the encoder."""
    dropout: float = 0.1
    """Dropout inside the encoder."""
    causal: bool = True
    """Each token attends only to earlier tokens (live scoring equals offline scoring)."""
    max_in_step: int = 32
    """Positions inside a step with their own embedding (later ones share the last)."""
    max_len: int = 1024
    """Longest trace (step tokens) the position embedding covers."""
    pool: str = "mean"
    """How a step's token outputs are pooled: mean, max (per channel) or attention (learned weights)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", tuple(self.hooks))
        if not self.hooks and not self.logit_features:
            raise ValueError("hooks is empty and logit_features is off: the head has no input features")
        if self.n_layers not in (1, 2):
            raise ValueError(f"n_layers={self.n_layers}: use 1 or 2 encoder layers")
        if self.width < 1 or self.width % self.n_heads:
            raise ValueError(f"width={self.width}, n_heads={self.n_heads}: width must be a multiple of n_heads")
        if self.pool not in POOLS:
            raise ValueError(f"pool={self.pool!r}: choose one of {POOLS}")
        if self.top_k < 0 or (self.top_k and not self.logit_features):
            raise ValueError(f"top_k={self.top_k}: needs logit_features=True and must be >= 0")

    def n_features(self, d_model: int) -> int:
        return len(self.hooks) * d_model + (2 + self.top_k if self.logit_features else 0)

    def to_json(self) -> dict:
        return {**asdict(self), "hooks": list(self.hooks)}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def pool_steps(
    x: Float[Tensor, "tok width"],
    segment: Int[Tensor, " tok"],
    n_segments: int,
    mode: str = "mean",
    score: nn.Module | None = None,
) -> Float[Tensor, "seg width"]:
    """Pool token vectors into one vector per segment (step): mean, per-channel max, or attention.

    ``segment`` is each token's segment number in ``[0, n_segments)``; segments without tokens give zeros.
    ``attention`` weighs a segment's tokens by a softmax of ``score(x)`` (a ``width → 1`` module) within it.
    Live scoring (:mod:`workbench.heads.live`) mirrors it in NumPy; a test checks that both agree.
    """
    w = x.shape[-1]
    if mode == "mean":
        n = torch.bincount(segment, minlength=n_segments).clamp_min(1).to(x.dtype)
        return x.new_zeros(n_segments, w).index_add_(0, segment, x) / n.unsqueeze(-1)
    if mode == "max":
        idx = segment.unsqueeze(-1).expand(-1, w)
        out = x.new_full((n_segments, w), float("-inf")).scatter_reduce(0, idx, x, reduce="amax", include_self=True)
        return out.masked_fill(torch.isinf(out), 0.0)
    if mode == "attention":
        if score is None:
            raise ValueError("pool='attention' needs the head's score module (UncertaintyHead.pool_score)")
        a = score(x).squeeze(-1)  # [tok]
        top = a.new_full((n_segments,), float("-inf")).scatter_reduce(0, segment, a, reduce="amax", include_self=True)
        e = torch.exp(a - top[segment].detach())
        den = a.new_zeros(n_segments).index_add_(0, segment, e).clamp_min(1e-30)
        return x.new_zeros(n_segments, w).index_add_(0, segment, x * (e / den[segment]).unsqueeze(-1))
    raise ValueError(f"mode={mode!r}: choose one of {POOLS}")


class UncertaintyHead(nn.Module):
    """Token features of a batch of traces in, one logit per step out (higher = more likely wrong)."""

    def __init__(self, cfg: HeadConfig, n_features: int) -> None:
        super().__init__()
        self.cfg, self.n_features = cfg, n_features
        w = cfg.width
        self.register_buffer("feat_mean", torch.zeros(n_features))
        self.register_buffer("feat_scale", torch.ones(n_features))
        self.proj = nn.Sequential(nn.Linear(n_features, w), nn.GELU(), nn.Linear(w, w))
        self.in_step = nn.Embedding(cfg.max_in_step, w)
        self.pos = nn.Embedding(cfg.max_len, w)
        layer = nn.TransformerEncoderLayer(
            w, cfg.n_heads, dim_feedforward=2 * w, dropout=cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, w), nn.GELU(), nn.Linear(w, 1))
        self.pool_score = nn.Linear(w, 1) if cfg.pool == "attention" else None

    @classmethod
    def build(cls, cfg: HeadConfig, n_features: int) -> UncertaintyHead:
        """Construct a head after checking its size on the meta device (nothing allocated if too big)."""
        with torch.device("meta"):
            n = count_parameters(cls(cfg, n_features))
        if n >= MAX_PARAMS:
            raise ValueError(
                f"this head has {n:,} parameters; heads must stay under {MAX_PARAMS:,} (UHeads' budget): "
                "lower width, n_layers or the number of feature hooks"
            )
        return cls(cfg, n_features)

    def set_normalisation(self, mean: Float[Tensor, " feat"], scale: Float[Tensor, " feat"]) -> None:
        self.feat_mean.copy_(mean)
        self.feat_scale.copy_(scale.clamp_min(1e-6))

    def forward(
        self,
        feats: Float[Tensor, "batch tok feat"],
        token_step: Int[Tensor, "batch tok"],
        in_step: Int[Tensor, "batch tok"],
        n_steps: int,
    ) -> Float[Tensor, "batch step"]:
        """Per-step logits; ``token_step`` is each token's step number in its trace (−1 on padding)."""
        pad: Bool[Tensor, "batch tok"] = token_step < 0
        t = feats.shape[1]
        if t > self.cfg.max_len:
            raise ValueError(f"a trace has {t} step tokens; this head covers max_len={self.cfg.max_len}")
        x = self.proj((feats - self.feat_mean) / self.feat_scale)
        x = x + self.in_step(in_step.clamp(0, self.cfg.max_in_step - 1)) + self.pos.weight[:t]
        causal = torch.ones((t, t), dtype=torch.bool, device=x.device).triu(1)  # True = may not attend
        mask = causal if self.cfg.causal else None
        h = self.encoder(x, mask=mask, src_key_padding_mask=pad, is_causal=self.cfg.causal)  # [batch, tok, w]
        b = h.shape[0]
        keep = ~pad
        seg = (torch.arange(b, device=x.device).view(-1, 1) * n_steps + token_step)[keep]  # (trace, step) id
        pooled = pool_steps(h[keep], seg, b * n_steps, self.cfg.pool, self.pool_score)
        return self.out(pooled.view(b, n_steps, -1)).squeeze(-1)
