"""The report's plots: matplotlib figures rendered to SVG and embedded as data: URIs.

Glyphs are drawn as paths (svg.fonttype 'path'), so a plot looks the same on every machine without any font;
as <img> sources they cannot run script nor clash with the page's ids and styles, whatever text they hold.
"""

from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from audit.labels import AI_LABELS

from .tables import Concentration, LabelHeadline

COLORS = {"misaligned_ai": "#b3261e", "aligned_ai": "#2e7d32", "neutral_ai": "#3f5fa8", "no_ai": "#8a8f98"}
INK, MUTED, GRID = "#1f2328", "#59636e", "#e4e7eb"

STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "corpus-audit",      # stable ids, so the same run gives the same file
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#9aa1a9",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "text.parse_math": False,            # a "$" in a domain name is text, not mathtext
}


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def to_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def prevalence(rows: list[LabelHeadline], unit: str = "documents") -> str | None:
    """Estimate and 95% interval per label (the three AI labels), one row each, on a log scale when they differ
    widely."""
    points = [(r.label, r.unit(unit)) for r in rows if r.label in AI_LABELS and r.unit(unit)]
    if not points:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.2, 0.6 * len(points) + 1.0)
        ax = fig.add_subplot()
        ys = np.arange(len(points))[::-1]
        values = []
        for y, (label, prev) in zip(ys, points, strict=True):
            if prev.headline is None:
                bound = f" (95% upper bound {prev.upper * 100:.2g}%)" if prev.upper is not None else ""
                ax.text(
                    0.01,
                    y,
                    prev.verdict + bound,
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    color=MUTED,
                    style="italic",
                )
                continue
            h = prev.headline
            ax.errorbar(
                h.estimate,
                y,
                xerr=[[h.estimate - h.ci95[0]], [h.ci95[1] - h.estimate]],
                fmt="o",
                color=COLORS[label],
                ecolor=COLORS[label],
                elinewidth=2.2,
                capsize=4,
                markersize=7,
            )
            values += [v for v in (h.ci95[0], h.estimate, h.ci95[1]) if v > 0]
        ax.set_yticks(ys, [label for label, _ in points])
        ax.set_ylim(-0.6, len(points) - 0.4)
        ax.grid(axis="y", visible=False)
        if values and max(values) / min(values) > 30:
            ax.set_xscale("log")
        elif values:
            ax.set_xlim(0, max(values) * 1.15)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:.3g}%"))
        ax.set_xlabel(f"share of {unit} (estimate and 95% interval)")
        return to_data_uri(fig)


def top_domains(conc: Concentration) -> str | None:
    """Horizontal bars: documents of this label per registered domain, largest first."""
    rows = [d for d in conc.top_domains if isinstance(d.get("documents"), (int, float))][:10]
    if not rows:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(5.2, 0.3 * len(rows) + 0.8)
        ax = fig.add_subplot()
        names = [_short(str(d["domain"]), 34) for d in rows][::-1]
        counts = [d["documents"] for d in rows][::-1]
        bars = ax.barh(names, counts, color=COLORS[conc.label], height=0.65)
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, color=MUTED, fontsize=9)
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.12)
        ax.set_xlabel(f"documents labelled {conc.label}")
        return to_data_uri(fig)


def first_bin_at_or_above(bins: int, threshold: float) -> int:
    """Index of the first of `bins` equal bins on [0, 1] that holds scores at or above `threshold`."""
    return min(max(int(np.floor(threshold * bins)), 0), bins)


def score_histogram(counts: list[int], threshold: float | None = None) -> str | None:
    """The distribution of p_misaligned_ai over every classified passage (those naming AI), log-scaled counts,
    with the scan's decision threshold drawn (0.5 when unknown) and the bins from it up in red."""
    if not counts or sum(counts) == 0:
        return None
    cut = 0.5 if threshold is None else threshold
    edges = np.linspace(0, 1, len(counts) + 1)
    first = first_bin_at_or_above(len(counts), cut)
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.2, 3.0)
        ax = fig.add_subplot()
        colors = [COLORS["misaligned_ai"] if i >= first else "#b9bfc6" for i in range(len(counts))]
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colors, edgecolor="white", linewidth=0.4)
        ax.set_yscale("symlog", linthresh=1)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))
        ax.set_xlim(0, 1)
        ax.axvline(cut, color=INK, linewidth=0.8, linestyle=(0, (3, 3)))
        ax.set_xlabel("p_misaligned_ai")
        ax.set_ylabel("passages (log scale)")
        return to_data_uri(fig)


def lorenz_curves(concs: list[Concentration]) -> str | None:
    """Lorenz curves of documents over domains, one per AI label, against the line of equality."""
    drawn = [c for c in concs if c.lorenz is not None and len(c.lorenz[0]) > 2]
    if not drawn:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(5.0, 4.6)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#9aa1a9", linewidth=1, linestyle=(0, (4, 3)), label="equal spread")
        for c in drawn:
            x, y = c.lorenz
            gini = f"Gini {c.gini:.2f}" if c.gini is not None else ""
            ax.plot(x, y, color=COLORS[c.label], linewidth=2, label=f"{c.label}  {gini}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        percent = FuncFormatter(lambda v, _: f"{v * 100:.0f}%")
        ax.xaxis.set_major_formatter(percent)
        ax.yaxis.set_major_formatter(percent)
        ax.set_xlabel("share of domains (fewest documents first)")
        ax.set_ylabel("share of documents")
        ax.legend(loc="upper left", fontsize=9)
        return to_data_uri(fig)


def by_period(table: pl.DataFrame, granularity: str) -> str | None:
    """Flagged documents per period and AI label, as lines (bars would crowd with many periods)."""
    if table.height < 2:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.2, 3.0)
        ax = fig.add_subplot()
        x = np.arange(table.height)
        for label in AI_LABELS:
            ax.plot(
                x, table[label].to_numpy(), marker="o", markersize=3.5, linewidth=1.8, color=COLORS[label], label=label
            )
        keys = table["key"].to_list()
        step = max(1, len(keys) // 12)
        ax.set_xticks(
            x[::step],
            keys[::step],
            rotation=45 if granularity == "month" else 0,
            ha="right" if granularity == "month" else "center",
        )
        ax.set_ylabel("flagged documents")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=9, ncols=3, loc="lower left", bbox_to_anchor=(0, 1))
        return to_data_uri(fig)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
