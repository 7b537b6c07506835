"""Near-duplicate families from MinHash signatures, and how concentrated the flagged text is.

Families: LSH banding puts signatures that agree on a whole band of rows into one bucket; within each bucket we
pair every member with the bucket's first member and with its predecessor (in canonical order), keep the pairs
whose estimated Jaccard similarity (share of equal signature values) reaches the threshold, and join the kept
pairs into connected components. A family's id is the smallest canonical position among its members, the
canonical order being the sort order of the caller's keys (e.g. shard, row, passage_index), so ids do not depend
on the number of workers, the engine or the input order. Everything is numpy over whole arrays: no Python loop
runs per signature.

Pairing with the first member and the predecessor keeps the candidate pairs linear in the bucket size (a story
copied 10,000 times makes 20,000 pairs per band, not 50 million); a member that is similar to some bucket-mate but to
neither of those two can only be joined through another band. With 20 bands of 6 rows at threshold 0.7 that
loss is rare and only ever splits a family, never merges unrelated text.

Memory: the signatures themselves (n x 128 uint32 = 512 MB for a million) plus O(n) per band, and O(pairs) for
the candidates. Past one machine the same design is a shuffle: band buckets are a group-by on (band, band hash),
pairs are verified where the two signatures meet, and the components come from a distributed union-find.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import polars as pl
from datasketch.lsh import _optimal_param

from audit import minhash
from audit.labels import AI_LABELS

THRESHOLD = 0.7
# Breakdowns of each label's documents: (summary key, source column, the period a row falls in).
PERIODS = (("by_dump", "dump", pl.col("dump")),
           ("by_year", "date", pl.col("date").str.extract(r"^(\d{4})").alias("year")))
# Candidate pairs verified per step: 64k pairs x 2 x 128 x 4 bytes = 64 MiB of gathered signature rows.
_VERIFY_CHUNK = 1 << 16


@lru_cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) by datasketch's own optimiser, weighted 0.1 / 0.9 against false negatives.

    Every candidate pair is verified, so a false positive costs only a comparison, while a false negative
    splits a family for good. datasketch's default equal weights give (14, 9) at 0.7, which finds a pair of
    true Jaccard 0.75 only 67% of the time; (20, 6) finds it 98% of the time (0.7: 92%, 0.8: 99.8%).

    Example:
        >>> lsh_params(0.7, 128)
        (20, 6)
    """
    return _optimal_param(threshold, num_perm, 0.1, 0.9)


def canonical_order(keys: pl.DataFrame | np.ndarray | Sequence) -> np.ndarray:
    """Input positions sorted by the keys: the canonical order that cluster ids are taken from.

    `keys` is a polars DataFrame (sorted by its columns left to right), a 1-D array, or a sequence of tuples
    such as (shard, row, passage_index). Keys must be unique, or the order would depend on the input order.

    Example:
        >>> canonical_order([("b.parquet", 0, 1), ("a.parquet", 7, 0), ("b.parquet", 0, 0)]).tolist()
        [1, 2, 0]
    """
    if isinstance(keys, pl.DataFrame):
        frame = keys
    elif len(keys) and isinstance(keys[0], (tuple, list)):
        frame = pl.DataFrame(list(keys), orient="row")
    else:
        frame = pl.DataFrame({"key": keys})
    if frame.is_duplicated().any():
        first = frame.filter(frame.is_duplicated()).row(0)
        raise ValueError(f"cluster keys must be unique, but {first} occurs more than once; "
                         "pass keys that identify each passage, e.g. (shard, row, passage_index)")
    cols = frame.columns
    return frame.with_row_index("position").sort(cols)["position"].to_numpy().astype(np.int64)


