"""Steering sweeps: alpha grid x problems x seeds -> steered toy traces -> one tidy row per trace.

:func:`run_sweep` samples the model on toy problems under each intervention strength, labels every trace
with the checker and the keyword labeller, and returns a DataFrame with one row per trace. Every sweep
carries its control in the same table: a random direction of the same norm, at the same hook, with the
same alpha grid, positions and sampling seeds (``direction == "random"``). Where the vector was read
(``source``, ``read_hook``, ``pooling``) and where it is written (``hook``, ``positions``) are columns, so
no number is separated from what produced it.

:func:`summarise` turns the rows into a tidy summary, one row per (vector, direction, edit, alpha, metric)
with a bootstrap confidence interval over *problems* (traces of one problem resampled together). Rates are
ratios of sums (``wait`` lines per compute step over all resampled traces), as the model card counts them.

Columns of the per-trace table (:data:`TRACE_COLUMNS`): ``vector``, ``direction`` (``steered``/``random``),
``edit``, ``alpha``, ``seed``, ``problem_id``, ``trace_id``, ``hook``, ``positions``, ``source``,
``read_hook``, ``pooling``, ``vector_norm``, ``n_tokens``, ``n_steps``, ``n_compute``, ``n_wait``,
``n_check``, ``n_garbled``, ``n_fresh_error``, ``n_reflection_kw``, ``n_verification_kw``, ``wait_rate``,
``check_rate``, ``wrong_step_rate``, ``answer_correct``, ``finish``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.labels import generate_toy_traces, keyword_labels
from workbench.steering.interventions import Additive, Projection, steer
from workbench.steering.positions import Positions
from workbench.steering.vectors import SteeringError, SteeringVector, random_like
from workbench.traces import GenerationConfig

__all__ = ["SweepConfig", "run_sweep", "trace_rows", "summarise", "METRICS", "TRACE_COLUMNS", "EDITS"]

EDITS = ("additive", "projection")

#: metric -> (numerator column, denominator column or None for a mean over traces)
METRICS: dict[str, tuple[str, str | None]] = {
    "wait_rate": ("n_wait", "n_compute"),
    "check_rate": ("n_check", "n_compute"),
    "wrong_step_rate": ("n_fresh_error", "n_compute"),
    "accuracy": ("answer_correct", None),
    "length": ("n_tokens", None),
}

TRACE_COLUMNS = (
    "vector", "direction", "edit", "alpha", "seed", "problem_id", "trace_id", "hook", "positions", "source",
    "read_hook", "pooling", "vector_norm", "n_tokens", "n_steps", "n_compute", "n_wait", "n_check", "n_garbled",
    "n_fresh_error", "n_reflection_kw", "n_verification_kw", "wait_rate", "check_rate", "wrong_step_rate",
    "answer_correct", "finish",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """An alpha grid of one edit at one set of positions, sampled over problems and seeds, with a control."""

    alphas: tuple[float, ...] = (-1.0, 0.0, 0.5, 1.0, 2.0)
    """Edit strengths (additive: units of the vector's norm; projection: 1 removes the component)."""
    edit: str = "additive"
    """``additive`` (h + alpha v) or ``projection`` (h - alpha u u^T h)."""
    positions: Positions = field(default_factory=lambda: Positions(kind="boundary", generated_only=True))
    """Tokens edited; default: the step-boundary tokens of the generated text (not the prompt)."""
    seeds: tuple[int, ...] = (0,)
    """Sampling seeds; every (alpha, direction) is sampled under each."""
    control: bool = True
    """Add a random direction of equal norm at the same hook (same alphas, positions, seeds)."""
    control_seed: int = 0
    """Seed of the random control direction."""
    temperature: float = 1.0
    """Sampling temperature."""
    max_new_tokens: int = 160
    """Longest completion."""
    batch_size: int = 32
    """Sequences per generate call."""
    progress: bool = True
    """Show a progress bar over (direction, alpha, seed) cells."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.alphas:
            raise SteeringError("alphas: empty; give at least one strength, e.g. --alphas -1 0 1 2")
        if not self.seeds:
            raise SteeringError("seeds: empty; give at least one sampling seed")
        if self.edit not in EDITS:
            raise SteeringError(f"edit={self.edit!r}: choose one of {EDITS}")
        if self.temperature < 0 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise SteeringError("temperature >= 0, max_new_tokens >= 1 and batch_size >= 1 are required")

    def to_dict(self) -> dict:
        return {**asdict(self), "positions": self.positions.describe()}


def trace_rows(traces, *, info: dict) -> pd.DataFrame:
    """One row per trace: checker counts and rates, keyword counts, and the sweep cell's ``info``."""
    kw = keyword_labels(traces)
    rows = []
    for t in traces:
        kinds = [s.labels.get("kind", s.kind) for s in t.steps]
        n_compute = kinds.count("compute")
        fresh = sum(k == "compute" and not s.labels.get("logical", True) for k, s in zip(kinds, t.steps, strict=True))
        flags = [kw.get((t.trace_id, s.index), {}) for s in t.steps]
        rows.append(
            info
            | {
                "problem_id": t.problem_id,
                "trace_id": t.trace_id,
                "n_tokens": int(t.generation.get("n_tokens", 0)),
                "n_steps": len(t.steps),
                "n_compute": n_compute,
                "n_wait": kinds.count("wait"),
                "n_check": kinds.count("check"),
                "n_garbled": kinds.count("garbled"),
                "n_fresh_error": int(fresh),
                "n_reflection_kw": sum(bool(f.get("reflection")) for f in flags),
                "n_verification_kw": sum(bool(f.get("verification")) for f in flags),
                "answer_correct": bool(t.answer_correct),
                "finish": t.generation.get("finish", ""),
            }
        )
    df = pd.DataFrame(rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in ("wait_rate", "check_rate", "wrong_step_rate"):
            num, den = METRICS[name]
            df[name] = np.where(df[den] > 0, df[num] / df[den].where(df[den] > 0, 1), np.nan)
    return df


def _intervention(cfg: SweepConfig, vec: SteeringVector, alpha: float):
    cls = Additive if cfg.edit == "additive" else Projection
    return cls(vector=vec, alpha=alpha, positions=cfg.positions)


def run_sweep(model, vectors: SteeringVector | Sequence[SteeringVector], problems, config: SweepConfig) -> pd.DataFrame:
    """Steered traces for every vector (and its random control) x alpha x seed; one row per trace."""
    vecs = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    if not vecs or not problems:
        raise SteeringError("vectors and problems must be non-empty")
    for v in vecs:
        v.check_model(model)  # fail before any sampling
    cells = []
    for v in vecs:
        cells.append((v, "steered", v))
        if config.control:
            cells.append((v, "random", random_like(v, seed=config.control_seed)))
    grid = [(c, a, s) for c in cells for a in config.alphas for s in config.seeds]
    parts = []
    for (base, direction, vec), alpha, seed in tqdm(grid, desc="sweep", disable=not config.progress):
        gen = GenerationConfig(
            temperature=config.temperature,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            seed=seed,
        )
        with steer(model, _intervention(config, vec, alpha)):
            traces = generate_toy_traces(model, problems, config=gen, progress=False)
        prov = base.provenance
        info = {
            "vector": base.name, "direction": direction, "edit": config.edit, "alpha": alpha, "seed": seed,
            "hook": vec.hook, "positions": config.positions.kind, "source": prov.get("source", ""),
            "read_hook": prov.get("read_hook", base.hook), "pooling": prov.get("pooling", ""),
            "vector_norm": vec.scale,
        }  # fmt: skip
        parts.append(trace_rows(traces, info=info))
    df = pd.concat(parts, ignore_index=True)[list(TRACE_COLUMNS)]
    df.attrs["sweep"] = config.to_dict() | {"vectors": [v.to_json() for v in vecs]}
    return df


def _bootstrap(num: np.ndarray, den: np.ndarray, n_boot: int, rng) -> tuple[float, float, float]:
    """sum(num)/sum(den) and its 95% percentile interval over problems resampled with replacement."""
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))  # [boot, problem]
    point = num.sum() / den.sum() if den.sum() else np.nan
    d = den[idx].sum(1)
    boots = np.where(d > 0, num[idx].sum(1) / np.where(d > 0, d, 1), np.nan)
    lo, hi = np.nanpercentile(boots, [2.5, 97.5]) if np.isfinite(boots).any() else (np.nan, np.nan)
    return float(point), float(lo), float(hi)


