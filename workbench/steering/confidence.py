"""Confidence vectors (RISE): a mix of SAE decoder columns that makes the model surer at step boundaries.

Learn coefficients ``c`` over an SAE's decoder columns so that adding ``v = c @ W_dec`` to the residual
stream at the SAE's hook, on the step-boundary tokens, minimises the next-token entropy there (what the
model writes first in the next step). Gradients flow only through the frozen layers above the hook (the
model's weights do not change and collect no gradients); Adam runs for a fixed budget of steps over
batches of traces, with a progress bar. The result carries the combined vector and the columns with the
largest coefficients as steering vectors of their own.

RISE reports that adding such a vector cut reflection steps sharply at a small accuracy cost; measure that
with a sweep (:mod:`workbench.steering.sweep`) on the returned ``vector``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import NamedTuple

import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from workbench.steering.saefile import as_sae_weights
from workbench.steering.vectors import SteeringError, SteeringVector, check_hook
from workbench.traces.generate import left_pad

__all__ = ["ConfidenceConfig", "ConfidenceResult", "BoundaryBatch", "boundary_batches", "boundary_entropy", "search"]


@dataclass(frozen=True, kw_only=True)
class ConfidenceConfig:
    """One confidence-vector search (defaults scaled down from RISE's lr 0.01, 1000 steps, batch 256)."""

    steps: int = 200
    """Adam steps (the fixed budget)."""
    lr: float = 0.01
    """Adam learning rate."""
    batch_size: int = 64
    """Traces per step."""
    l1: float = 0.0
    """L1 penalty on the coefficients (sparser mixes)."""
    top_k: int = 8
    """Columns with the largest |coefficient| returned as separate vectors."""
    seed: int = 0
    """Seed of the batch order."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "top_k"):
            if getattr(self, name) < 1:
                raise SteeringError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.lr <= 0 or self.l1 < 0:
            raise SteeringError(f"lr={self.lr}, l1={self.l1}: need lr > 0 and l1 >= 0")


class BoundaryBatch(NamedTuple):
    """Left-padded token rows and the step-boundary positions whose next-token entropy counts."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    boundary: Bool[Tensor, "batch pos"]


class ConfidenceResult(NamedTuple):
    """The learned mix, its vector, the top columns, and the entropy trajectory."""

    coefficients: Float[Tensor, " d_sae"]
    """Learned coefficient of each decoder column."""
    vector: SteeringVector
    """``coefficients @ W_dec`` at the SAE's hook (add it with alpha = 1 at step boundaries)."""
    top: list[SteeringVector]
    """The ``top_k`` columns by |coefficient|, each signed and scaled by its coefficient."""
    history: pd.DataFrame
    """``step, entropy, loss`` per Adam step (entropy on the training batch)."""


def boundary_batches(traces: Sequence, tokenizer, batch_size: int) -> list[BoundaryBatch]:
    """Batches of traces with their step boundaries (every step's boundary token except the last step's)."""
    usable = [t for t in traces if len(t.steps) > 1 and all(s.boundary_token is not None for s in t.steps)]
    if not usable:
        raise SteeringError("traces: none has two or more token-aligned steps; segment them with a tokenizer")
    out = []
    for i in range(0, len(usable), batch_size):
        part = usable[i : i + batch_size]
        rows = [tokenizer(t.text, add_special_tokens=False)["input_ids"] for t in part]
        ids, mask = left_pad(rows, tokenizer.pad_token_id)
        boundary = torch.zeros_like(ids, dtype=torch.bool)
        for r, (t, row) in enumerate(zip(part, rows, strict=True)):
            shift = ids.shape[1] - len(row)
            for s in t.steps[:-1]:
                boundary[r, shift + s.boundary_token] = True
        out.append(BoundaryBatch(ids, mask, boundary))
    return out


@contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """Parameters do not require gradients inside the block (restored afterwards)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _entropy(model, batch: BoundaryBatch, hook: str, delta: Tensor | None) -> Tensor:
    """Mean next-token entropy at the boundary positions, with ``delta`` added there at ``hook``."""
    dev = model.device
    where = batch.boundary.to(dev)
    positions = batch.attention_mask.to(dev).cumsum(-1).clamp(min=1) - 1  # left padding: real positions

    def add(activation: Tensor, hook_point) -> Tensor:
        return activation + where[..., None] * delta.to(activation.dtype)

    hooks = [(hook, add)] if delta is not None else []
    with model.hooks(hooks):
        logits = model.hf_model(
            input_ids=batch.input_ids.to(dev),
            attention_mask=batch.attention_mask.to(dev),
            position_ids=positions,
            use_cache=False,
        ).logits
    logp = torch.log_softmax(logits[where].float(), dim=-1)  # [n_boundaries, vocab]
    return -(logp.exp() * logp).sum(-1).mean()


@torch.no_grad()
def boundary_entropy(model, traces: Sequence, vector: SteeringVector | None = None, *, batch_size: int = 64) -> float:
    """Mean next-token entropy at the step boundaries of ``traces`` (with ``vector`` added there, if given)."""
    if vector is not None:
        vector.check_model(model)
    batches = boundary_batches(traces, model.tokenizer, batch_size)
    total, n = 0.0, 0
    for b in batches:
        k = int(b.boundary.sum())
        delta = None if vector is None else vector.vector.to(model.device)
        total += float(_entropy(model, b, vector.hook if vector else "", delta)) * k
        n += k
    return total / n


def search(model, sae, traces: Sequence, config: ConfidenceConfig = ConfidenceConfig(), *, hook: str | None = None):
    """Learn a confidence vector over ``sae``'s decoder columns on ``traces``; returns :class:`ConfidenceResult`."""
    w = as_sae_weights(sae)
    hook = hook or w.hook
    if hook is None:
        raise SteeringError("hook: the SAE does not record its hook; pass hook='blocks.L.hook_resid_post'")
    check_hook(model, hook, "confidence search")
    if w.d_model != model.d_model:
        raise SteeringError(f"sae: width {w.d_model} but the model's d_model is {model.d_model}")
    batches = boundary_batches(traces, model.tokenizer, config.batch_size)
    W_dec = w.W_dec.to(model.device, torch.float32)  # [d_sae, d_model]
    coef = torch.zeros(w.d_sae, device=model.device, requires_grad=True)
    opt = torch.optim.Adam([coef], lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    rows = []
    with _frozen(model.hf_model), torch.enable_grad():
        for step in tqdm(range(config.steps), desc="confidence", disable=not config.progress):
            batch = batches[int(torch.randint(len(batches), (1,), generator=g))]
            entropy = _entropy(model, batch, hook, coef @ W_dec)
            loss = entropy + config.l1 * coef.abs().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rows.append({"step": step, "entropy": entropy.item(), "loss": loss.item()})
    c = coef.detach().cpu()
    prov = {"source": "confidence_search", "sae": w.source, "traces": len(traces), **asdict(config)}
    vector = SteeringVector(vector=c @ w.W_dec, hook=hook, name="confidence", provenance=prov)
    top = [
        SteeringVector(
            vector=c[j] * w.W_dec[j],
            hook=hook,
            name=f"confidence_sae{int(j)}",
            provenance={"source": "confidence_search", "sae": w.source, "latent": int(j), "coefficient": float(c[j])},
        )
        for j in c.abs().topk(min(config.top_k, w.d_sae)).indices
        if float(c[j]) != 0.0
    ]
    return ConfidenceResult(c, vector, top, pd.DataFrame(rows))
