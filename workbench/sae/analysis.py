"""Reading step-SAE latents: encodings of store rows and tidy tables about what each latent means.

Every function is pure (inputs in, DataFrame out) so notebooks and charts can use them directly:

- :func:`encode_store`: sparse latent activations of store rows, encoded in memory-bounded batches;
- :func:`evaluate_sae`: FVU, L0 and dead fraction on any rows (e.g. held-out problems);
- :func:`top_activating`: the steps that activate each latent most, with their text and labels;
- :func:`latent_auroc`: ROC-AUC of each latent's activation against a label (scikit-learn);
- :func:`behaviour_association` / :func:`behaviour_vectors`: RISE's link of each step to its most active
  latent, the latents specific to one behaviour, and the behaviour vectors (mean of their unit-norm
  decoder columns);
- :func:`decoder_map` / :func:`behaviour_silhouette` / :func:`silhouette_by_layer`: decoder geometry
  (UMAP with cosine when ``umap-learn`` is installed, else PCA) and how well behaviour groups separate;
- :func:`activation_frequency` / :func:`frequency_histogram`: how often each latent fires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from jaxtyping import Float
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score, silhouette_score
from torch import Tensor

from workbench.sae.metrics import RunningFVU
from workbench.sae.ssae import context_vectors
from workbench.sae.train import TrainedSAE, as_store, select_rows
from workbench.store import StepStore

__all__ = [
    "FeatureActivations",
    "BehaviourVectors",
    "encode_store",
    "evaluate_sae",
    "top_activating",
    "latent_auroc",
    "behaviour_association",
    "behaviour_vectors",
    "decoder_map",
    "behaviour_silhouette",
    "silhouette_by_layer",
    "activation_frequency",
    "frequency_histogram",
    "layer_of",
]


class FeatureActivations(NamedTuple):
    """Latent activations of some store rows."""

    steps: pd.DataFrame
    """The encoded steps (rows of ``store.index``, in encoding order, index reset)."""
    codes: sp.csr_matrix
    """``[step, d_sae]`` sparse activations (float32)."""


def _chunks(store: StepStore, trained: TrainedSAE, df: pd.DataFrame, batch_size: int):
    for i in range(0, len(df), batch_size):
        part = df.iloc[i : i + batch_size]
        x = store.tensors(trained.hook, trained.pooling, part).float()
        ctx = None
        if getattr(trained.sae, "needs_context", False):
            ctx = context_vectors(store, trained.hook, trained.pooling, part, trained.config.context)
        yield x, ctx


def encode_store(
    trained: TrainedSAE, store: StepStore | str, *, rows: pd.DataFrame | None = None, batch_size: int = 4096
) -> FeatureActivations:
    """Encode ``rows`` (default: every captured step) of the SAE's hook and pooling, ``batch_size`` at a time."""
    st = as_store(store)
    df = select_rows(st, trained.hook, trained.pooling, rows).reset_index(drop=True)
    parts = []
    for x, ctx in _chunks(st, trained, df, batch_size):
        acts = trained.sae.encode(x, ctx) if ctx is not None else trained.sae.encode(x)
        parts.append(sp.csr_matrix(acts.float().cpu().numpy()))
    return FeatureActivations(df, sp.vstack(parts, format="csr"))


def evaluate_sae(
    trained: TrainedSAE, store: StepStore | str, *, rows: pd.DataFrame | None = None, batch_size: int = 4096
) -> pd.DataFrame:
    """One row: ``hook, arch, width, n_steps, fvu, l0, dead_fraction`` (dead = never active on these rows)."""
    st = as_store(store)
    df = select_rows(st, trained.hook, trained.pooling, rows)
    running, active, nnz = RunningFVU(), None, 0
    for x, ctx in _chunks(st, trained, df, batch_size):
        acts = trained.sae.encode(x, ctx) if ctx is not None else trained.sae.encode(x)
        x_hat = trained.sae.decode(acts, ctx) if ctx is not None else trained.sae.decode(acts)
        running.update(x, x_hat)
        fired = (acts != 0).any(0)
        active = fired if active is None else active | fired
        nnz += int((acts != 0).sum())
    return pd.DataFrame(
        [{"hook": trained.hook, "arch": trained.config.arch, "width": trained.config.width, "n_steps": len(df),
          "fvu": running.value, "l0": nnz / len(df), "dead_fraction": float(1 - active.double().mean())}]
    )  # fmt: skip


