"""The arithmetic every results table of the project uses (benchmarks, the demo, the model zoo)."""
import math
import statistics
from typing import Iterable, Optional, Tuple


def gap_closed(value: float, student: float, teacher: float) -> float:
    """Percentage of the teacher - student-alone gap that ``value`` closes (NaN for no gap)."""
    gap = teacher - student
    return float('nan') if abs(gap) < 1e-9 else 100.0 * (value - student) / gap


def mean_std(values: Iterable[Optional[float]]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of the values that are not None / NaN.

    The std of a single value is NaN (one seed says nothing about the spread); no value gives
    (NaN, NaN).
    """
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return float('nan'), float('nan')
    return statistics.fmean(kept), (statistics.stdev(kept) if len(kept) > 1 else float('nan'))


def format_mean_std(values: Iterable[Optional[float]], digits: int = 2) -> str:
    """``'m ± s'``, ``'m (1 seed)'`` or ``'—'`` (no value) for a table cell."""
    m, sd = mean_std(values)
    if math.isnan(m):
        return '—'
    if math.isnan(sd):
        return f'{m:.{digits}f} (1 seed)'
    return f'{m:.{digits}f} ± {sd:.{digits}f}'
