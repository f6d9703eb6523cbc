"""Interventions: scoped edits of the hot path's activations, during forward passes and cached generation.

Three edits, each at one TransformerLens-named hook of the unwrapped model (``model.hooks``, not the
bridge), each at the positions its :class:`~workbench.steering.positions.Positions` rule picks:

- :class:`Additive`: ``h + alpha * v`` (alpha in units of the vector's norm, see ``SteeringVector``);
- :class:`Projection`: ``h - alpha * u (u^T h)`` with ``u`` the unit direction. **Sign convention**:
  the component along ``u`` becomes ``(1 - alpha)`` times what it was, so ``alpha = 1`` removes it
  (ablation), ``0 < alpha < 1`` shrinks it, ``alpha = 2`` reflects it and ``alpha < 0`` amplifies it
  (tested numerically). RISE writes the same formula; its sources disagree on the sign, hence the test;
- :class:`Clamp`: set one SAE latent to ``value`` by adding the decoder column times the change in that
  latent's activation, ``h + (value - a(h)) * W_dec[latent]``.

:func:`steer` attaches a list of interventions and returns a :class:`SteeringHandle`: use it as a context
manager, or keep it and call ``.remove()``. Interventions compose: at one hook they apply in list order,
each seeing the previous one's output. Everything is validated (hook names, widths, latents) before
anything is attached, and nothing stays attached after the block or ``.remove()``, errors included.

Hook functions follow TransformerLens's ``fn(activation, hook)`` convention.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from workbench.steering.positions import Positions, TokenTracker
from workbench.steering.saefile import SaeWeights, as_sae_weights
from workbench.steering.vectors import SteeringError, SteeringVector, check_hook

__all__ = ["Additive", "Projection", "Clamp", "Intervention", "SteeringHandle", "steer"]


def _hook_name(hook) -> str:
    return getattr(hook, "name", hook)


@dataclass(frozen=True, kw_only=True, eq=False)
class Additive:
    """Add ``alpha * vector`` at the chosen positions."""

    vector: SteeringVector
    """The direction and its length (alpha = 1 adds it as stored)."""
    alpha: float = 1.0
    """Coefficient, in units of the vector's norm."""
    positions: Positions = field(default_factory=Positions)
    """Which tokens are edited (default: step boundaries)."""

    @property
    def hook(self) -> str:
        return self.vector.hook

    def check(self, model) -> None:
        self.vector.check_model(model)

    def prepare(self, device, dtype) -> None:
        object.__setattr__(self, "_delta", (self.alpha * self.vector.vector).to(device, dtype))

    def edit(
        self, h: Float[Tensor, "batch pos d_model"], mask: Bool[Tensor, "batch pos"]
    ) -> Float[Tensor, "batch pos d_model"]:
        return torch.where(mask[..., None], h + self._delta, h)

    def describe(self) -> dict:
        return {"edit": "additive", "vector": self.vector.name, "hook": self.hook, "alpha": self.alpha,
                "vector_norm": self.vector.scale, "positions": self.positions.describe()}  # fmt: skip


@dataclass(frozen=True, kw_only=True, eq=False)
class Projection:
    """``h - alpha * u (u^T h)``: alpha = 1 removes the component along the vector's direction ``u``."""

    vector: SteeringVector
    """Only its direction is used."""
    alpha: float = 1.0
    """The component along ``u`` is multiplied by ``1 - alpha``."""
    positions: Positions = field(default_factory=Positions)
    """Which tokens are edited (default: step boundaries)."""

    @property
    def hook(self) -> str:
        return self.vector.hook

    def check(self, model) -> None:
        self.vector.check_model(model)

    def prepare(self, device, dtype) -> None:
        object.__setattr__(self, "_u", self.vector.direction.to(device, dtype))

    def edit(self, h, mask):
        coef = h @ self._u  # [batch, pos]
        return torch.where(mask[..., None], h - self.alpha * coef[..., None] * self._u, h)

    def describe(self) -> dict:
        return {"edit": "projection", "vector": self.vector.name, "hook": self.hook, "alpha": self.alpha,
                "positions": self.positions.describe()}  # fmt: skip


