"""Where steering vectors come from: difference of means in a store, SAE decoder columns, RISE behaviour
vectors, probe weights.

Every constructor returns a :class:`~workbench.steering.vectors.SteeringVector` whose provenance records
where it was *read* (store, hook, pooling, the two groups and their sizes; or SAE path and latent; or the
probe). The hook it is *written* at defaults to the hook it was read at; pass ``write_hook`` to move it.

Groups of store steps are pandas ``query`` strings over the store's index, which gets two extra columns
here: ``next_kind`` and ``prev_kind`` (the ``kind`` of the following / preceding step of the same trace;
``"none"`` at the ends). The calibration prototype's ``wait`` direction, for instance, is
``positive="next_kind == 'wait'"``, ``negative="kind == 'compute' and next_kind == 'compute'"``: the
boundary vectors of steps *followed by* a ``wait`` line against compute steps followed by a compute line.
The mean of the ``wait`` steps themselves (``kind == 'wait'``) is a different vector that acted in the
opposite sense there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from workbench.steering.saefile import as_sae_weights
from workbench.steering.vectors import SteeringError, SteeringVector

__all__ = [
    "with_neighbour_kinds",
    "select_steps",
    "diff_of_means",
    "mean_activation_norm",
    "sae_latent_vector",
    "behaviour_vector",
    "probe_vector",
]


def with_neighbour_kinds(index: pd.DataFrame, column: str = "kind") -> pd.DataFrame:
    """``index`` plus ``next_{column}`` and ``prev_{column}``: the neighbouring steps' values in each trace."""
    if column not in index.columns:
        raise SteeringError(f"column={column!r} is not in the store index; columns: {sorted(index.columns)}")
    df = index.sort_values(["trace_id", "step_index"])
    grouped = df.groupby("trace_id", sort=False)[column]
    df = df.assign(
        **{f"next_{column}": grouped.shift(-1).fillna("none"), f"prev_{column}": grouped.shift(1).fillna("none")}
    )
    return df.loc[index.index]


def select_steps(index: pd.DataFrame, query: str | pd.Series | np.ndarray, what: str) -> pd.DataFrame:
    """Rows of ``index`` chosen by a pandas query string or a boolean mask; only steps with vectors."""
    if isinstance(query, str):
        try:
            rows = index.query(query)
        except Exception as e:  # pandas raises several types for a bad expression
            raise SteeringError(f"{what}={query!r} is not a valid query on the store index: {e}") from None
    else:
        mask = np.asarray(query, dtype=bool)
        if mask.shape != (len(index),):
            raise SteeringError(f"{what}: a mask needs {len(index)} values (one per index row), got {mask.shape}")
        rows = index[mask]
    rows = rows[rows["row"] >= 0]
    if rows.empty:
        raise SteeringError(f"{what}={query if isinstance(query, str) else 'mask'}: selects no captured steps")
    return rows


def diff_of_means(
    store,
    hook: str,
    positive: str | pd.Series | np.ndarray,
    negative: str | pd.Series | np.ndarray,
    *,
    pooling: str = "boundary",
    rows: pd.DataFrame | None = None,
    write_hook: str | None = None,
    name: str | None = None,
) -> SteeringVector:
    """mean(positive steps) − mean(negative steps) of ``hook``/``pooling`` vectors in ``store``.

    ``rows`` restricts both groups to part of the index (e.g. the training split of ``store.split()``), so
    the vector can be read on problems the sweep does not steer. The raw difference is kept (``norm="raw"``).
    """
    base = store.index if rows is None else rows
    index = with_neighbour_kinds(base) if "kind" in base.columns else base
    pos, neg = select_steps(index, positive, "positive"), select_steps(index, negative, "negative")
    mu_pos = store.tensors(hook, pooling, pos).float().mean(0)  # [d_model]
    mu_neg = store.tensors(hook, pooling, neg).float().mean(0)
    prov = {
        "source": "diff_of_means",
        "store": str(store.root),
        "read_hook": hook,
        "pooling": pooling,
        "positive": positive if isinstance(positive, str) else "mask",
        "negative": negative if isinstance(negative, str) else "mask",
        "n_positive": len(pos),
        "n_negative": len(neg),
        "n_problems": int(pd.concat([pos, neg])["problem_id"].nunique()),
        "model": store.manifest.get("model", {}).get("weights_sha256"),
    }
    return SteeringVector(
        vector=mu_pos - mu_neg, hook=write_hook or hook, name=name or "diff_of_means", provenance=prov
    )


def mean_activation_norm(store, hook: str, pooling: str = "boundary", rows: pd.DataFrame | None = None) -> float:
    """Mean L2 norm of the step vectors (for ``SteeringVector.rescaled("resid", resid_norm=...)``)."""
    x = store.tensors(hook, pooling, None if rows is None else rows[rows["row"] >= 0]).float()
    return float(x.norm(dim=-1).mean())


def _sae_hook(sae, hook: str | None) -> str:
    hook = hook or sae.hook
    if hook is None:
        raise SteeringError("hook: this SAE does not record the hook it was trained on; pass hook='blocks.L....'")
    return hook


def sae_latent_vector(sae, latent: int, *, hook: str | None = None, name: str | None = None) -> SteeringVector:
    """The decoder column ``W_dec[latent]`` of an SAE (a saved folder or an in-memory SAE) as a vector."""
    w = as_sae_weights(sae)
    latent = w.check_latent(latent)
    prov = {"source": "sae_latent", "sae": w.source, "latent": latent, "architecture": w.architecture}
    return SteeringVector(vector=w.W_dec[latent], hook=_sae_hook(w, hook), name=name or f"sae{latent}", provenance=prov)


def behaviour_vector(
    sae, latents: Sequence[int], *, behaviour: str, hook: str | None = None, name: str | None = None
) -> SteeringVector:
    """RISE's behaviour vector: the mean of the unit-norm decoder columns of a behaviour's latents.

    Choosing the latents (the columns specific to one behaviour) belongs to the SAE analysis; this takes
    its result. The vector is stored at unit norm (``norm="unit"``): alpha is then in activation units.
    """
    w = as_sae_weights(sae)
    ids = [w.check_latent(i) for i in latents]
    if not ids:
        raise SteeringError(f"latents: empty; behaviour {behaviour!r} has no specific latents to average")
    cols = w.W_dec[ids]  # [n, d_model]
    v = (cols / cols.norm(dim=-1, keepdim=True)).mean(0)
    prov = {"source": "rise_behaviour", "sae": w.source, "behaviour": behaviour, "latents": ids}
    return SteeringVector(
        vector=v / v.norm(), hook=_sae_hook(w, hook), name=name or behaviour, norm="unit", provenance=prov
    )


def probe_vector(probe, *, hook: str, name: str = "probe", probe_id: str | None = None, cls: int = 0) -> SteeringVector:
    """A linear probe's weight (a tensor/array, an sklearn model's ``coef_``, or a module's ``weight``).

    Multi-class weights pick row ``cls``. The weight lives in the space the probe read, so pass the hook
    of the step vectors it was trained on (and standardise nothing in between, or fold the scaler in).
    """
    w = probe
    for attr in ("coef_", "weight", "direction", "vector"):
        if hasattr(probe, attr):
            w = getattr(probe, attr)
            break
    w = torch.as_tensor(np.asarray(w.detach().cpu() if isinstance(w, Tensor) else w), dtype=torch.float32)
    if w.ndim == 2:
        w = w[cls]
    prov = {"source": "probe", "probe": probe_id or type(probe).__name__, "class": cls, "read_hook": hook}
    return SteeringVector(vector=w, hook=hook, name=name, provenance=prov)
