"""Probe data: targets from any index column, problem-level splits, and standardisation fitted on train only.

A target is any column of a store's index (checker labels are ``label_*``; soft labels and Φ arrive through
``StepStore.add_labels``). Its task is inferred from the dtype — bool: binary, text: multiclass, numbers:
regression — or given. Rows whose target is null are dropped (and say so through ``Target.keep``).
:func:`derived_columns` adds two targets SSAE probes for: the step's length in tokens and the first
character of the next step (for the embedded model's character tokenizer, its first token).

Splits are by problem, never by step (``docs/methods.md``): :meth:`StepStore.split` hashes problem ids, and
:func:`grouped_folds` gives grouped cross-validation folds. :func:`assert_disjoint` refuses splits that
share a problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from sklearn.model_selection import GroupKFold
from torch import Tensor

__all__ = [
    "TASKS",
    "Target",
    "make_target",
    "derived_columns",
    "grouped_folds",
    "assert_disjoint",
    "Standardizer",
]

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True, kw_only=True)
class Target:
    """A probe target: one value per kept row of the index it was made from."""

    column: str
    """The index column it comes from."""
    task: str
    """binary | multiclass | regression."""
    values: np.ndarray
    """Binary: 0/1 floats (1 = ``positive``); multiclass: class ids; regression: floats."""
    classes: tuple
    """Multiclass: the class of each id; binary: (not positive, positive); regression: empty."""
    keep: np.ndarray
    """Boolean mask over the index rows: True where the target is defined."""


def make_target(index: pd.DataFrame, column: str, *, task: str | None = None, positive=True) -> Target:
    """The target ``column`` of ``index``; ``positive`` is the value counted as 1 for binary targets.

    For "is this step wrong", take ``label_logical`` (fresh errors) or ``label_correct`` with ``positive=False``.
    """
    if column not in index.columns:
        labels = [c for c in index.columns if c.startswith("label_") or c.startswith("logit_")]
        raise KeyError(
            f"target column {column!r} is not in the index; label columns: {labels}. "
            "Add labels with StepStore.add_labels or pick one of these"
        )
    if task is not None and task not in TASKS:
        raise ValueError(f"task={task!r}: choose one of {TASKS}")
    col = index[column]
    keep = col.notna().to_numpy()
    vals = col[keep]
    if len(vals) == 0:
        raise ValueError(f"target column {column!r} has no values in the selected rows")
    if task is None:
        if pd.api.types.is_bool_dtype(vals) or set(pd.unique(vals)) <= {True, False}:
            task = "binary"
        elif pd.api.types.is_numeric_dtype(vals):
            task = "regression"
        else:
            task = "multiclass"
    if task == "binary":
        y = (vals.to_numpy() == positive).astype(np.float32)
        return Target(column=column, task=task, values=y, classes=(f"not {positive}", positive), keep=keep)
    if task == "multiclass":
        classes, ids = np.unique(vals.astype(str).to_numpy(), return_inverse=True)
        return Target(column=column, task=task, values=ids.astype(np.int64), classes=tuple(classes), keep=keep)
    return Target(column=column, task=task, values=vals.to_numpy(dtype=np.float32), classes=(), keep=keep)


def derived_columns(index: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``index`` with ``step_length`` (tokens) and ``next_first_char`` (null on a trace's last step)."""
    df = index.copy()
    df["step_length"] = (df["token_end"] - df["token_start"]).astype(np.float32)
    order = df.sort_values(["trace_id", "step_index"]).index
    first = df.loc[order, "text"].str[:1].where(lambda s: s.str.len() > 0)
    nxt = first.groupby(df.loc[order, "trace_id"].to_numpy()).shift(-1)
    df["next_first_char"] = nxt.reindex(df.index)
    return df


def grouped_folds(index: pd.DataFrame, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_positions, test_positions)`` per fold, grouped by ``problem_id`` (scikit-learn's GroupKFold)."""
    groups = index["problem_id"].astype(str).to_numpy()
    if len(np.unique(groups)) < n_folds:
        raise ValueError(f"n_folds={n_folds}: only {len(np.unique(groups))} problems; use fewer folds")
    return list(GroupKFold(n_splits=n_folds).split(np.zeros(len(groups)), groups=groups))


def assert_disjoint(**splits: pd.DataFrame) -> None:
    """Raise if any problem appears in two of the named splits (a step-level split leaks the problem)."""
    seen: dict[str, str] = {}
    for name, df in splits.items():
        for p in df["problem_id"].astype(str).unique():
            if p in seen and seen[p] != name:
                raise ValueError(
                    f"problem {p!r} is in both the {seen[p]!r} and the {name!r} split; split by problem "
                    "(StepStore.split or grouped_folds), never by step"
                )
            seen[p] = name


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and scale fitted on training rows only (any leading batch dims, e.g. layers)."""

    mean: Float[Tensor, "... 1 d"]
    scale: Float[Tensor, "... 1 d"]

    @classmethod
    def fit(cls, x: Float[Tensor, "... n d"], eps: float = 1e-6) -> Standardizer:
        mean = x.mean(dim=-2, keepdim=True)
        return cls(mean, x.std(dim=-2, keepdim=True, unbiased=False).clamp_min(eps))

    def __call__(self, x: Float[Tensor, "... n d"]) -> Float[Tensor, "... n d"]:
        return (x - self.mean) / self.scale

    def to(self, device) -> Standardizer:
        return Standardizer(self.mean.to(device), self.scale.to(device))

    @classmethod
    def identity(cls, x: Float[Tensor, "... n d"]) -> Standardizer:
        shape = (*x.shape[:-2], 1, x.shape[-1])
        return cls(torch.zeros(shape, dtype=x.dtype), torch.ones(shape, dtype=x.dtype))
