"""The figures the report shows, derived from a loaded run; shared by the HTML and Markdown writers.

summary.json is the source of truth for counts, prevalence and concentration; passages.parquet adds what
summary.json cannot hold (exemplar passages, the full domain distribution behind the Lorenz curve, dates).
Keys are read defensively: estimators may add keys, older runs may lack some.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from audit.labels import AI_LABELS, LABELS

from . import fmt
from .rundata import RunData

UNIT_ORDER = ("documents", "passages", "characters", "tokens")
EXAMPLES_PER_LABEL = 5
FAMILIES_PER_LABEL = 5


@dataclass
class Estimate:
    name: str
    estimate: float
    low: float
    high: float


@dataclass
class Prevalence:
    """One unit's headline prevalence; `message` replaces the number when the estimator says it is not detectable."""
    unit: str
    headline: Estimate | None
    method: str = ""
    message: str | None = None
    others: list[Estimate] = field(default_factory=list)


@dataclass
class LabelHeadline:
    label: str
    documents: int | None
    passages: int | None
    characters: int | None
    prevalence: list[Prevalence]

    def unit(self, unit: str) -> Prevalence | None:
        return next((p for p in self.prevalence if p.unit == unit), None)


@dataclass
class Passage:
    label: str
    score: float
    text: str
    url: str
    domain: str
    doc_id: str
    cluster_id: int | None
    date: str | None


@dataclass
class Family:
    cluster_id: int
    passages: int | None
    documents: int | None
    domains: int | None
    exemplar: Passage | None
    first_date: str | None = None
    last_date: str | None = None
    top_domains: list[str] = field(default_factory=list)


@dataclass
class Concentration:
    label: str
    top_domains: list[dict[str, Any]]
    families: list[Family]
    gini: float | None
    near_duplicate_share: float | None
    lorenz: tuple[np.ndarray, np.ndarray] | None     # cumulative share of domains, of documents


def _estimate(name: str, entry: Any) -> Estimate | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("estimate"), (int, float)):
        return None
    ci = entry.get("ci95") or [None, None]
    low, high = (ci + [None, None])[:2] if isinstance(ci, list) else (None, None)
    estimate = float(entry["estimate"])
    return Estimate(name, estimate, float(low) if low is not None else estimate,
                    float(high) if high is not None else estimate)


def _prevalence(unit: str, entry: dict[str, Any]) -> Prevalence:
    method = str(entry.get("method") or "")
    others = [e for name, sub in (entry.get("estimators") or {}).items()
              if (e := _estimate(str(name), sub)) is not None and str(name) != method]
    if entry.get("detectable") is False:
        message = entry.get("message") or "Not detectable: false positives could account for every passage counted."
        return Prevalence(unit, None, method, str(message), others)
    return Prevalence(unit, _estimate(method, entry), method, None, others)


def headlines(summary: dict[str, Any]) -> list[LabelHeadline]:
    """Per label, in contract order: counts and each unit's prevalence (units in a fixed order, then any others)."""
    rows = []
    for label in LABELS:
        block = (summary.get("labels") or {}).get(label) or {}
        prevalence = block.get("prevalence") or {}
        units = [u for u in UNIT_ORDER if u in prevalence] + [u for u in prevalence if u not in UNIT_ORDER]
        rows.append(LabelHeadline(
            label=label, documents=block.get("documents"), passages=block.get("passages"),
            characters=block.get("characters"),
            prevalence=[_prevalence(u, prevalence[u]) for u in units
                        if isinstance(prevalence[u], dict) and ("estimate" in prevalence[u] or "detectable" in prevalence[u])],
        ))
    return rows


