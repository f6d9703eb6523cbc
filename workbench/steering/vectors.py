"""Steering vectors: a direction in one hook's activation space, with its scale convention and provenance.

A :class:`SteeringVector` is what an intervention writes. It knows

- ``hook``: the TransformerLens hook name it lives at (where it is *written*; ``blocks.3.hook_resid_post``);
- ``vector``: the raw vector; an additive edit with coefficient ``alpha`` adds ``alpha * vector``, so alpha is
  measured **in units of this vector's norm** (alpha = 1 adds the vector as stored);
- ``norm``: how that length was set: ``"raw"`` (the source's own length: a difference of means as
  measured, a decoder column as trained), ``"unit"`` (rescaled to norm 1) or ``"resid"`` (rescaled to the
  mean residual-stream norm at the hook, so alpha = 1 is "one typical activation");
- ``provenance``: where it was *read* (source, store, hook, pooling, the two groups, latent or probe id,
  the model's weights hash). Where a vector is read and where it is written decide what it does, so both
  travel with it and with every sweep made from it.

Saved as a directory with ``cfg.json`` (everything but the numbers) and ``vector.safetensors``; both files
are written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor

from workbench.atomic import atomic_path, atomic_write_json

__all__ = ["SteeringVector", "SteeringError", "NORMS", "random_like", "load_vector", "check_hook"]

NORMS = ("raw", "unit", "resid")
CFG, WEIGHTS = "cfg.json", "vector.safetensors"


class SteeringError(ValueError):
    """A steering vector or intervention that does not fit the model (the message names the fix)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class SteeringVector:
    """One steering direction at one hook: the vector, how its length was chosen, and where it came from."""

    vector: Float[Tensor, " d_model"]
    """The raw vector (float32, CPU); an additive edit adds ``alpha * vector``."""
    hook: str
    """TransformerLens hook name where the vector is written (``blocks.{layer}.hook_resid_post``)."""
    name: str = "vector"
    """A short label used in sweep tables and charts."""
    norm: str = "raw"
    """Length convention: ``raw`` (the source's own), ``unit`` (norm 1) or ``resid`` (mean activation norm)."""
    provenance: dict = field(default_factory=dict)
    """Where the vector was read: source, store, hook, pooling, groups, latent/probe id, model hash."""

    def __post_init__(self) -> None:
        v = torch.as_tensor(self.vector).detach().to("cpu", torch.float32)
        if v.ndim != 1 or v.numel() == 0:
            raise SteeringError(f"vector: shape {tuple(v.shape)}; a steering vector is one row [d_model]")
        if not torch.isfinite(v).all():
            raise SteeringError("vector: contains NaN or inf; rebuild it from finite activations")
        if float(v.norm()) == 0.0:
            raise SteeringError("vector: all zeros; the two groups have identical means or the column is dead")
        if self.norm not in NORMS:
            raise SteeringError(f"norm={self.norm!r}: choose one of {NORMS}")
        object.__setattr__(self, "vector", v)
        object.__setattr__(self, "provenance", dict(self.provenance))

    @property
    def d_model(self) -> int:
        return int(self.vector.numel())

    @property
    def scale(self) -> float:
        """The vector's L2 norm (what alpha = 1 adds along the direction)."""
        return float(self.vector.norm())

    @property
    def direction(self) -> Float[Tensor, " d_model"]:
        """The unit vector along ``vector`` (projection edits use only this)."""
        return self.vector / self.vector.norm()

    def rescaled(self, norm: str, *, resid_norm: float | None = None) -> SteeringVector:
        """The same direction with another length convention (``resid`` needs ``resid_norm``)."""
        if norm == "raw":
            raise SteeringError("norm='raw' is the source's own length; it cannot be recovered after rescaling")
        if norm == "resid" and (resid_norm is None or resid_norm <= 0):
            raise SteeringError("resid_norm: give the mean activation norm at the hook (e.g. from the store)")
        if norm not in NORMS:
            raise SteeringError(f"norm={norm!r}: choose one of {NORMS}")
        length = 1.0 if norm == "unit" else float(resid_norm)
        prov = self.provenance | {"raw_norm": self.provenance.get("raw_norm", self.scale), "rescaled_to": length}
        return replace(self, vector=self.direction * length, norm=norm, provenance=prov)

    def check_model(self, model) -> None:
        """Raise :class:`SteeringError` unless ``model`` has a writable ``hook`` of width ``d_model``."""
        check_hook(model, self.hook, f"vector {self.name!r}")
        if self.d_model != model.d_model:
            raise SteeringError(
                f"vector {self.name!r}: width {self.d_model} but the model's d_model is {model.d_model}; "
                "the vector was made for another model (check its provenance)"
            )

    # ---- files -------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": "workbench-steering-vector/1",
            "name": self.name,
            "hook": self.hook,
            "d_model": self.d_model,
            "norm": self.norm,
            "scale": self.scale,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path/cfg.json`` and ``path/vector.safetensors`` (each atomically); returns ``path``."""
        out = Path(path)
        with atomic_path(out / WEIGHTS) as tmp:
            save_file({"vector": self.vector.contiguous()}, str(tmp), metadata={"hook": self.hook})
        atomic_write_json(out / CFG, self.to_json(), indent=2, default=str)
        return out


def check_hook(model, hook: str, what: str) -> None:
    """Raise :class:`SteeringError` unless ``hook`` is a writable hot-path hook of ``model``."""
    from workbench.models.hookpoints import UnknownHookError, resolve_site

    try:
        site = resolve_site(model.layout, hook)
    except UnknownHookError as e:
        raise SteeringError(f"{what}: hook={hook!r} does not fit this model. {e}") from None
    if not site.writable:
        raise SteeringError(
            f"{what}: hook={hook!r} is read-only on the hot path; write at hook_resid_pre/hook_resid_post instead"
        )


def load_vector(path: str | os.PathLike) -> SteeringVector:
    """Read a vector saved by :meth:`SteeringVector.save`."""
    root = Path(path)
    if not (root / CFG).is_file() or not (root / WEIGHTS).is_file():
        raise FileNotFoundError(f"{root}: not a steering vector (needs {CFG} and {WEIGHTS}); save one with .save()")
    cfg = json.loads((root / CFG).read_text())
    vec = load_file(root / WEIGHTS)["vector"]
    if vec.numel() != cfg["d_model"]:
        raise SteeringError(f"{root}: {WEIGHTS} has {vec.numel()} values but cfg.json says d_model={cfg['d_model']}")
    return SteeringVector(
        vector=vec, hook=cfg["hook"], name=cfg["name"], norm=cfg["norm"], provenance=cfg["provenance"]
    )


def random_like(vec: SteeringVector, seed: int = 0) -> SteeringVector:
    """A random direction of the same norm at the same hook: the control every sweep carries."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(vec.d_model, generator=g)
    r = r / r.norm() * vec.scale
    prov = {"source": "random", "seed": seed, "matched_to": vec.name, "hook": vec.hook, "norm": vec.scale}
    return SteeringVector(vector=r, hook=vec.hook, name=f"random({vec.name})", norm=vec.norm, provenance=prov)
