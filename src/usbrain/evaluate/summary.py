"""Summaries of per-scan scores for tables: medians that skip undefined values, and one way of
printing a score."""

from __future__ import annotations

import math

import numpy as np


def nan_median(values: list[float]) -> float:
    """Median of the defined (non-NaN) values; NaN when there are none.

    >>> nan_median([3.0, float("nan"), 1.0])
    2.0
    """
    defined = [v for v in values if not math.isnan(v)]
    return float(np.median(defined)) if defined else float("nan")


def format_value(v: float, digits: int = 2) -> str:
    """A score for a Markdown table: "—" when undefined, "∞" for identical regions.

    >>> format_value(float("inf")), format_value(0.1234, 3), format_value(float("nan"))
    ('∞', '0.123', '—')
    """
    if math.isnan(v):
        return "—"
    return "∞" if v == float("inf") else f"{v:.{digits}f}"
