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

from audit.estimators import Estimate
from audit.labels import AI_LABELS, LABELS

from . import fmt
from .rundata import RunData

UNIT_ORDER = ("documents", "passages", "characters", "tokens")
EXAMPLES_PER_LABEL = 5
FAMILIES_PER_LABEL = 5
NO_DOMAIN = "(no domain)"     # documents whose URL has no registered domain (missing, or not http)


@dataclass
class Prevalence:
    """One unit's headline prevalence.

    `headline` is None when the estimator could not tell the share from zero (`detectable` false); then `upper`
    is the 95% upper bound and `message` says why. `message` may also carry a caveat for a detectable estimate.
    """
    unit: str
    headline: Estimate | None
    method: str = ""
    upper: float | None = None
    message: str | None = None
    others: list[Estimate] = field(default_factory=list)
    population: str | None = None        # what the unit's share is a share of ("of documents")
    verdict: str = "not detectable"      # what to say instead of a number when `headline` is None


@dataclass
class LabelHeadline:
    label: str
    documents: int | None
    passages: int | None
    characters: int | None
    prevalence: list[Prevalence]
    raw_share: float | None         # flagged documents / documents scanned, for runs without estimates

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
    mix: dict[str, int] = field(default_factory=dict)      # passages per label, when clusters.parquet has it


