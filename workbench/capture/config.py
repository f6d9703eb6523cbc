"""What a capture records and how it batches: :class:`CaptureConfig` and :class:`TokenFeatureConfig`.

Frozen keyword-only dataclasses, validated on construction, saved into the store's manifest; the
fields that change the recorded values form the store's fingerprint (a resumed capture must match it).
The CLI builds the same objects from its flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Integral, Real

__all__ = ["POOLINGS", "CaptureConfig", "TokenFeatureConfig"]


def _names(value, field: str, example: str) -> tuple:
    """A tuple from a list/tuple field; a bare string or number is refused with what to pass instead."""
    if isinstance(value, (str, int, float)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{field}={value!r}: give a tuple, e.g. {field}={example}")
    return tuple(value)


def _check_numbers(obj, ints: tuple[str, ...], floats: tuple[str, ...] = ()) -> None:
    """Numeric fields must be numbers (a string from a config file would otherwise fail deep inside)."""
    for name in ints:
        v = getattr(obj, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, Integral)):
            raise TypeError(f"{name}={v!r}: give an int")
    for name in floats:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, Real):
            raise TypeError(f"{name}={v!r}: give a number")


#: Step poolings. ``boundary``: the token containing the step's last character, delimiter included (RISE's
#: read-out). ``last``: the token containing the step's last non-whitespace character (the last token of
#: its content; equal to ``boundary`` when the tokenizer merges content and delimiter). ``mean``/``max``:
#: over the step's tokens ``[token_start, token_end)``.
POOLINGS = ("boundary", "last", "mean", "max")


@dataclass(frozen=True, kw_only=True)
class TokenFeatureConfig:
    """Per-token features of every captured step's tokens, for uncertainty heads (UHeads, arXiv 2511.06209)."""

    hooks: tuple[str, ...] = ()
    """Hook names whose activation at each step token is stored (``tokens/{hook}``, ``[n_tokens, d_model]``)."""
    top_k: int = 0
    """Store the top-k probabilities and ids of the distribution each step token was drawn from, its entropy
    and the token's log-probability (``tokens/topk_probs``, ``tokens/topk_ids``, ``tokens/entropy``,
    ``tokens/logprob``). 0 turns the logit features off. The first token of a sequence has no such
    distribution: NaN probabilities, id -1."""
    attn_prev: int = 0
    """Store each head's attention weight from every step token to its previous ``attn_prev`` tokens
    (``tokens/attn_prev.L{layer}``, ``[n_tokens, n_heads, attn_prev]``; NaN before the sequence start).
    Needs eager attention during the capture (slower; the model is switched back afterwards)."""
    attn_layers: tuple[int, ...] = ()
    """Layers for ``attn_prev``; empty means every layer."""

    def __post_init__(self) -> None:
        _check_numbers(self, ("top_k", "attn_prev"))
        object.__setattr__(self, "hooks", _names(self.hooks, "hooks", "('blocks.1.hook_resid_post',)"))
        object.__setattr__(self, "attn_layers", _names(self.attn_layers, "attn_layers", "(0, 1)"))
        if self.top_k < 0 or self.attn_prev < 0:
            raise ValueError(f"top_k={self.top_k}, attn_prev={self.attn_prev}: must be >= 0")
        if self.attn_layers and not self.attn_prev:
            raise ValueError("attn_layers is set but attn_prev=0: give attn_prev > 0 to store attention weights")
        object.__setattr__(self, "attn_layers", tuple(int(i) for i in self.attn_layers))

    @property
    def enabled(self) -> bool:
        return bool(self.hooks or self.top_k or self.attn_prev)


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    """One capture run: hooks, poolings, optional token features and logit statistics, batching, storage."""

    hooks: tuple[str, ...] = ()
    """TransformerLens hook names of the hot path (``blocks.3.hook_resid_post``, ...). Empty: the
    ``hook_resid_post`` of ``layers``."""
    layers: tuple[int, ...] | None = None
    """Layers whose residual stream is captured when ``hooks`` is empty; None means every layer."""
    poolings: tuple[str, ...] = POOLINGS
    """Which step poolings to record (see :data:`POOLINGS`); each costs one ``[steps, d_model]`` tensor per hook."""
    logit_stats: bool = False
    """Per-step logit baselines in the index: ``logit_max_prob`` (mean over the step's tokens of the top
    probability), ``logit_mean_entropy`` (nats), ``logit_perplexity`` and ``logit_seq_logprob``."""
    token_features: TokenFeatureConfig | None = None
    """Per-token features for uncertainty heads; None records none."""
    max_batch_tokens: int = 16384
    """Padded tokens per forward (bounds activation memory; ≈16k saturates an H200 on a 1.5B model)."""
    batch_size: int = 256
    """At most this many sequences per forward."""
    max_len: int | None = None
    """Truncate every sequence to this many tokens (at most the model's context); None: the model's context.
    Steps reaching past it are kept in the index with ``status="beyond_context"`` and no vectors."""
    dtype: str | None = None
    """Dtype of stored vectors (``float32``, ``bfloat16``, ``float16``); None keeps the model's dtype."""
    window: int = 1024
    """Traces tokenised, sorted by length and cut into batches together (length bucketing; host memory for
    planning grows with the window's tokens)."""
    shard_mb: float = 256.0
    """Approximate size of one shard (all keys) before it is written; bounds host memory."""
    progress: bool = True
    """Show a progress bar (rank 0 only)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", _names(self.hooks, "hooks", "('blocks.1.hook_resid_post',)"))
        object.__setattr__(self, "poolings", _names(self.poolings, "poolings", "('boundary',)"))
        if self.layers is not None:
            layers = _names(self.layers, "layers", f"({self.layers!r},)")
            if not all(isinstance(i, Integral) and not isinstance(i, bool) for i in layers):
                raise TypeError(f"layers={self.layers!r}: give layer indices as ints, e.g. layers=(1, 2)")
            object.__setattr__(self, "layers", tuple(int(i) for i in layers))
        if self.token_features is not None and not isinstance(self.token_features, TokenFeatureConfig):
            raise TypeError(
                f"token_features: give a TokenFeatureConfig (e.g. TokenFeatureConfig(top_k=5)), "
                f"not {type(self.token_features).__name__}"
            )
        _check_numbers(self, ("max_batch_tokens", "batch_size", "max_len", "window"), ("shard_mb",))
        if self.hooks and self.layers is not None:
            raise ValueError("give either hooks or layers, not both (layers is a shorthand for resid_post hooks)")
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad or len(set(self.poolings)) != len(self.poolings):
            raise ValueError(f"poolings={self.poolings}: choose distinct names from {POOLINGS}")
        if len(set(self.hooks)) != len(self.hooks):
            raise ValueError(f"hooks={self.hooks}: a hook is listed twice")
        for name in ("max_batch_tokens", "batch_size", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"max_len={self.max_len}: must be >= 1")
        if self.shard_mb <= 0:
            raise ValueError(f"shard_mb={self.shard_mb}: must be > 0")
        if self.dtype is not None and self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype={self.dtype!r}: use float32, bfloat16 or float16")
        if not self.poolings and not (self.token_features and self.token_features.enabled) and not self.logit_stats:
            raise ValueError("nothing to capture: give poolings, token_features or logit_stats")

    def resolve_hooks(self, n_layers: int) -> tuple[str, ...]:
        """The hook names this config captures on a model of ``n_layers`` layers."""
        if self.hooks:
            return self.hooks
        layers = range(n_layers) if self.layers is None else self.layers
        for i in layers:
            if not 0 <= i < n_layers:
                raise ValueError(f"layers: {i} is not a layer of this {n_layers}-layer model")
        return tuple(f"blocks.{i}.hook_resid_post" for i in layers)

    def to_json(self) -> dict:
        return asdict(self)

    def fingerprint(self, n_layers: int) -> dict:
        """The settings that change recorded values (batching, window and shard size do not)."""
        d = self.to_json()
        keep = {k: d[k] for k in ("poolings", "logit_stats", "token_features", "max_len", "dtype")}
        return {"hooks": list(self.resolve_hooks(n_layers)), **keep}
