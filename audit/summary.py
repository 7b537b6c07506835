"""After the scan: merge the units' results into the run's files.

``passages.parquet`` (every flagged passage, with its near-duplicate family), ``clusters.parquet`` (the families)
and ``summary.json`` (corpus counts, per-label counts and prevalence estimates, concentration, failures).
Everything here is derived from the unit files, so it can be recomputed at any time.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from . import clusters, estimators
from .atomic import write_json_atomic, write_parquet_atomic
from .labels import AI_LABELS, LABELS
from .rundir import FLAGGED_SCHEMA, SCHEMA_VERSION, RunDir


def summarise(
    run: RunDir,
    unit_stats: list[dict],
    failures: list[dict],
    shards: int,
    evaluation: dict,
    sampled: bool,
    warnings: list[str] | None = None,
) -> dict:
    """Write passages.parquet, clusters.parquet and summary.json from the completed units; returns the summary."""
    unit_ids = [s["unit"] for s in unit_stats]
    flagged = pl.from_arrow(run.read_unit_tables(unit_ids, "flagged")) if unit_ids else _empty_flagged()
    docs = pl.from_arrow(run.read_unit_tables(unit_ids, "docs")) if unit_ids else None
    passages = _with_families(flagged)
    without_signatures = passages.drop("minhash", strict=True)
    write_parquet_atomic(run.passages, without_signatures.to_arrow())
    write_parquet_atomic(run.clusters, clusters.cluster_table(without_signatures).to_arrow())

    totals = estimators.Totals(
        documents=sum(s["documents_sampled"] for s in unit_stats),
        characters=sum(s["characters"] for s in unit_stats),
        passages=sum(s["passages"] for s in unit_stats),
        tokens=sum(s["tokens"] for s in unit_stats)
        if unit_stats and all(s["tokens"] is not None for s in unit_stats)
        else None,
    )
    summary = {
        "schema_version": SCHEMA_VERSION,
        "corpus": {
            "shards": shards,
            "shards_failed": len({f["input"] for f in failures}),
            "units": len(unit_stats),
            "documents": sum(s["documents"] for s in unit_stats),
            "documents_scanned": totals.documents,
            "documents_gated": sum(s["documents_gated"] for s in unit_stats),
            "characters": totals.characters,
            "tokens": totals.tokens,
            "passages": totals.passages,
            "passages_classified": sum(s["passages_gated"] for s in unit_stats),
        },
        "labels": _label_counts(passages, docs, totals, unit_stats),
        "concentration": _concentration(run, unit_ids, passages),
        "by_dump": _by_dump(unit_stats),
        "failures": failures,
        "warnings": list(warnings or []),  # e.g. a preset column that no shard has
    }
    if docs is not None and len(docs):
        prevalence = estimators.prevalence_block(_columns(docs), totals, evaluation, LABELS, sampled=sampled)
        for label in LABELS:
            summary["labels"][label]["prevalence"] = prevalence[label]
    summary.update(_checked(run))
    write_json_atomic(run.summary, summary)
    return summary


def _checked(run: RunDir) -> dict:
    """The `checked` block when people have labelled an audit sample of this run (RUN/estimate.json)."""
    from .auditloop import checked_block

    return {"checked": checked_block(json.loads(run.estimate.read_text()))} if run.estimate.is_file() else {}


def _with_families(flagged: pl.DataFrame) -> pl.DataFrame:
    """Fill cluster_id (passage families) and document_cluster_id (families of documents by their flagged text)
    from the MinHash signatures the scan stored with each flagged passage."""
    if not len(flagged):
        return flagged.with_columns(document_cluster_id=pl.lit(None, dtype=pl.Int64))
    signatures = flagged["minhash"].to_numpy()  # fixed-size list column -> (n, 128) array, no Python lists
    ids = clusters.cluster_ids(signatures, flagged.select("shard", "row", "passage_index"))
    documents = flagged.select(pl.struct("shard", "row").rank("dense") - 1).to_series().to_numpy()
    return flagged.with_columns(
        cluster_id=pl.Series(ids, dtype=pl.Int64),
        document_cluster_id=pl.Series(clusters.document_cluster_ids(signatures, documents), dtype=pl.Int64),
    )


def _concentration(run: RunDir, unit_ids: list[str], passages: pl.DataFrame) -> dict:
    """Per-label concentration, plus the near-duplicate share of a uniform sample of all gated passages for contrast."""
    from .scanner import SAMPLE_GATED

    samples = [pl.from_arrow(run.read_unit_table(u, "sample")).filter(pl.col("kind") == "gated") for u in unit_ids]
    sample, rate = clusters.merge_bottom_k(samples, SAMPLE_GATED)
    block = clusters.concentration(passages, sample_rate=rate)
    block["gated_sample"] = clusters.sample_duplicates(sample, rate)
    return block


def _empty_flagged() -> pl.DataFrame:
    return pl.from_arrow(FLAGGED_SCHEMA.empty_table())


def _label_counts(
    passages: pl.DataFrame, docs: pl.DataFrame | None, totals: estimators.Totals, unit_stats: list[dict]
) -> dict:
    """Documents, passages and characters per label (no_ai: documents with no passage of another label)."""
    out = {}
    for label in AI_LABELS:
        mine = passages.filter(pl.col("label") == label)
        out[label] = {
            "documents": mine["doc_id"].n_unique() if len(mine) else 0,
            "passages": len(mine),
            "characters": int((mine["char_end"] - mine["char_start"]).sum()) if len(mine) else 0,
        }
    ai_documents = passages["doc_id"].n_unique() if len(passages) else 0
    ai_characters = int((passages["char_end"] - passages["char_start"]).sum()) if len(passages) else 0
    out["no_ai"] = {
        "documents": totals.documents - ai_documents,
        "passages": sum(s["passages_by_label"]["no_ai"] for s in unit_stats),
        "characters": totals.characters - ai_characters,
    }
    return out


def _columns(docs: pl.DataFrame) -> dict[str, np.ndarray]:
    """docs.parquet as numpy columns for the estimators."""
    columns = {name: docs[name].to_numpy() for name in docs.columns}
    if docs["tokens"].null_count():
        columns["tokens"] = None
    return columns


def _by_dump(unit_stats: list[dict]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for stats in unit_stats:
        for dump, counts in stats.get("by_dump", {}).items():
            entry = merged.setdefault(dump, {"documents": 0, "characters": 0})
            for key, value in counts.items():
                entry[key] += value
    return dict(sorted(merged.items()))