def cluster_ids(
    signatures: np.ndarray,
    keys: pl.DataFrame | np.ndarray | Sequence,
    threshold: float = THRESHOLD,
) -> np.ndarray:
    """The near-duplicate family of every signature: an int64 array, equal ids meaning one family.

    The id of a family is the smallest canonical position (see `canonical_order`) among its members, so a
    family of one has its own id and the ids are the same for any permutation of the input rows.

    Example:
        >>> from audit.minhash import signatures
        >>> texts = ["the robot would not let the engineers switch it off that night",
        ...          "the robot would not let the engineers switch it off that night!",
        ...          "a recipe for bread with flour water salt and a little yeast"]
        >>> cluster_ids(signatures(texts), keys=[2, 1, 0]).tolist()
        [1, 1, 0]
    """
    if signatures.ndim != 2 or signatures.dtype.kind not in "ui":
        raise ValueError(f"signatures must be a 2-D integer array (passages x permutations), "
                         f"got shape {signatures.shape} and dtype {signatures.dtype}")
    n, num_perm = signatures.shape
    order = canonical_order(keys)
    if len(order) != n:
        raise ValueError(f"got {n} signatures but {len(order)} keys; pass one key per signature")
    bands, rows = lsh_params(threshold, num_perm)
    pairs = np.unique(np.concatenate(
        [_bucket_pairs(_band_hash(signatures, band * rows, rows)[order]) for band in range(bands)]))
    first, second = pairs // max(n, 1), pairs % max(n, 1)
    similar = _estimated_jaccard(signatures, order[first], order[second]) >= threshold - 1e-9
    family = _components(n, first[similar], second[similar])
    ids = np.empty(n, dtype=np.int64)
    ids[order] = family
    return ids