def summarise(
    rows: pd.DataFrame, *, metrics: Sequence[str] = tuple(METRICS), n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Tidy summary: one row per (vector, direction, edit, alpha, metric) with a bootstrap CI over problems.

    Columns: ``vector, direction, edit, alpha, metric, value, lo, hi, n_traces, n_problems``.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise SteeringError(f"metrics: {unknown} unknown; choose from {list(METRICS)}")
    rng = np.random.default_rng(seed)
    out = []
    keys = ["vector", "direction", "edit", "alpha"]
    for key, g in rows.groupby(keys, sort=True):
        # one row per problem: traces of the same problem (seeds) are resampled together
        cols = sorted({c for m in metrics for c in METRICS[m] if c is not None})
        per = g.groupby("problem_id")[cols].sum()
        counts = g.groupby("problem_id").size().to_numpy()
        for m in metrics:
            num_col, den_col = METRICS[m]
            num = per[num_col].to_numpy(dtype=float)
            # a mean over traces is a ratio too: the sum over a problem's traces over their count
            den = per[den_col].to_numpy(dtype=float) if den_col else counts.astype(float)
            value, lo, hi = _bootstrap(num, den, n_boot, rng)
            out.append(
                dict(zip(keys, key, strict=True))
                | {"metric": m, "value": value, "lo": lo, "hi": hi, "n_traces": len(g), "n_problems": len(per)}
            )
    return pd.DataFrame(out)
