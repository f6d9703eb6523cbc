"""Small tidy tables that charts draw and the report prints: curve points, key-number tables.

Pure pandas / scikit-learn transformations of results the analysis packages return; nothing here draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import auc, precision_recall_curve, roc_curve

__all__ = ["curve_points"]


def curve_points(
    frame: pd.DataFrame, label: str, scores: Sequence[str] | Mapping[str, str], *, positive: bool = True
) -> pd.DataFrame:
    """ROC and PR curve points of several scorers on the same steps, for :func:`charts.pr_roc_curves`.

    ``frame`` has one row per step, the boolean ``label`` column (positive class: ``label == positive``)
    and one column per scorer (higher = more likely positive). ``scores`` names the columns, or maps a
    display name to each. Returns ``method``, ``curve`` (``roc``/``pr``), ``x``, ``y``, ``auc``.
    """
    named = dict(scores) if isinstance(scores, Mapping) else {s: s for s in scores}
    missing = [c for c in [label, *named.values()] if c not in frame.columns]
    if missing:
        raise ValueError(f"curve_points: columns {missing} missing (have {list(frame.columns)})")
    parts = []
    for name, col in named.items():
        d = frame[[label, col]].dropna()
        y = d[label].astype(bool).to_numpy() == positive
        if y.all() or not y.any():
            raise ValueError(f"curve_points: label {label!r} has one class only among steps scored by {col!r}")
        s = d[col].astype(float).to_numpy()
        fpr, tpr, _ = roc_curve(y, s)
        prec, rec, _ = precision_recall_curve(y, s)
        parts.append(pd.DataFrame({"method": name, "curve": "roc", "x": fpr, "y": tpr, "auc": auc(fpr, tpr)}))
        parts.append(pd.DataFrame({"method": name, "curve": "pr", "x": rec, "y": prec, "auc": auc(rec, prec)}))
    out = pd.concat(parts, ignore_index=True)
    return out[np.isfinite(out["x"]) & np.isfinite(out["y"])].reset_index(drop=True)