def document_cluster_ids(signatures: np.ndarray, documents: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The document-level family of every passage's document, given the passages' signatures and document codes.

    A document's signature is the elementwise minimum of its passages' signatures: the MinHash of the union of
    their shingles, i.e. of the passages' text taken together whatever the boundaries (only the few shingles that
    straddle a boundary are missing), and no text is hashed again. Document codes are integers whose sort order
    is the canonical order (e.g. a dense rank of (shard, row)); a family's id is its smallest code.

    Example:
        >>> from audit.minhash import signatures
        >>> story = " ".join(f"the robot {verb} the engineers that night" for verb in
        ...                  ["watched", "ignored", "locked out", "lied to", "outwitted", "copied itself past"])
        >>> cut, other = story.index("locked"), story.index("lied")
        >>> sig = signatures([story[:cut], story[cut:], story[:other], story[other:] + "!", "a recipe for bread"])
        >>> document_cluster_ids(sig, np.array([7, 7, 3, 3, 5])).tolist()
        [3, 3, 3, 3, 5]
    """
    documents = np.asarray(documents, dtype=np.int64)
    order = np.argsort(documents, kind="stable")
    codes = documents[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.empty(0, dtype=np.intp)
    if not len(starts):
        return np.empty(0, dtype=np.int64)
    passages = np.diff(np.r_[starts, len(order)])
    merged = signatures[order[starts]]  # each document's first passage, then the minimum with its k-th passage
    for k in range(1, int(passages.max())):
        longer = np.flatnonzero(passages > k)
        for chunk in np.array_split(longer, len(longer) // _VERIFY_CHUNK + 1):
            merged[chunk] = np.minimum(merged[chunk], signatures[order[starts[chunk] + k]])
    families = cluster_ids(merged, codes[starts], threshold)
    return codes[starts][families][np.searchsorted(codes[starts], documents)]


def _band_hash(signatures: np.ndarray, start: int, rows: int) -> np.ndarray:
    """One 64-bit hash per signature of its values in columns [start, start + rows): equal bands, equal hash."""
    h = np.full(len(signatures), 0xCBF29CE484222325, dtype=np.uint64)
    for col in range(start, start + rows):
        h ^= signatures[:, col].astype(np.uint64)
        h *= np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
    return h


def _bucket_pairs(band_keys: np.ndarray) -> np.ndarray:
    """Candidate pairs (encoded lo * n + hi, canonical positions) from one band, given its keys in canonical order.

    Each key's low bits give way to its position and the packed values are sorted: the same order as a stable
    sort of the keys (bucket members in canonical order, so a bucket's first member is its smallest position),
    about twice as fast. Two bands that differ only in those low bits share a bucket; verification rejects the
    pair they make.
    """
    n = len(band_keys)
    bits = np.uint64(max(1, (n - 1).bit_length()))
    packed = np.sort((band_keys >> bits << bits) | np.arange(n, dtype=np.uint64))
    members = (packed & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    sorted_keys = packed >> bits
    same = np.empty(n, dtype=bool)
    same[:1] = False
    same[1:] = sorted_keys[1:] == sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
    follower = np.flatnonzero(same)
    to_first = members[run_start[follower]] * n + members[follower]
    previous = follower[run_start[follower] != follower - 1]
    to_previous = members[previous - 1] * n + members[previous]
    return np.concatenate([to_first, to_previous]).astype(np.int64)


def _estimated_jaccard(signatures: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Share of equal values between signature rows left[i] and right[i] (datasketch's MinHash.jaccard)."""
    out = np.empty(len(left), dtype=np.float64)
    for start in range(0, len(left), _VERIFY_CHUNK):
        chunk = slice(start, start + _VERIFY_CHUNK)
        equal = signatures[left[chunk]] == signatures[right[chunk]]
        out[chunk] = equal.sum(axis=1) / signatures.shape[1]
    return out


def _components(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected components of the graph on 0..n-1 with edges (first[i], second[i]); each node gets its
    component's smallest node.

    Union-find done array-wise: every unsatisfied edge hooks the larger of its two roots under the smaller,
    then pointer jumping flattens the trees. Parents only ever decrease, so the single root left in each
    component is its smallest node, whatever order the edges come in.
    """
    parent = np.arange(n, dtype=np.int64)
    while True:
        root_a, root_b = parent[first], parent[second]
        apart = root_a != root_b
        if not apart.any():
            return parent
        low = np.minimum(root_a[apart], root_b[apart])
        np.minimum.at(parent, root_a[apart], low)
        np.minimum.at(parent, root_b[apart], low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def top_domains(domains: Sequence[str | None] | pl.Series, k: int = 10) -> list[dict]:
    """The k domains holding most documents, given one domain per document, with their share of all documents.

    Ties are broken by domain name so the list is stable; documents without a domain count as domain None.

    Example:
        >>> top_domains(["a.com", "b.org", "a.com", "c.net"], k=2)
        [{'domain': 'a.com', 'documents': 2, 'share': 0.5}, {'domain': 'b.org', 'documents': 1, 'share': 0.25}]
    """
    series = pl.Series("domain", domains, dtype=pl.String)
    if series.is_empty():
        return []
    counts = (series.value_counts(name="documents")
              .sort(["documents", "domain"], descending=[True, False], nulls_last=True).head(k))
    return [{"domain": row["domain"], "documents": row["documents"], "share": row["documents"] / len(series)}
            for row in counts.iter_rows(named=True)]


def gini(counts: Sequence[int] | np.ndarray) -> float:
    """Gini coefficient of counts (e.g. documents per domain): 0 when spread evenly, near 1 when one holds all.

    Example:
        >>> gini([5, 5, 5, 5])
        0.0
        >>> gini([0, 0, 0, 12])
        0.75
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, len(x) + 1)
    return float(2 * (ranks * x).sum() / (len(x) * x.sum()) - (len(x) + 1) / len(x))


def near_duplicate_share(cluster_ids: Sequence[int] | np.ndarray,
                         families: Sequence[int] | np.ndarray | None = None, rate: float = 1.0) -> float:
    """Fraction of passages whose family has two or more members.

    Family sizes are counted in `families` (the cluster ids of all passages, when `cluster_ids` is a subset such
    as one label's passages), or else in `cluster_ids` itself. With `rate` < 1 the answer is the share expected
    within a uniform sample that keeps each passage with that probability (a passage in a family of s counts
    1 - (1 - rate)^(s - 1), the chance that another member is sampled too): the figure to set against a share
    measured on such a sample.

    Example:
        >>> near_duplicate_share([1, 1, 2, 3])
        0.5
        >>> near_duplicate_share([2, 3], families=[1, 1, 2, 3, 3])
        0.5
        >>> near_duplicate_share([7, 7, 7], rate=0.5)
        0.75
    """
    ids = np.asarray(cluster_ids, dtype=np.int64)
    if len(ids) == 0:
        return 0.0
    pool = ids if families is None else np.asarray(families, dtype=np.int64)
    values, sizes = np.unique(pool, return_counts=True)
    size = np.zeros(len(ids), dtype=np.int64)
    known = np.isin(ids, values)
    size[known] = sizes[np.searchsorted(values, ids[known])]
    return float((1.0 - (1.0 - rate) ** np.maximum(size - 1, 0)).mean())


def merge_bottom_k(unit_samples: Sequence[pl.DataFrame], k: int) -> tuple[pl.DataFrame, float]:
    """One uniform sample from the units' bottom-k hash samples (column `sample_hash`, uint64), and its rate.

    A unit keeps the k rows with the smallest hashes, so every row with a hash up to the smallest cutoff among
    full units is kept whichever unit it is in: those rows are a sample that takes each passage with
    probability cutoff / 2^64, the same for all units.
    """
    cutoffs = [int(frame["sample_hash"].max()) for frame in unit_samples if frame.height >= k]
    frames = [frame for frame in unit_samples if frame.height]
    merged = pl.concat(frames) if frames else pl.DataFrame({"sample_hash": []}, schema={"sample_hash": pl.UInt64})
    if not cutoffs:
        return merged, 1.0
    cutoff = min(cutoffs)
    return merged.filter(pl.col("sample_hash") <= cutoff), (cutoff + 1) / 2**64


def sample_duplicates(sample: pl.DataFrame, rate: float, threshold: float = THRESHOLD) -> dict:
    """Near-duplicate share within a uniform sample of passages (columns shard, row, passage_index, text).

    This is the corpus-wide contrast: compare it with `near_duplicate_share(..., rate=rate)` of a label's
    passages, which is what that label's share would be in a sample of the same rate.
    """
    if not sample.height:
        return {"passages": 0, "sampling_rate": rate, "near_duplicate_share": 0.0}
    signatures = minhash.signatures(sample["text"].to_list())
    ids = cluster_ids(signatures, sample.select("shard", "row", "passage_index"), threshold)
    return {"passages": sample.height, "sampling_rate": rate, "near_duplicate_share": near_duplicate_share(ids)}


def top_clusters(passages: pl.DataFrame, k: int = 10, column: str = "cluster_id") -> list[dict]:
    """The k largest families (two passages or more) among `passages` (columns cluster_id, doc_id, domain),
    with their passages, distinct documents and distinct domains; ties go to the smaller id.

    With ``column="document_cluster_id"``, the document families of two documents or more, largest in documents.

    Example:
        >>> frame = pl.DataFrame({"cluster_id": [4, 4, 4, 9], "doc_id": ["x", "y", "y", "z"],
        ...                       "domain": ["a.com", "b.org", "b.org", "a.com"]})
        >>> top_clusters(frame)
        [{'cluster_id': 4, 'passages': 3, 'documents': 2, 'domains': 2}]
    """
    size = "passages" if column == "cluster_id" else "documents"
    table = (
        passages.group_by(pl.col(column).alias("cluster_id"))
        .agg(
            pl.len().alias("passages"),
            pl.col("doc_id").n_unique().alias("documents"),
            pl.col("domain").drop_nulls().n_unique().alias("domains"),
        )
        .filter(pl.col(size) >= 2)
        .sort([size, "cluster_id"], descending=[True, False])
        .head(k)
    )
    return [{key: int(value) for key, value in row.items()} for row in table.iter_rows(named=True)]


def concentration(passages: pl.DataFrame, k: int = 10, sample_rate: float | None = None) -> dict[str, dict]:
    """The contract's `concentration` block: per AI label, top domains (by documents), top families,
    the Gini coefficient of documents over domains and the near-duplicate share of its passages.

    `passages` holds one row per flagged passage with columns doc_id, domain, label and cluster_id; family
    sizes count passages of every label, so a misaligned passage copied as a neutral one is a near-duplicate.
    With `sample_rate`, each label also gets `near_duplicate_share_at_sample_rate` (see `sample_duplicates`).
    When the `dump` or `date` column has values, each label gets `by_dump` / `by_year`: its documents in each.
    With a `document_cluster_id` column, each label also gets the document-level figures beside the passage-level
    ones: `top_document_clusters` (families of two documents or more holding its passages) and
    `document_near_duplicate_share` (the fraction of its documents in such a family).
    """
    block = {}
    families = passages["cluster_id"].to_numpy()
    by_document = "document_cluster_id" in passages.columns
    if by_document:
        document_families = passages.unique("doc_id")["document_cluster_id"].to_numpy()
    for label in AI_LABELS:
        rows = passages.filter(pl.col("label") == label)
        documents = rows.unique("doc_id", keep="first").sort("doc_id")
        per_domain = documents["domain"].value_counts(name="documents")["documents"]
        ids = rows["cluster_id"].to_numpy()
        block[label] = {
            "top_domains": top_domains(documents["domain"], k),
            "top_clusters": top_clusters(rows, k),
            "gini_domains": gini(per_domain.to_numpy()),
            "near_duplicate_share": near_duplicate_share(ids, families),
        }
        if by_document:
            block[label]["top_document_clusters"] = top_clusters(rows, k, column="document_cluster_id")
            block[label]["document_near_duplicate_share"] = near_duplicate_share(
                documents["document_cluster_id"].to_numpy(), document_families
            )
        if sample_rate is not None:
            block[label]["near_duplicate_share_at_sample_rate"] = near_duplicate_share(ids, families, sample_rate)
        for name, source, period in PERIODS:
            if source in passages.columns and passages[source].drop_nulls().len():
                counts = documents.group_by(period).agg(pl.len().alias("documents"))
                block[label][name] = counts.sort(counts.columns[0], nulls_last=True).to_dicts()
    return block


def cluster_table(passages: pl.DataFrame, top: int = 3) -> pl.DataFrame:
    """One row per family (RUN/clusters.parquet): passage families, then (with a document_cluster_id column)
    document families; each level largest first.

    Columns: level ("passage" or "document"), cluster_id, size (passages, or documents at document level),
    documents, domains (distinct counts), n_<label> per AI label (the label mix, in passages), exemplar_doc_id and
    exemplar_text (the family's first passage in canonical order, shard / row / passage_index; at document level
    the first document's flagged passages, one per line), first_date and last_date, and top_domains (up to `top`
    domains, most passages first).
    """
    levels = [("passage", "cluster_id")]
    if "document_cluster_id" in passages.columns:
        levels.append(("document", "document_cluster_id"))
    return pl.concat([_level_table(passages, level, column, top) for level, column in levels])


def _level_table(passages: pl.DataFrame, level: str, column: str, top: int) -> pl.DataFrame:
    ordered = passages.sort(["shard", "row", "passage_index"]).with_columns(pl.col(column).alias("cluster_id"))
    first_doc = pl.col("doc_id") == pl.col("doc_id").first()
    domain_counts = (
        ordered.filter(pl.col("domain").is_not_null())
        .group_by("cluster_id", "domain")
        .agg(pl.len().alias("n"))
        .sort(["cluster_id", "n", "domain"], descending=[False, True, False])
        .group_by("cluster_id", maintain_order=True)
        .agg(pl.col("domain").head(top).alias("top_domains"))
    )
    table = ordered.group_by("cluster_id", maintain_order=True).agg(
        (pl.len() if level == "passage" else pl.col("doc_id").n_unique()).alias("size"),
        pl.col("doc_id").n_unique().alias("documents"),
        pl.col("domain").drop_nulls().n_unique().alias("domains"),
        *[(pl.col("label") == label).sum().alias(f"n_{label}") for label in AI_LABELS],
        pl.col("doc_id").first().alias("exemplar_doc_id"),
        (pl.col("text").first() if level == "passage" else pl.col("text").filter(first_doc).str.join("\n")).alias(
            "exemplar_text"
        ),
        pl.col("date").min().alias("first_date"),
        pl.col("date").max().alias("last_date"),
    )
    return (
        table.join(domain_counts, on="cluster_id", how="left")
        .with_columns(pl.col("top_domains").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .sort(["size", "cluster_id"], descending=[True, False])
        .select(pl.lit(level).alias("level"), pl.all())
    )