def misaligned_to_aligned(rows: list[LabelHeadline]) -> tuple[str | None, str]:
    """The misaligned : aligned ratio of the first unit both labels estimate, and a sentence saying what it is.

    The ratio is None (and the sentence says why) when either label has no number to divide.
    """
    by_label = {r.label: r for r in rows}
    for unit in UNIT_ORDER:
        a, b = by_label["misaligned_ai"].unit(unit), by_label["aligned_ai"].unit(unit)
        if a and b and a.headline and b.headline:
            misaligned, aligned = a.headline.estimate, b.headline.estimate
            if misaligned > 0 and aligned > 0:
                return fmt.ratio(misaligned, aligned), (f"ratio of the {unit} estimates, "
                                                        f"{fmt.pct(misaligned)} vs {fmt.pct(aligned)}")
            missing = " nor ".join(n for n, v in (("misaligned", misaligned), ("aligned", aligned)) if v == 0)
            return None, f"No ratio: no {missing} AI portrayals were found (by {unit})."
    return None, "No ratio: misaligned or aligned AI has no estimate (see the headline cards)."


def _passage(row: dict[str, Any]) -> Passage:
    return Passage(label=row["label"], score=float(row["score"]), text=row.get("text") or "",
                   url=row.get("url") or "", domain=row.get("domain") or "", doc_id=str(row.get("doc_id") or ""),
                   cluster_id=row.get("cluster_id"), date=row.get("date"))


def _with_family(frame: pl.LazyFrame, columns: set[str]) -> pl.LazyFrame:
    """A `family` key: the cluster id, or the passage itself when it has none (unclustered runs)."""
    own = pl.col("doc_id").cast(pl.String) + ":" + pl.col("passage_index").cast(pl.String) \
        if "passage_index" in columns else pl.col("doc_id").cast(pl.String) + ":" + pl.col("text")
    if "cluster_id" not in columns:
        return frame.with_columns(family=own)
    return frame.with_columns(family=pl.coalesce(pl.col("cluster_id").cast(pl.String), own))


def examples(run: RunData, label: str, k: int = EXAMPLES_PER_LABEL) -> list[Passage]:
    """The highest-scoring passages of a label, one per near-duplicate family so the examples differ."""
    if run.passages is None:
        return []
    columns = run.passage_columns()
    frame = _with_family(run.passages.filter(pl.col("label") == label), columns)
    top = (frame.sort(["score", "doc_id"], descending=[True, False])
           .unique(subset=["family"], keep="first", maintain_order=True).head(k).collect())
    return [_passage(row) for row in top.to_dicts()]


def _exemplars(run: RunData, label: str, cluster_ids: list[int]) -> dict[int, Passage]:
    """The highest-scoring passage of `label` in each family."""
    if run.passages is None or "cluster_id" not in run.passage_columns() or not cluster_ids:
        return {}
    best = (run.passages.filter((pl.col("label") == label) & pl.col("cluster_id").is_in(cluster_ids))
            .sort(["score", "doc_id"], descending=[True, False])
            .unique(subset=["cluster_id"], keep="first").collect())
    return {row["cluster_id"]: _passage(row) for row in best.to_dicts()}


def _domain_names(value: Any) -> list[str]:
    """clusters.parquet top_domains as plain names, whether stored as strings or as {domain, ...} structs."""
    if not isinstance(value, list):
        return []
    return [str(v.get("domain")) if isinstance(v, dict) else str(v) for v in value]


def _cluster_details(run: RunData) -> dict[int, dict[str, Any]]:
    if run.clusters is None or "cluster_id" not in run.clusters.columns:
        return {}
    return {row["cluster_id"]: row for row in run.clusters.to_dicts()}


