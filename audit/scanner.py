"""The scan step: one unit of work (a shard's row-group range) in, its result tables and stats out.

Per batch: decode the text column, sample documents by id hash (``--sample-rate``), gate the batch in one
vectorised call, split only the gated documents into passages, classify all of the batch's passages in one
fastText call, and keep (a) every passage labelled anything but ``no_ai``, (b) one row per gated document with
its aggregates, (c) small bottom-k hash samples for the audit loop and the corpus-wide duplicate rate.
The step does no file I/O of results and no retries: executors own those.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from .config import ScanConfig
from .domains import registered_domain
from .gate import gate
from .labels import AI_LABELS, LABELS
from .minhash import NUM_PERM, signatures
from .passages import split_passages
from .reader import Unit, open_source, resolve_columns
from .rundir import DOCS_SCHEMA, FLAGGED_SCHEMA, SAMPLE_SCHEMA
from .tagger import PassageTagger, tag_passages

HISTOGRAM_BINS = 50
SAMPLE_GATED = 400  # bottom-k sample of gated passages kept per unit
SAMPLE_REJECTED = 100  # bottom-k sample of gate-rejected documents kept per unit
SAMPLE_TEXT_CHARS = 20_000  # a sampled gate-rejected document keeps at most this much text
_U64 = float(2**64)
NO_AI = LABELS.index("no_ai")

ProgressFn = Callable[[int, int], None]  # (documents, bytes) done since the last call


@dataclass
class UnitResult:
    unit: Unit
    flagged: pa.Table
    docs: pa.Table
    sample: pa.Table
    stats: dict

    def tables(self) -> dict[str, pa.Table]:
        """The unit's tables by name, as committed to the run directory."""
        return {"flagged": self.flagged, "docs": self.docs, "sample": self.sample}


def doc_hash(doc_id: str, seed: int) -> int:
    """The 64-bit hash that decides document sampling and audit samples (stable across runs and machines)."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed=seed)


@dataclass
class _BottomK:
    """Keeps the k rows with the smallest hash: merged across units, a uniform sample without replacement."""

    k: int
    rows: list[tuple[int, dict]] = field(default_factory=list)

    def wants(self, key: int) -> bool:
        """Whether a row with this key would be kept now."""
        return len(self.rows) < self.k or key < self.rows[-1][0]

    def offer(self, key: int, row: Callable[[], dict]) -> None:
        """Keep ``row()`` if ``key`` is among the k smallest seen (``row`` is only built when kept)."""
        if self.wants(key):
            bisect.insort(self.rows, (key, row()), key=lambda item: item[0])
            del self.rows[self.k :]


class _Collector:
    """Accumulates one unit's rows and counters."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.flagged: list[dict] = []
        self.docs: list[dict] = []
        self.gated_sample = _BottomK(SAMPLE_GATED)
        self.rejected_sample = _BottomK(SAMPLE_REJECTED)
        self.histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.passages_by_label = np.zeros(len(LABELS), dtype=np.int64)
        self.by_dump: dict[str, dict[str, int]] = {}
        self.counts = {
            "documents": 0,
            "documents_sampled": 0,
            "documents_gated": 0,
            "characters": 0,
            "tokens": 0,
            "passages": 0,
            "passages_gated": 0,
        }
        self.has_tokens = False


def scan_unit(
    unit: Unit, config: ScanConfig, tagger: Callable[[], PassageTagger], progress: ProgressFn | None = None
) -> UnitResult:
    """Scan one unit. Raises InputError when the shard cannot be read, UsageError when a required column is missing.

    ``tagger`` gives the model; it is first called at the first gated document, so that a worker reads and gates
    while its model loads in the background.
    """
    started = time.perf_counter()
    source = open_source(unit.shard)
    roles = resolve_columns(unit.shard, source.schema, config.columns, config.required)
    out = _Collector(unit)
    out.has_tokens = "tokens" in roles
    row = unit.first_row
    try:
        for batch in source.batches(unit, roles, config.batch_rows):
            size = _scan_batch(batch, row, config, tagger, out)
            row += len(batch["text"])
            if progress:
                progress(len(batch["text"]), size)
    except (OSError, pa.ArrowException) as error:
        from .errors import InputError

        raise InputError(
            f"{unit.shard.uri}: row groups {unit.start}-{unit.stop - 1} cannot be read ({error})."
        ) from error
    stats = {
        "unit": unit.id,
        "shard": unit.shard.relpath,
        "row_groups": [unit.start, unit.stop],
        "fingerprint": unit.shard.fingerprint(),
        **out.counts,
        "tokens": out.counts["tokens"] if out.has_tokens else None,
        "passages_by_label": dict(zip(LABELS, out.passages_by_label.tolist(), strict=True)),
        "score_histogram": out.histogram.tolist(),
        "by_dump": out.by_dump,
        "seconds": round(time.perf_counter() - started, 3),
    }
    flagged = _table(out.flagged, FLAGGED_SCHEMA)
    flagged = flagged.append_column("minhash", _signature_column(signatures(flagged["text"].to_pylist())))
    return UnitResult(unit, flagged, _table(out.docs, DOCS_SCHEMA), _sample_table(out), stats)