@dataclass
class Concentration:
    label: str
    top_domains: list[dict[str, Any]]
    families: list[Family]
    gini: float | None
    near_duplicate_share: float | None
    lorenz: tuple[np.ndarray, np.ndarray] | None     # cumulative share of domains, of documents


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _interval(entry: dict[str, Any]) -> tuple[float | None, float | None]:
    ci = entry.get("ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return _number(ci[0]), _number(ci[1])
    return None, None


def _estimate(name: str, entry: Any) -> Estimate | None:
    """An estimate with its interval (a missing bound collapses onto the estimate); None if there is no number."""
    if not isinstance(entry, dict) or (estimate := _number(entry.get("estimate"))) is None:
        return None
    low, high = _interval(entry)
    return Estimate(estimate, (estimate if low is None else low, estimate if high is None else high), name)


def _prevalence(unit: str, entry: dict[str, Any]) -> Prevalence:
    method = str(entry.get("method") or "")
    message = str(entry["message"]) if entry.get("message") else None
    others = [e for name, sub in (entry.get("estimators") or {}).items()
              if isinstance(sub, dict) and sub.get("method") != method and (e := _estimate(str(name), sub))]
    population = str(entry["population"]) if entry.get("population") else None
    if entry.get("detectable") is False or _number(entry.get("estimate")) is None:
        verdict = "too few documents to estimate" if entry.get("too_few") else "not detectable"
        return Prevalence(unit, None, method, _interval(entry)[1],
                          message or "Not detectable: false positives could account for every passage counted.",
                          others, population, verdict)
    return Prevalence(unit, _estimate(method, entry), method, None, message, others, population)


def headlines(summary: dict[str, Any]) -> list[LabelHeadline]:
    """Per label, in contract order: counts and each unit's prevalence (units in a fixed order, then any others)."""
    corpus = summary.get("corpus") or {}
    scanned = _number(corpus.get("documents_scanned")) or _number(corpus.get("documents"))
    rows = []
    for label in LABELS:
        block = (summary.get("labels") or {}).get(label) or {}
        prevalence = block.get("prevalence") or {}
        units = [u for u in UNIT_ORDER if u in prevalence] + [u for u in prevalence if u not in UNIT_ORDER]
        documents = block.get("documents")
        rows.append(
            LabelHeadline(
                label=label,
                documents=documents,
                passages=block.get("passages"),
                characters=block.get("characters"),
                prevalence=[
                    _prevalence(u, prevalence[u])
                    for u in units
                    if isinstance(prevalence[u], dict)
                    and ("estimate" in prevalence[u] or "detectable" in prevalence[u])
                ],
                raw_share=documents / scanned if isinstance(documents, int) and scanned else None,
            )
        )
    return rows


@dataclass
class Audited:
    """One label and population of estimate.json: the design-based and the prediction-powered estimate."""

    label: str
    population: str
    stratified: Estimate | None
    ppi: Estimate | None
    note: str | None

    @property
    def population_words(self) -> str:
        """The population as a sentence names it ("of the documents the gate passed over")."""
        from audit.auditloop import POPULATION_WORDS

        return POPULATION_WORDS.get(self.population, self.population.replace("_", " "))


def audited(run: RunData) -> tuple[int, list[Audited]] | None:
    """The human-audited estimates (`corpus-audit estimate`), with how many rows people labelled."""
    if run.audit is None:
        return None
    rows = []
    for label in LABELS:
        for population, entry in ((run.audit.get("labels") or {}).get(label) or {}).items():
            estimators = entry.get("estimators") or {} if isinstance(entry, dict) else {}
            notes = [str(e["message"]) for e in estimators.values() if isinstance(e, dict) and e.get("message")]
            rows.append(
                Audited(
                    label,
                    str(population),
                    _estimate("stratified", estimators.get("stratified")),
                    _estimate("ppi", estimators.get("ppi")),
                    "; ".join(notes) or None,
                )
            )
    return int(run.audit.get("labelled") or 0), rows


def misaligned_to_aligned(rows: list[LabelHeadline]) -> tuple[str | None, str]:
    """The misaligned : aligned ratio and a sentence saying what it divides.

    It divides the prevalence estimates of the first unit both labels have; a run without estimates divides the
    flagged document counts instead and says so. The ratio is None (the sentence says why) when a side is zero
    or not detectable.
    """
    by_label = {r.label: r for r in rows}
    misaligned, aligned = by_label["misaligned_ai"], by_label["aligned_ai"]
    for unit in UNIT_ORDER:
        a, b = misaligned.unit(unit), aligned.unit(unit)
        if a and b:
            if a.headline is None or b.headline is None:
                missing = a if a.headline is None else b
                return None, (
                    f"No ratio: {'misaligned' if a.headline is None else 'aligned'} AI has no estimate "
                    f"({missing.verdict})."
                )
            return _ratio(
                a.headline.estimate,
                b.headline.estimate,
                f"ratio of the {unit} estimates, {fmt.pct(a.headline.estimate)} vs {fmt.pct(b.headline.estimate)}",
            )
    if misaligned.prevalence or aligned.prevalence or misaligned.documents is None or aligned.documents is None:
        return None, "No ratio: misaligned and aligned AI have no estimate in a common unit."
    return _ratio(
        misaligned.documents,
        aligned.documents,
        f"ratio of flagged documents, {fmt.count(misaligned.documents)} vs {fmt.count(aligned.documents)}; "
        "raw classifier counts",
    )


def _ratio(misaligned: float, aligned: float, explanation: str) -> tuple[str | None, str]:
    if misaligned > 0 and aligned > 0:
        return fmt.ratio(misaligned, aligned), explanation
    missing = (
        "neither misaligned nor aligned"
        if misaligned == aligned == 0
        else ("no misaligned" if misaligned == 0 else "no aligned")
    )
    return None, f"No ratio: {missing} AI portrayals were found ({explanation})."


def _passage(row: dict[str, Any]) -> Passage:
    return Passage(
        label=row["label"],
        score=float(row["score"]),
        text=row.get("text") or "",
        url=row.get("url") or "",
        domain=row.get("domain") or "",
        doc_id=str(row.get("doc_id") or ""),
        cluster_id=row.get("cluster_id"),
        date=row.get("date"),
    )


def examples(run: RunData, label: str, k: int = EXAMPLES_PER_LABEL) -> list[Passage]:
    """The highest-scoring passages of a label, one per near-duplicate family so the examples differ.

    The ranking reads only the small columns; the text is read for the k passages shown.
    """
    if run.passages is None:
        return []
    own = pl.col("doc_id").cast(pl.String) + ":" + pl.col("passage_index").cast(pl.String)
    family = pl.coalesce(pl.col("cluster_id").cast(pl.String), own) if "cluster_id" in run.passage_columns() else own
    top = (
        run.passages.filter(pl.col("label") == label)
        .select("doc_id", "passage_index", "score", family.alias("family"))
        .sort(["score", "doc_id"], descending=[True, False])
        .unique(subset=["family"], keep="first", maintain_order=True)
        .head(k)
        .collect()
    )
    chosen = (
        run.passages.filter(pl.col("doc_id").is_in(top["doc_id"].implode()) & (pl.col("label") == label))
        .collect()
        .join(top.select("doc_id", "passage_index", "family"), on=["doc_id", "passage_index"])
        .sort(["score", "doc_id"], descending=[True, False])
    )
    return [_passage(row) for row in chosen.to_dicts()]


def _exemplars(run: RunData, label: str, cluster_ids: list[int]) -> dict[int, Passage]:
    """The highest-scoring passage of `label` in each family."""
    if run.passages is None or "cluster_id" not in run.passage_columns() or not cluster_ids:
        return {}
    best = (
        run.passages.filter((pl.col("label") == label) & pl.col("cluster_id").is_in(cluster_ids))
        .sort(["score", "doc_id"], descending=[True, False])
        .unique(subset=["cluster_id"], keep="first")
        .collect()
    )
    return {row["cluster_id"]: _passage(row) for row in best.to_dicts()}


def _domain_names(value: Any) -> list[str]:
    """clusters.parquet top_domains as plain names, whether stored as strings or as {domain, ...} structs."""
    if not isinstance(value, list):
        return []
    return [str(v.get("domain")) if isinstance(v, dict) else str(v) for v in value]


def _cluster_details(run: RunData, cluster_ids: list[int]) -> dict[int, dict[str, Any]]:
    """clusters.parquet rows of the listed passage families (dates, top domains, label mix), read lazily."""
    columns = run.clusters.collect_schema().names() if run.clusters is not None else []
    if "cluster_id" not in columns or not cluster_ids:
        return {}
    passage_level = pl.col("level") == "passage" if "level" in columns else pl.lit(True)
    rows = run.clusters.filter(passage_level & pl.col("cluster_id").is_in(cluster_ids)).collect()
    return {row["cluster_id"]: row for row in rows.to_dicts()}


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
    counts = (
        run.passages.filter(pl.col("label") == label)
        .group_by("domain")
        .agg(pl.col("doc_id").n_unique().alias("documents"))
        .collect()
    )
    return counts["documents"].to_numpy() if counts.height else None


def concentration(run: RunData, label: str) -> Concentration:
    block = (run.summary.get("concentration") or {}).get(label) or {}
    top_clusters = [c for c in block.get("top_clusters") or [] if isinstance(c, dict) and "cluster_id" in c]
    top_clusters = top_clusters[:FAMILIES_PER_LABEL]
    exemplars = _exemplars(run, label, [c["cluster_id"] for c in top_clusters])
    details = _cluster_details(run, [c["cluster_id"] for c in top_clusters])
    families = []
    for c in top_clusters:
        extra = details.get(c["cluster_id"], {})
        families.append(
            Family(
                cluster_id=c["cluster_id"],
                passages=c.get("passages", extra.get("size")),
                documents=c.get("documents", extra.get("documents")),
                domains=c.get("domains", extra.get("domains")),
                exemplar=exemplars.get(c["cluster_id"]),
                first_date=extra.get("first_date"),
                last_date=extra.get("last_date"),
                top_domains=_domain_names(extra.get("top_domains")),
                mix={label: int(extra[f"n_{label}"]) for label in AI_LABELS if extra.get(f"n_{label}")},
            )
        )
    counts = _domain_counts(run, label)
    curve = lorenz(counts) if counts is not None else None
    gini = block.get("gini_domains")
    return Concentration(
        label=label,
        top_domains=[
            {**d, "domain": NO_DOMAIN if d["domain"] is None else d["domain"]}
            for d in block.get("top_domains") or []
            if isinstance(d, dict) and "domain" in d
        ],
        families=families,
        gini=float(gini) if isinstance(gini, (int, float)) else (curve[2] if curve else None),
        near_duplicate_share=block.get("near_duplicate_share"),
        lorenz=(curve[0], curve[1]) if curve else None,
    )


def by_period(run: RunData) -> tuple[pl.DataFrame, str] | None:
    """Distinct flagged documents per year (per month when all dates fall within three years) and AI label."""
    if run.passages is None or "date" not in run.passage_columns():
        return None
    dated = run.passages.filter(pl.col("label").is_in(AI_LABELS)).with_columns(
        month=pl.col("date").cast(pl.String).str.extract(r"^(\d{4}-\d{2})", 1)
    )
    span = dated.select(pl.col("month").min().alias("lo"), pl.col("month").max().alias("hi")).collect()
    if span["lo"][0] is None:
        return None
    monthly = int(span["hi"][0][:4]) - int(span["lo"][0][:4]) < 3
    key = pl.col("month") if monthly else pl.col("month").str.slice(0, 4)
    counts = (
        dated.filter(pl.col("month").is_not_null())
        .group_by(key.alias("key"), "label")
        .agg(pl.col("doc_id").n_unique().alias("documents"))
        .collect()
    )
    wide = counts.pivot(on="label", index="key", values="documents")
    wide = wide.with_columns(
        pl.lit(0, dtype=pl.UInt32).alias(label) for label in AI_LABELS if label not in wide.columns
    )
    every = _periods(span["lo"][0], span["hi"][0], monthly)  # periods without flagged documents show as zero
    table = pl.DataFrame({"key": every}).join(wide, on="key", how="left")
    return table.select("key", *AI_LABELS).fill_null(0), "month" if monthly else "year"


def _periods(first: str, last: str, monthly: bool) -> list[str]:
    """Every year (or month, 'YYYY-MM') from first to last inclusive."""
    if not monthly:
        return [str(y) for y in range(int(first[:4]), int(last[:4]) + 1)]
    start, stop = int(first[:4]) * 12 + int(first[5:7]) - 1, int(last[:4]) * 12 + int(last[5:7]) - 1
    return [f"{m // 12}-{m % 12 + 1:02d}" for m in range(start, stop + 1)]


def _dump_name(key: Any) -> str | None:
    """Dump keys as the summary writes them; documents without a dump come back as None."""
    return None if key in (None, "", "(none)") else str(key)


def by_dump(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dump: documents scanned, and documents flagged per AI label (both from summary.json)."""
    rows = {
        _dump_name(k): {"dump": _dump_name(k), "documents": v.get("documents"), "characters": v.get("characters")}
        for k, v in (summary.get("by_dump") or {}).items()
        if isinstance(v, dict)
    }
    for label in AI_LABELS:
        block = (summary.get("concentration") or {}).get(label) or {}
        for entry in block.get("by_dump") or []:
            if isinstance(entry, dict):
                row = rows.setdefault(
                    _dump_name(entry.get("dump")),
                    {"dump": _dump_name(entry.get("dump")), "documents": None, "characters": None},
                )
                row[label] = int(entry.get("documents") or 0)
    ordered = sorted(rows.values(), key=lambda r: (r["dump"] is None, r["dump"] or ""))
    return [{**{label: 0 for label in AI_LABELS}, **row} for row in ordered]


def run_seconds(run: RunData) -> float | None:
    """Wall-clock seconds of the scan's last invocation, as the manifest records it."""
    return _number(run.manifest.get("seconds"))
