"""What the FeatureBrowser shows about one SAE latent: its ranking, top steps, activations, labels, map position.

Every function takes the latent activations of a store (:class:`workbench.sae.FeatureActivations`, from
:func:`workbench.sae.encode_store`) and returns a table or HTML; the widget only wires a latent picker to
them. The per-latent histogram is plain HTML bars (no chart needed for twenty bins).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from workbench.sae.analysis import FeatureActivations, behaviour_association, latent_auroc, top_activating

__all__ = [
    "rank_latents",
    "latent_choices",
    "latent_values",
    "histogram_html",
    "top_steps_html",
    "association_html",
    "step_top_latents",
    "map_points",
]


def rank_latents(acts: FeatureActivations, label: str, positive=None) -> pd.DataFrame:
    """Latents by how well they separate ``label`` (AUROC, best first; 1 - AUROC counts as well: a latent
    that fires on the negative class is as informative), dead latents last."""
    table = latent_auroc(acts, label, positive)
    table["separation"] = (table["auroc"] - 0.5).abs()
    live = (table["frequency_positive"] + table["frequency_negative"]) > 0
    return table.assign(live=live).sort_values(["live", "separation"], ascending=False, ignore_index=True)


def latent_choices(ranked: pd.DataFrame, limit: int = 200) -> list[tuple[str, int]]:
    """``(label, latent)`` options for a dropdown: ``latent 17 · AUROC 0.81``."""
    head = ranked.head(limit)
    return [(f"latent {int(r.latent)} · AUROC {r.auroc:.2f}", int(r.latent)) for r in head.itertuples()]


def latent_values(acts: FeatureActivations, latent: int) -> np.ndarray:
    """The latent's activation on every encoded step (zeros included)."""
    if not 0 <= latent < acts.codes.shape[1]:
        raise ValueError(f"latent={latent}: the SAE has latents 0..{acts.codes.shape[1] - 1}")
    return acts.codes.getcol(int(latent)).toarray().ravel()


def histogram_html(values: np.ndarray, bins: int = 20, width: int = 260) -> str:
    """Bars of the non-zero activations, and how often the latent fires at all."""
    active = values[values > 0]
    head = f"fires on {len(active)} of {len(values)} steps ({len(active) / max(len(values), 1):.1%})"
    if len(active) == 0:
        return f"<div class='wb-histogram'><b>activations</b><br>{head}</div>"
    counts, edges = np.histogram(active, bins=bins)
    top = counts.max()
    rows = "".join(
        f"<div style='display:flex;align-items:center;gap:6px;font-size:11px;line-height:12px'>"
        f"<span style='width:56px;text-align:right'>{lo:.2f}</span>"
        f"<span class='wb-bar' style='display:inline-block;height:10px;background:#4477AA;"
        f"width:{round(width * c / top)}px'></span><span>{c}</span></div>"
        for c, lo in zip(counts, edges[:-1], strict=True)
    )
    return f"<div class='wb-histogram'><b>activations (non-zero)</b><br>{head}{rows}</div>"


def top_steps_html(acts: FeatureActivations, latent: int, k: int = 8, labels: tuple[str, ...] = ()) -> str:
    """The ``k`` steps where the latent is most active: activation, text, kind and the chosen labels."""
    cols = ["text", "kind", *[c for c in labels if c in acts.steps.columns and c not in ("text", "kind")]]
    top = top_activating(acts, latents=[latent], k=k, columns=[c for c in cols if c in acts.steps.columns])
    if top.empty:
        return "<div class='wb-top-steps'><b>top steps</b><br><i>never active</i></div>"
    shown = ["activation", "trace_id", "step_index", *[c for c in cols if c in top.columns]]
    head = "".join(f"<th style='text-align:left;padding-right:8px'>{html.escape(c)}</th>" for c in shown)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding-right:8px'>{html.escape(_fmt(r[c]))}</td>" for c in shown) + "</tr>"
        for _, r in top.iterrows()
    )
    return (
        f"<div class='wb-top-steps'><b>top steps of latent {latent}</b>"
        f"<table style='font-size:12px;font-family:monospace'><tr>{head}</tr>{body}</table></div>"
    )


def association_html(acts: FeatureActivations, latent: int, label: str) -> str:
    """Steps whose strongest latent is this one, by ``label`` value (RISE's behaviour association)."""
    assoc = behaviour_association(acts, label)
    rows = assoc[assoc["latent"] == latent]
    if rows.empty:
        body = "<tr><td><i>no step has this as its strongest latent</i></td></tr>"
    else:
        body = "".join(
            f"<tr><td style='padding-right:8px'>{html.escape(str(r.behaviour))}</td><td>{r.n_steps}</td>"
            f"<td>{r.share:.0%}</td></tr>"
            for r in rows.itertuples()
        )
    return (
        f"<div class='wb-association'><b>{html.escape(label)} of steps led by this latent</b>"
        f"<table style='font-size:12px'>{body}</table></div>"
    )


def step_top_latents(acts: FeatureActivations, k: int = 3) -> pd.DataFrame:
    """The ``k`` most active latents of every encoded step: ``trace_id, step_index, latent, activation``
    (what the TraceViewer shows for a selected step); steps with no active latent have no rows."""
    csr = acts.codes.tocsr()
    rows = []
    for i in range(csr.shape[0]):
        start, end = csr.indptr[i], csr.indptr[i + 1]
        data, cols = csr.data[start:end], csr.indices[start:end]
        for j in np.argsort(-data, kind="stable")[:k]:
            if data[j] > 0:
                rows.append((i, int(cols[j]), float(data[j])))
    df = pd.DataFrame(rows, columns=["row", "latent", "activation"])
    keys = acts.steps[["trace_id", "step_index"]].iloc[df["row"].to_numpy()].reset_index(drop=True)
    return pd.concat([keys, df[["latent", "activation"]]], axis=1)


def map_points(points: pd.DataFrame, latent: int) -> pd.DataFrame:
    """Decoder-map points (:func:`workbench.sae.decoder_map`) with the chosen latent marked in ``behaviour``."""
    out = points.copy()
    chosen = out["latent"] == latent
    out["behaviour"] = np.where(chosen, f"latent {latent}", "other latents")
    return pd.concat([out[~chosen], out[chosen]], ignore_index=True)  # drawn last: on top of the others


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float | np.floating) else str(v)