def _label_columns(steps: pd.DataFrame, columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    return [c for c in steps.columns if c.startswith("label_") or c in ("text", "kind")]


def top_activating(
    acts: FeatureActivations, *, latents: Sequence[int] | None = None, k: int = 10, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The ``k`` most activating steps of each latent: ``latent, rank, activation, trace_id, step_index`` and
    ``columns`` (default: ``text`` and every ``label_*`` column). Steps where the latent is 0 are left out."""
    csc = acts.codes.tocsc()
    keep = ["trace_id", "step_index", *[c for c in _label_columns(acts.steps, columns) if c in acts.steps.columns]]
    frames = []
    for j in range(csc.shape[1]) if latents is None else latents:
        col = csc.getcol(int(j))
        order = np.argsort(-col.data, kind="stable")[:k]
        rows = col.indices[order]
        part = acts.steps.iloc[rows][keep].reset_index(drop=True)
        part.insert(0, "activation", col.data[order])
        part.insert(0, "rank", np.arange(len(rows)))
        part.insert(0, "latent", int(j))
        frames.append(part)
    if not frames:
        return pd.DataFrame(columns=["latent", "rank", "activation", *keep])
    return pd.concat(frames, ignore_index=True)


def _target(steps: pd.DataFrame, label: str, positive) -> tuple[np.ndarray, np.ndarray]:
    if label not in steps.columns:
        raise KeyError(f"label={label!r} is not a column of the encoded steps; columns: {list(steps.columns)}")
    col = steps[label]
    valid = col.notna().to_numpy()
    y = (col == positive).to_numpy() if positive is not None else col.fillna(False).astype(bool).to_numpy()
    return y, valid


def latent_auroc(acts: FeatureActivations, label: str, positive=None) -> pd.DataFrame:
    """ROC-AUC of every latent's activation for ``label == positive`` (or a boolean ``label``), best first.

    Columns: ``latent, label, positive, auroc, n_positive, n_negative, frequency_positive,
    frequency_negative`` (how often the latent fires on each side). Rows with a missing label are left out.
    A latent that never fires on these rows scores 0.5 (what scikit-learn gives a constant score).
    """
    y, valid = _target(acts.steps, label, positive)
    y = y[valid]
    if y.all() or not y.any():
        raise ValueError(f"label={label!r} positive={positive!r}: need both positive and negative steps")
    csc = acts.codes[np.nonzero(valid)[0]].tocsc()
    fires = (csc != 0).astype(np.float64)
    freq_pos = np.asarray(fires[y].mean(0)).ravel()
    freq_neg = np.asarray(fires[~y].mean(0)).ravel()
    auroc = np.full(csc.shape[1], 0.5)
    for j in np.nonzero(csc.getnnz(axis=0))[0]:
        auroc[j] = roc_auc_score(y, csc.getcol(j).toarray().ravel())
    out = pd.DataFrame(
        {"latent": np.arange(csc.shape[1]), "label": label, "positive": str(positive), "auroc": auroc,
         "n_positive": int(y.sum()), "n_negative": int((~y).sum()),
         "frequency_positive": freq_pos, "frequency_negative": freq_neg}
    )  # fmt: skip
    return out.sort_values(["auroc", "latent"], ascending=[False, True], ignore_index=True)


def behaviour_association(acts: FeatureActivations, label: str) -> pd.DataFrame:
    """RISE's association: link each step to its most active latent, then count behaviours per latent.

    One row per (latent, behaviour): ``latent, behaviour, n_steps`` (steps of that behaviour whose top latent
    it is), ``latent_steps`` (all steps whose top latent it is), ``share``, ``n_behaviours`` and
    ``specific`` (True when all of the latent's steps share one behaviour). Steps with no active latent or
    no label are left out.
    """
    codes = acts.codes
    has = codes.getnnz(axis=1) > 0
    valid = acts.steps[label].notna().to_numpy() & has
    top = np.asarray(codes.argmax(axis=1)).ravel()
    df = pd.DataFrame({"latent": top[valid], "behaviour": acts.steps[label].to_numpy()[valid]})
    counts = df.groupby(["latent", "behaviour"]).size().rename("n_steps").reset_index()
    totals = counts.groupby("latent")["n_steps"].agg(latent_steps="sum", n_behaviours="size").reset_index()
    out = counts.merge(totals, on="latent")
    out["share"] = out["n_steps"] / out["latent_steps"]
    out["specific"] = out["n_behaviours"] == 1
    cols = ["latent", "behaviour", "n_steps", "latent_steps", "share", "n_behaviours", "specific"]
    return out[cols].sort_values(["behaviour", "n_steps"], ascending=[True, False], ignore_index=True)


class BehaviourVectors(NamedTuple):
    """RISE behaviour vectors and what they are made of."""

    table: pd.DataFrame
    """``behaviour, n_latents, latents, norm``."""
    vectors: dict[str, Tensor]
    """Behaviour -> ``[d_model]`` mean of the unit-norm decoder columns specific to it."""


def behaviour_vectors(decoder: Float[Tensor, "d_sae d_model"], association: pd.DataFrame) -> BehaviourVectors:
    """Mean unit-norm decoder column per behaviour over the latents specific to it (shared latents dropped)."""
    unit = torch.nn.functional.normalize(decoder.detach().float().cpu(), dim=-1)
    spec = association[association["specific"]]
    rows, vectors = [], {}
    for behaviour, part in spec.groupby("behaviour", sort=True):
        latents = sorted(int(j) for j in part["latent"])
        vectors[str(behaviour)] = unit[latents].mean(0)
        rows.append({"behaviour": str(behaviour), "n_latents": len(latents), "latents": latents,
                     "norm": float(vectors[str(behaviour)].norm())})  # fmt: skip
    return BehaviourVectors(pd.DataFrame(rows, columns=["behaviour", "n_latents", "latents", "norm"]), vectors)


def _specific_labels(d_sae: int, association: pd.DataFrame | None) -> np.ndarray:
    labels = np.full(d_sae, "unassigned", dtype=object)
    if association is not None:
        shared = association.loc[~association["specific"], "latent"].unique()
        labels[shared] = "shared"
        spec = association[association["specific"]]
        labels[spec["latent"].to_numpy()] = spec["behaviour"].astype(str).to_numpy()
    return labels


def decoder_map(
    decoder: Float[Tensor, "d_sae d_model"],
    association: pd.DataFrame | None = None,
    *,
    method: str = "auto",
    seed: int = 0,
) -> pd.DataFrame:
    """2-D map of the decoder columns: ``latent, x, y, method, behaviour`` (the behaviour a latent is
    specific to, ``shared`` or ``unassigned``). ``auto`` uses UMAP with cosine distance when ``umap-learn``
    is installed, else PCA of the unit-normalised columns."""
    unit = torch.nn.functional.normalize(decoder.detach().double().cpu(), dim=-1).numpy()
    if method == "auto":
        try:
            import umap

            method = "umap"
        except ImportError:
            method = "pca"
    if method == "umap":
        import umap

        xy = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(unit)
    elif method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(unit)
    else:
        raise ValueError(f"method={method!r}: use 'auto', 'umap' or 'pca'")
    return pd.DataFrame({"latent": np.arange(len(unit)), "x": xy[:, 0], "y": xy[:, 1], "method": method,
                         "behaviour": _specific_labels(len(unit), association)})  # fmt: skip


def behaviour_silhouette(decoder: Float[Tensor, "d_sae d_model"], association: pd.DataFrame) -> float:
    """Silhouette score (cosine distance) of the decoder columns specific to each behaviour, grouped by
    behaviour; NaN when fewer than two behaviours have specific latents."""
    spec = association[association["specific"]].drop_duplicates("latent")
    groups = spec["behaviour"].astype(str).to_numpy()
    if len(set(groups)) < 2 or len(groups) <= len(set(groups)):
        return float("nan")
    cols = decoder.detach().double().cpu().numpy()[spec["latent"].to_numpy()]
    return float(silhouette_score(cols, groups, metric="cosine"))


def layer_of(hook: str) -> int | None:
    """The block index in a TransformerLens hook name (``blocks.3.hook_resid_post`` -> 3)."""
    m = re.match(r"blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else None


def silhouette_by_layer(
    saes: Mapping[str, TrainedSAE], activations: Mapping[str, FeatureActivations], label: str
) -> pd.DataFrame:
    """Per hook: ``hook, layer, silhouette, n_specific_latents, n_behaviours`` of behaviour groups."""
    rows = []
    for hook, trained in saes.items():
        assoc = behaviour_association(activations[hook], label)
        spec = assoc[assoc["specific"]]
        rows.append({"hook": hook, "layer": layer_of(hook), "silhouette": behaviour_silhouette(trained.decoder, assoc),
                     "n_specific_latents": int(spec["latent"].nunique()),
                     "n_behaviours": int(spec["behaviour"].nunique())})  # fmt: skip
    return pd.DataFrame(rows, columns=["hook", "layer", "silhouette", "n_specific_latents", "n_behaviours"])


def activation_frequency(acts: FeatureActivations) -> pd.DataFrame:
    """Per latent: ``latent, frequency`` (share of steps where it fires), ``log10_frequency`` (-inf if never)."""
    freq = acts.codes.getnnz(axis=0) / max(1, acts.codes.shape[0])
    with np.errstate(divide="ignore"):
        return pd.DataFrame({"latent": np.arange(len(freq)), "frequency": freq, "log10_frequency": np.log10(freq)})


def frequency_histogram(freq: pd.DataFrame, *, bins: int = 30) -> pd.DataFrame:
    """Histogram of ``log10_frequency``: ``bin_start, bin_end, count``; latents that never fire are one extra
    row with ``bin_start = bin_end = -inf``."""
    finite = freq["log10_frequency"].to_numpy()
    alive = finite[np.isfinite(finite)]
    out = []
    if len(alive):
        counts, edges = np.histogram(alive, bins=bins)
        pairs = zip(edges[:-1], edges[1:], counts, strict=True)
        out = [{"bin_start": a, "bin_end": b, "count": int(c)} for a, b, c in pairs]
    n_dead = int((~np.isfinite(finite)).sum())
    if n_dead:
        out.append({"bin_start": -np.inf, "bin_end": -np.inf, "count": n_dead})
    return pd.DataFrame(out, columns=["bin_start", "bin_end", "count"])