def lorenz(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Lorenz curve (cumulative share of domains, of documents; smallest domains first) and its Gini."""
    counts = np.sort(np.asarray(counts, dtype=float))
    x = np.arange(len(counts) + 1) / max(len(counts), 1)
    y = np.concatenate([[0.0], np.cumsum(counts) / max(counts.sum(), 1)])
    gini = 1 - np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]))
    return x, y, float(gini)


def _domain_counts(run: RunData, label: str) -> np.ndarray | None:
    if run.passages is None or "domain" not in run.passage_columns():
        return None
    counts = (run.passages.filter(pl.col("label") == label)
              .group_by("domain").agg(pl.col("doc_id").n_unique().alias("documents")).collect())
    return counts["documents"].to_numpy() if counts.height else None


def concentration(run: RunData, label: str) -> Concentration:
    block = (run.summary.get("concentration") or {}).get(label) or {}
    top_clusters = [c for c in block.get("top_clusters") or [] if isinstance(c, dict) and "cluster_id" in c]
    top_clusters = top_clusters[:FAMILIES_PER_LABEL]
    exemplars = _exemplars(run, label, [c["cluster_id"] for c in top_clusters])
    details = _cluster_details(run)
    families = []
    for c in top_clusters:
        extra = details.get(c["cluster_id"], {})
        families.append(Family(
            cluster_id=c["cluster_id"], passages=c.get("passages", extra.get("size")),
            documents=c.get("documents", extra.get("documents")), domains=c.get("domains", extra.get("domains")),
            exemplar=exemplars.get(c["cluster_id"]), first_date=extra.get("first_date"),
            last_date=extra.get("last_date"), top_domains=_domain_names(extra.get("top_domains"))))
    counts = _domain_counts(run, label)
    curve = lorenz(counts) if counts is not None else None
    gini = block.get("gini_domains")
    return Concentration(
        label=label,
        top_domains=[d for d in block.get("top_domains") or [] if isinstance(d, dict) and "domain" in d],
        families=families,
        gini=float(gini) if isinstance(gini, (int, float)) else (curve[2] if curve else None),
        near_duplicate_share=block.get("near_duplicate_share"),
        lorenz=(curve[0], curve[1]) if curve else None,
    )


def flagged_documents_by(run: RunData, column: str, expression: pl.Expr | None = None) -> pl.DataFrame | None:
    """Distinct flagged documents per value of `column` (or of `expression`) and AI label: one column per label."""
    if run.passages is None or column not in run.passage_columns():
        return None
    key = (expression if expression is not None else pl.col(column)).alias("key")
    frame = (run.passages.filter(pl.col("label").is_in(AI_LABELS))
             .group_by(key, "label").agg(pl.col("doc_id").n_unique().alias("documents")).collect())
    frame = frame.filter(pl.col("key").is_not_null())
    if frame.height == 0:
        return None
    wide = frame.pivot(on="label", index="key", values="documents")
    for label in AI_LABELS:
        if label not in wide.columns:
            wide = wide.with_columns(pl.lit(0, dtype=pl.UInt32).alias(label))
    return wide.select("key", *AI_LABELS).fill_null(0).sort("key")


def by_period(run: RunData) -> tuple[pl.DataFrame, str] | None:
    """Flagged documents per year, or per month when all dates fall within three years."""
    if run.passages is None or "date" not in run.passage_columns():
        return None
    years = (run.passages.select(pl.col("date").cast(pl.String).str.extract(r"^(\d{4})-?(\d{2})?", 1)
                                 .cast(pl.Int32, strict=False).alias("y"))
             .select(pl.col("y").min().alias("lo"), pl.col("y").max().alias("hi")).collect())
    if years["lo"][0] is None:
        return None
    monthly = years["hi"][0] - years["lo"][0] < 3
    pattern = r"^(\d{4}-\d{2})" if monthly else r"^(\d{4})"
    table = flagged_documents_by(run, "date", pl.col("date").cast(pl.String).str.extract(pattern, 1))
    return (table, "month" if monthly else "year") if table is not None else None


def by_dump(run: RunData) -> list[dict[str, Any]]:
    """Per dump: documents scanned (unit stats) and distinct flagged documents per AI label (passages)."""
    scanned = run.by_dump()
    flagged = flagged_documents_by(run, "dump")
    flagged_rows = {row["key"]: row for row in flagged.to_dicts()} if flagged is not None else {}
    dumps = sorted(set(scanned) | set(flagged_rows))
    rows = []
    for dump in dumps:
        row = {"dump": dump, "documents": scanned.get(dump, {}).get("documents"),
               "characters": scanned.get(dump, {}).get("characters")}
        row.update({label: int(flagged_rows.get(dump, {}).get(label) or 0) for label in AI_LABELS})
        rows.append(row)
    return rows


def run_seconds(run: RunData) -> float | None:
    """Wall-clock seconds of the scan from the manifest's timings, if it recorded them."""
    timings = run.manifest.get("timings") or {}
    for key in ("seconds", "wall_seconds", "total_seconds", "elapsed_seconds"):
        if isinstance(timings.get(key), (int, float)):
            return float(timings[key])
    return None