def _scan_batch(
    batch: dict[str, pa.Array], first_row: int, config: ScanConfig, tagger: Callable[[], PassageTagger], out: _Collector
) -> int:
    """Scan one record batch; returns its text size in bytes (for progress).

    Whole-batch work is vectorised (lengths, sampling keys, dump counts, the gate); Python touches only the
    gated documents and the few rejected ones the audit sample keeps.
    """
    text = batch["text"]
    n = len(text)
    if not n:
        return 0
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    sampled = np.ones(n, bool)
    if config.sample_rate < 1:
        ids = _doc_ids(batch, rows, np.arange(n), out.unit.shard.relpath)
        hashes = np.fromiter((doc_hash(i, config.seed) for i in ids), dtype=np.uint64, count=n)
        sampled = hashes.astype(np.float64) / _U64 < config.sample_rate

    lengths = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    out.counts["documents"] += n
    out.counts["documents_sampled"] += int(sampled.sum())
    out.counts["characters"] += int(lengths[sampled].sum())
    tokens = None
    if "tokens" in batch:
        tokens = pc.fill_null(batch["tokens"], 0).to_numpy(zero_copy_only=False).astype(np.int64)
        out.counts["tokens"] += int(tokens[sampled].sum())
    if "dump" in batch:
        _count_dumps(batch["dump"], sampled, lengths, out.by_dump)

    gated = gate(text) & sampled
    out.counts["documents_gated"] += int(gated.sum())
    _sample_rejected(batch, rows, np.flatnonzero(sampled & ~gated), config.seed, out)
    index = np.flatnonzero(gated)
    if len(index):
        docs = _docs(batch, rows, index, lengths, tokens, out.unit.shard.relpath)
        _classify_docs(docs, text.take(pa.array(index)).to_pylist(), tagger(), config.seed, out)
    return text.nbytes


def _doc_ids(batch: dict[str, pa.Array], rows: np.ndarray, index: np.ndarray, relpath: str) -> list[str]:
    """Document ids of the rows at ``index``; a corpus without ids (C4) names documents ``shard:row``."""
    ids = batch["id"].take(pa.array(index)).to_pylist() if "id" in batch else [None] * len(index)
    return [str(i) if i is not None else f"{relpath}:{r}" for i, r in zip(ids, rows[index].tolist(), strict=True)]


def _column_values(batch: dict[str, pa.Array], role: str, index: np.ndarray) -> list:
    if role not in batch:
        return [None] * len(index)
    return [None if v is None else str(v) for v in batch[role].take(pa.array(index)).to_pylist()]


def _count_dumps(dumps: pa.Array, sampled: np.ndarray, lengths: np.ndarray, by_dump: dict) -> None:
    table = pa.table({"dump": dumps.cast(pa.string()), "characters": lengths}).filter(pa.array(sampled))
    grouped = table.group_by("dump").aggregate([("characters", "count"), ("characters", "sum")])
    for dump, documents, characters in zip(
        *(grouped.column(c).to_pylist() for c in ("dump", "characters_count", "characters_sum")), strict=True
    ):
        entry = by_dump.setdefault("(none)" if dump is None else str(dump), {"documents": 0, "characters": 0})
        entry["documents"] += documents
        entry["characters"] += characters


@dataclass
class _Doc:
    doc_id: str
    row: int
    characters: int
    tokens: int | None
    url: str | None
    date: str | None
    dump: str | None

    def identity(self, shard: str) -> dict:
        """The columns every unit table starts with (the document fields of `audit.rundir`'s schemas)."""
        return {
            "doc_id": self.doc_id,
            "shard": shard,
            "row": self.row,
            "url": self.url,
            "domain": registered_domain(self.url),
            "date": self.date,
            "dump": self.dump,
        }


def _docs(
    batch: dict[str, pa.Array],
    rows: np.ndarray,
    index: np.ndarray,
    lengths: np.ndarray,
    tokens: np.ndarray | None,
    relpath: str,
) -> list[_Doc]:
    ids = _doc_ids(batch, rows, index, relpath)
    urls, dates, dumps = (_column_values(batch, role, index) for role in ("url", "date", "dump"))
    token_values = [None] * len(index) if tokens is None else tokens[index].tolist()
    return [
        _Doc(doc_id, int(row), int(length), token, url, date, dump)
        for doc_id, row, length, token, url, date, dump in zip(
            ids, rows[index].tolist(), lengths[index].tolist(), token_values, urls, dates, dumps, strict=True
        )
    ]


