"""Number formatting shared by the HTML and Markdown reports, so both print the same figures."""

from __future__ import annotations

import math


def count(n: int | float | None) -> str:
    """4636 -> '4,636'; None -> '–'."""
    if n is None:
        return "–"
    return f"{round(n):,}"


def counted(n: int | float | None, noun: str) -> str:
    """(1, 'document') -> '1 document'; (3, 'document') -> '3 documents'."""
    return f"{count(n)} {noun}" if n == 1 else f"{count(n)} {noun}s"


def decimals_for(*fractions: float | None) -> int:
    """Decimals that give the smallest non-zero fraction two significant figures as a percentage (1 to 4)."""
    smallest = min((abs(f) * 100 for f in fractions if f), default=None)
    if smallest is None:
        return 1
    return max(1, min(4, 1 - math.floor(math.log10(smallest))))


def pct(fraction: float | None, decimals: int | None = None) -> str:
    """0.008 -> '0.80%'; 0.21 -> '21.0%'; precision adapts so rare shares keep two significant figures."""
    if fraction is None:
        return "–"
    if decimals is None:
        decimals = decimals_for(fraction)
    return f"{fraction * 100:.{decimals}f}%"


def pct_interval(estimate: float, low: float, high: float) -> tuple[str, str]:
    """The estimate and its interval at one shared precision: ('0.80%', '0.57–1.10%')."""
    decimals = decimals_for(estimate, low, high)
    return pct(estimate, decimals), f"{low * 100:.{decimals}f}–{high * 100:.{decimals}f}%"


def ratio(a: float, b: float) -> str:
    """How many of a per one of b, or the reverse, whichever reads naturally: '3.1 : 1' or '1 : 2.4'."""
    if a >= b:
        return f"{a / b:.2g} : 1" if a / b < 10 else f"{a / b:.0f} : 1"
    return f"1 : {b / a:.2g}" if b / a < 10 else f"1 : {b / a:.0f}"


def big(n: float | None) -> str:
    """Large magnitudes for prose: 38242854 -> '38.2 M'."""
    if n is None:
        return "–"
    for factor, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}"
    return f"{n:.3g}"


def duration(seconds: float | None) -> str:
    """3.42 -> '3.4 s'; 3725 -> '1 h 02 min'."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