@dataclass(frozen=True, kw_only=True, eq=False)
class Clamp:
    """Set SAE latent ``latent`` to ``value``: ``h + (value - a(h)) * W_dec[latent]``.

    (With sae-lens's ``rescale_acts_by_decoder_norm`` the unit column is used, as its decoder does.)
    """

    sae: SaeWeights | object
    """A saved SAE folder, :class:`SaeWeights`, or an in-memory SAE (converted on construction)."""
    latent: int
    """The latent to clamp."""
    value: float = 0.0
    """Its target activation (0 switches the latent off)."""
    hook: str | None = None
    """Hook to edit; default: the hook the SAE was trained on."""
    positions: Positions = field(default_factory=Positions)
    """Which tokens are edited (default: step boundaries)."""

    def __post_init__(self) -> None:
        w = as_sae_weights(self.sae)
        w.check_latent(self.latent)
        object.__setattr__(self, "sae", w)
        if self.hook is None:
            if w.hook is None:
                raise SteeringError("hook: the SAE does not record its hook; pass Clamp(hook='blocks.L....')")
            object.__setattr__(self, "hook", w.hook)

    def check(self, model) -> None:
        check_hook(model, self.hook, f"Clamp(latent={self.latent})")
        if self.sae.d_model != model.d_model:
            raise SteeringError(
                f"Clamp: the SAE reads width {self.sae.d_model} but the model's d_model is {model.d_model}"
            )

    def prepare(self, device, dtype) -> None:
        w = self.sae
        cols = {n: getattr(w, n).to(device, dtype) for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
        th = None if w.threshold is None else w.threshold.to(device, dtype)
        object.__setattr__(self, "_sae", SaeWeights(**{**w.__dict__, **cols, "threshold": th}))

    def edit(self, h, mask):
        a = self._sae.encode(h)[..., self.latent]  # [batch, pos]
        delta = (self.value - a)[..., None] * self._sae.decoder_row(self.latent)
        return torch.where(mask[..., None], h + delta.to(h.dtype), h)

    def describe(self) -> dict:
        return {"edit": "clamp", "sae": self.sae.source, "latent": self.latent, "value": self.value,
                "hook": self.hook, "positions": self.positions.describe()}  # fmt: skip


Intervention = Additive | Projection | Clamp


class SteeringHandle:
    """Attached interventions; ``.remove()`` (or leaving the ``with`` block) detaches every hook."""

    def __init__(self, model, interventions: list[Intervention]) -> None:
        self.model = model
        self.interventions = interventions
        self.tracker = TokenTracker(model.tokenizer)
        self._stack = ExitStack()

    def _attach(self) -> SteeringHandle:
        hooks = [(iv.hook, self._hook_fn(iv)) for iv in self.interventions]
        try:
            handle = self.model.hf_model.register_forward_pre_hook(self.tracker.pre_hook, with_kwargs=True)
            self._stack.callback(handle.remove)
            self._stack.enter_context(self.model.hooks(hooks))
        except BaseException:
            self._stack.close()
            raise
        return self

    def _hook_fn(self, iv: Intervention):
        tracker = self.tracker

        def fn(activation: Tensor, hook) -> Tensor | None:
            mask = tracker.mask(iv.positions)
            if mask is None:
                return None
            if mask.shape != activation.shape[:2]:
                raise SteeringError(
                    f"{_hook_name(hook)}: activation {tuple(activation.shape)} does not match the tracked "
                    f"tokens {tuple(mask.shape)}; steer the model's own forward/generate calls"
                )
            return iv.edit(activation, mask)

        return fn

    @property
    def attached(self) -> bool:
        return bool(self._stack._exit_callbacks)

    def remove(self) -> None:
        """Detach everything (idempotent)."""
        self._stack.close()

    def describe(self) -> list[dict]:
        """The interventions as JSON-ready dicts (recorded with every sweep)."""
        return [iv.describe() for iv in self.interventions]

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def steer(model, interventions: Intervention | list[Intervention]) -> SteeringHandle:
    """Attach ``interventions`` to ``model``'s hot path; use as ``with steer(...):`` or call ``.remove()``."""
    ivs = [interventions] if not isinstance(interventions, (list, tuple)) else list(interventions)
    if not ivs:
        raise SteeringError("interventions: empty; give at least one Additive/Projection/Clamp")
    for iv in ivs:
        if not isinstance(iv, (Additive, Projection, Clamp)):
            raise SteeringError(f"interventions: {type(iv).__name__} is not an Additive, Projection or Clamp")
        iv.check(model)
    for iv in ivs:
        iv.prepare(model.device, model.dtype)
    return SteeringHandle(model, ivs)._attach()