def _classify_docs(docs: list[_Doc], texts: list[str], tagger: PassageTagger, seed: int, out: _Collector) -> None:
    spans = [split_passages(t) for t in texts]
    passages = [t[a:b] for t, doc_spans in zip(texts, spans, strict=True) for a, b in doc_spans]
    probs, labels, gated = tag_passages(tagger, passages)
    out.passages_by_label += np.bincount(labels, minlength=len(LABELS))
    out.counts["passages"] += len(passages)
    out.counts["passages_gated"] += int(gated.sum())
    out.histogram += np.histogram(probs[gated, 0], bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
    counts = np.fromiter((len(s) for s in spans), dtype=np.int64, count=len(spans))
    chars = np.fromiter((b - a for s in spans for a, b in s), dtype=np.int64, count=len(passages))
    aggregates = _doc_aggregates(probs, labels, chars, gated, counts)
    relpath = out.unit.shard.relpath
    label_list = labels.tolist()
    offset = 0
    for doc, doc_spans, aggregate in zip(docs, spans, aggregates, strict=True):
        identity = doc.identity(relpath)
        for index, (start, end) in enumerate(doc_spans):
            label, key = label_list[offset + index], doc_hash(f"{doc.doc_id}#{index}", seed)
            if label != NO_AI or out.gated_sample.wants(key):  # build a row only for a passage that is kept
                row = _passage_row(identity, index, start, end, passages[offset + index], probs[offset + index], label)
                if label != NO_AI:
                    out.flagged.append(row)
                out.gated_sample.offer(key, lambda row=row: row)
        out.docs.append({**identity, "characters": doc.characters, "tokens": doc.tokens, **aggregate})
        offset += len(doc_spans)


def _passage_row(identity: dict, index: int, start: int, end: int, text: str, probs: np.ndarray, label: int) -> dict:
    return {
        **identity,
        "passage_index": index,
        "char_start": start,
        "char_end": end,
        "text": text,
        "label": LABELS[label],
        "score": float(probs[label]),
        **{f"p_{name}": float(p) for name, p in zip(LABELS, probs, strict=True)},
        "cluster_id": None,
    }


def _doc_aggregates(
    probs: np.ndarray, labels: np.ndarray, chars: np.ndarray, gated: np.ndarray, counts: np.ndarray
) -> list[dict]:
    """Per document (``counts`` passages each, in order), the aggregates over its passages that docs.parquet holds:
    computed for the whole batch at once."""
    documents = len(counts)
    owner = np.repeat(np.arange(documents), counts)
    starts = np.minimum(np.cumsum(counts) - counts, max(len(labels) - 1, 0))
    filled = counts > 0

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=values, minlength=documents)

    def per_document(ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        return np.where(filled, ufunc.reduceat(values, starts), 0.0) if len(values) else np.zeros(documents)

    columns = {
        "passages": counts,
        "gated_passages": total(gated).astype(np.int64),
        "gated_characters": total(chars * gated).astype(np.int64),
    }
    for index, name in enumerate(AI_LABELS):
        p = probs[:, index].astype(np.float64)
        mine = labels == index
        columns[f"n_{name}"] = total(mine).astype(np.int64)
        columns[f"chars_{name}"] = total(chars * mine).astype(np.int64)
        columns[f"max_p_{name}"] = per_document(np.maximum, p)
        columns[f"any_p_{name}"] = np.where(filled, 1.0 - per_document(np.multiply, 1.0 - p), 0.0)
        columns[f"sum_p_{name}"] = total(p)
        columns[f"sum_pchars_{name}"] = total(p * chars)
    names, values = list(columns), [column.tolist() for column in columns.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _row_keys(rows: np.ndarray, salt: int) -> np.ndarray:
    """A 64-bit pseudo-random key per row (splitmix64 of row + salt): vectorised, stable across runs and machines."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64(salt)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _sample_rejected(
    batch: dict[str, pa.Array], rows: np.ndarray, index: np.ndarray, seed: int, out: _Collector
) -> None:
    """Offer the gate-rejected documents with the smallest keys to the bottom-k audit sample."""
    if not len(index):
        return
    relpath = out.unit.shard.relpath
    keys = _row_keys(rows[index], doc_hash(relpath, seed))
    smallest = np.argsort(keys)[: out.rejected_sample.k]
    for i, key in zip(index[smallest].tolist(), keys[smallest].tolist(), strict=True):

        def row(i: int = i) -> dict:
            one = np.array([i])
            doc = _docs(batch, rows, one, np.zeros(len(rows), np.int64), None, relpath)[0]
            body = (batch["text"][i].as_py() or "")[:SAMPLE_TEXT_CHARS]
            return {
                "kind": "gate_rejected",
                **doc.identity(relpath),
                "char_start": 0,
                "char_end": len(body),
                "text": body,
                "label": "no_ai",
            }

        out.rejected_sample.offer(key, row)


def _sample_table(out: _Collector) -> pa.Table:
    gated = [{**r, "kind": "gated", "sample_hash": key} for key, r in out.gated_sample.rows]
    rejected = [{**r, "sample_hash": key} for key, r in out.rejected_sample.rows]
    rows = [{k: r.get(k) for k in SAMPLE_SCHEMA.names} for r in gated + rejected]
    return _table(rows, SAMPLE_SCHEMA)


def _signature_column(values: np.ndarray) -> pa.Array:
    """MinHash signatures (n x NUM_PERM uint32) as a fixed-size list column."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=pa.uint32()), NUM_PERM)


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    if not rows:
        return schema.empty_table()
    return pa.Table.from_pylist(rows, schema=schema)
