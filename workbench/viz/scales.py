"""Colour scales chosen by the data, shared by the Altair charts and the HTML step rendering.

A column of labels is *categorical* (booleans, strings, few integers); a numeric score is *diverging*
when it takes both signs (centred on 0, e.g. SPAE's Φ ∈ [−1, 1] or a signed probe logit) and
*sequential* otherwise (a probability, a rollout soft label). Both renderers use the same choice so a
step strip and the coloured step text of the same score read alike.

Colours are Paul Tol's colour-blind-safe schemes (bright for categories, sunset-like blue–white–red for
diverging, light-yellow→dark-blue for sequential). HTML spans set both background and text colour (the
text black or white by contrast), so they read the same in light and dark notebook themes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL",
    "ScaleChoice",
    "choose_scale",
    "color_for",
    "text_color",
]

CATEGORICAL = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB", "#000000")
"""Tol's 'bright' qualitative palette (colour-blind safe)."""
BOOL_COLORS = {True: "#4477AA", False: "#EE6677"}
"""Booleans: blue for True, red for False (a wrong step, ``correct=False``, is red)."""
MISSING = "#DDDDDD"
DIVERGING = ("#2166AC", "#F7F7F7", "#B2182B")  # low (blue), middle, high (red)
SEQUENTIAL = ("#FFFFE5", "#41AB5D", "#08306B")  # low (pale), middle, high (dark)
MAX_CATEGORIES = 12


@dataclass(frozen=True, kw_only=True)
class ScaleChoice:
    """Which colour scale suits a column, and its domain."""

    kind: Literal["categorical", "diverging", "sequential"]
    """Categorical for labels, diverging for signed scores, sequential for non-negative scores."""
    domain: tuple
    """Categories in display order, or ``(low, high)`` for numeric scales (diverging: symmetric about 0)."""

    @property
    def numeric(self) -> bool:
        return self.kind != "categorical"


def choose_scale(values: pd.Series) -> ScaleChoice:
    """Pick categorical / diverging / sequential from the values of one column (missing values ignored)."""
    s = pd.Series(values).dropna()
    if s.empty:
        return ScaleChoice(kind="categorical", domain=())
    is_bool = pd.api.types.is_bool_dtype(s) or all(isinstance(v, (bool, np.bool_)) for v in s.unique())
    integer_few = pd.api.types.is_integer_dtype(s) and s.nunique() <= MAX_CATEGORIES
    if is_bool or integer_few or not pd.api.types.is_numeric_dtype(s):
        cats = sorted(s.unique(), key=lambda v: (not isinstance(v, bool), str(v)))
        if is_bool:
            cats = [c for c in (True, False) if c in set(s.unique())]
        return ScaleChoice(kind="categorical", domain=tuple(cats))
    lo, hi = float(s.min()), float(s.max())
    if lo < 0 < hi:
        m = max(-lo, hi)
        return ScaleChoice(kind="diverging", domain=(-m, m))
    if lo == hi:
        hi = lo + 1.0
    return ScaleChoice(kind="sequential", domain=(lo, hi))


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(c))) for c in np.clip(rgb, 0, 255))
    return f"#{r:02X}{g:02X}{b:02X}"


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _ramp(stops: tuple[str, str, str], t: float) -> str:
    t = min(1.0, max(0.0, t))
    a, b, u = (stops[0], stops[1], t * 2) if t <= 0.5 else (stops[1], stops[2], t * 2 - 1)
    return _hex(_rgb(a) + (_rgb(b) - _rgb(a)) * u)


def color_for(value, scale: ScaleChoice) -> str:
    """The background colour of one value under ``scale`` (grey when missing or unknown)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return MISSING
    if scale.kind == "categorical":
        if isinstance(value, (bool, np.bool_)) and set(scale.domain) <= {True, False}:
            return BOOL_COLORS[bool(value)]
        if value not in scale.domain:
            return MISSING
        return CATEGORICAL[list(scale.domain).index(value) % len(CATEGORICAL)]
    lo, hi = scale.domain
    t = (float(value) - lo) / (hi - lo)
    return _ramp(DIVERGING if scale.kind == "diverging" else SEQUENTIAL, t)


def text_color(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    c = _rgb(background) / 255
    lin = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    luminance = float(lin @ np.array([0.2126, 0.7152, 0.0722]))
    return "#000000" if luminance > 0.179 else "#FFFFFF"
