"""Summary statistics for repeated measurements."""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """The median of repeated runs and the lowest and highest value among them."""

    median: float
    low: float
    high: float
    runs: int

    def describe(self, digits: int = 2, unit: str = "") -> str:
        suffix = f" {unit}" if unit else ""
        if self.runs == 1:
            return f"{self.median:.{digits}f}{suffix} (1 run)"
        return (
            f"{self.median:.{digits}f}{suffix} "
            f"(range {self.low:.{digits}f} to {self.high:.{digits}f}, {self.runs} runs)"
        )


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("cannot summarize an empty list of measurements")
    return Spread(
        median=statistics.median(values),
        low=min(values),
        high=max(values),
        runs=len(values),
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile: the smallest value with ``fraction`` of values at or below it."""
    if not values:
        raise ValueError("cannot take a percentile of an empty list")
    if not 0 < fraction <= 1:
        raise ValueError(f"invalid fraction {fraction}: use a number in (0, 1]")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
