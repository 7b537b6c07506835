"""Near-duplicate families and concentration figures."""

import json

import numpy as np
import polars as pl
import pytest
import xxhash
from datasketch import MinHash
from support import SHARDS

from audit.clusters import (canonical_order, cluster_ids, cluster_table, concentration, gini, merge_bottom_k,
                            near_duplicate_share, sample_duplicates, top_clusters, top_domains)
from audit.minhash import shingles, signatures

SYLLABLES = ["ka", "lo", "mi", "tu", "ren", "sa", "vo", "de", "ni", "pa", "zu", "ob", "el", "ir", "qua"]


def made_up_text(rng: np.random.Generator, words: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 5)))) for _ in range(words)]


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles(a)), set(shingles(b))
    return len(sa & sb) / len(sa | sb)


def edited_copy(words: list[str], target: float, rng: np.random.Generator) -> str:
    """Replace words at random positions until the exact shingle Jaccard to the original falls to `target`."""
    original, copy = " ".join(words), list(words)
    while exact_jaccard(original, " ".join(copy)) > target:
        copy[int(rng.integers(len(copy)))] = "".join(rng.choice(SYLLABLES, size=6))
    return " ".join(copy)


def datasketch_jaccard(a: str, b: str) -> float:
    sketches = []
    for text in (a, b):
        sketch = MinHash(num_perm=128, seed=1, hashfunc=xxhash.xxh32_intdigest)
        sketch.update_batch([s.encode("utf-8") for s in shingles(text)])
        sketches.append(sketch)
    return sketches[0].jaccard(sketches[1])


def assert_families_verified(ids: np.ndarray, sig: np.ndarray, threshold: float = 0.7) -> None:
    """No merge without evidence: in a family of 2+, every member reaches the threshold with another member."""
    for family in np.unique(ids):
        members = np.flatnonzero(ids == family)
        if len(members) < 2:
            continue
        similarity = (sig[members][:, None, :] == sig[members][None, :, :]).mean(axis=2)
        np.fill_diagonal(similarity, 0)
        assert (similarity.max(axis=1) >= threshold).all(), f"family {family} holds an unverified member"


@pytest.fixture(scope="module")
def planted():
    """Six made-up originals of 150 words, each with four copies edited to one target Jaccard."""
    rng = np.random.default_rng(11)
    texts, family, target = [], [], []
    for number, jaccard in enumerate([0.9, 0.8, 0.9, 0.7, 0.6, 0.5]):
        words = made_up_text(rng, 150)
        texts.append(" ".join(words))
        family.append(number)
        target.append(1.0)
        for _ in range(4):
            texts.append(edited_copy(words, jaccard, rng))
            family.append(number)
            target.append(jaccard)
    return texts, np.array(family), np.array(target)


def test_planted_families_recovered_above_threshold_and_apart_below(planted):
    texts, family, target = planted
    sig = signatures(texts)
    ids = cluster_ids(sig, keys=np.arange(len(texts)))
    originals = {number: ids[np.flatnonzero((family == number) & (target == 1.0))[0]] for number in set(family)}
    for i, text in enumerate(texts):
        original = texts[np.flatnonzero((family == family[i]) & (target == 1.0))[0]]
        if target[i] >= 0.8:
            assert ids[i] == originals[family[i]], f"copy {i} at Jaccard {exact_jaccard(original, text):.2f} lost"
        if target[i] <= 0.6:
            assert datasketch_jaccard(original, text) < 0.7
            assert np.sum(ids == ids[i]) == 1, f"copy {i} at Jaccard {exact_jaccard(original, text):.2f} merged"
    assert_families_verified(ids, sig)
    # Different originals never meet.
    assert len(set(originals.values())) == len(originals)


def test_lsh_false_positives_are_rejected():
    rng = np.random.default_rng(5)
    sig = rng.integers(0, 2**32, size=(3, 128), dtype=np.uint32)
    sig[1, :16] = sig[0, :16]  # one whole band (and more) in common, estimated Jaccard 0.125
    sig[2] = sig[0]
    sig[2, 100:] += 1  # estimated Jaccard 100/128
    assert cluster_ids(sig, keys=[0, 1, 2]).tolist() == [0, 1, 0]


def test_chains_join_into_one_family_with_the_smallest_canonical_position():
    rng = np.random.default_rng(8)
    rows = [rng.integers(0, 2**32, size=128, dtype=np.uint32)]
    for step in range(7):  # each step changes a new 12% slice: neighbours ~0.88, ends ~0.2
        row = rows[-1].copy()
        row[step * 16: step * 16 + 16] ^= np.uint32(0xFFFF)
        rows.append(row)
    sig = np.stack(rows + [rng.integers(0, 2**32, size=128, dtype=np.uint32)])
    keys = [("s", 100 - i) for i in range(len(sig))]  # canonical order is the reverse of the input
    ids = cluster_ids(sig, keys)
    assert (sig[0] == sig[7]).mean() < 0.7
    assert ids.tolist() == [1] * 8 + [0]


def test_ids_do_not_depend_on_input_order_or_batching(planted):
    texts, _, _ = planted
    keys = [("shard-b" if i % 2 else "shard-a", i // 2, 0) for i in range(len(texts))]
    reference = cluster_ids(signatures(texts), keys)
    expected = dict(zip(keys, reference, strict=True))
    rng = np.random.default_rng(2)
    for permutation in (rng.permutation(len(texts)), np.r_[len(texts) // 2: len(texts), 0: len(texts) // 2]):
        shuffled = [texts[i] for i in permutation]
        half = len(texts) // 2
        sig = np.concatenate([signatures(shuffled[:half]), signatures(shuffled[half:])])
        ids = cluster_ids(sig, [keys[i] for i in permutation])
        assert [expected[keys[i]] for i in permutation] == ids.tolist()
    # The id of a family is the canonical position of its first member.
    order = canonical_order(keys)
    for family in np.unique(reference):
        members = np.flatnonzero(reference == family)
        assert family == min(np.flatnonzero(np.isin(order, members)))


def test_keys_and_signatures_are_checked():
    sig = signatures(["a b c d e f", "g h i j k l"])
    with pytest.raises(ValueError, match="unique"):
        cluster_ids(sig, keys=[("x", 1), ("x", 1)])
    with pytest.raises(ValueError, match="3 keys"):
        cluster_ids(sig, keys=[1, 2, 3])
    with pytest.raises(ValueError, match="2-D integer"):
        cluster_ids(sig.astype(float), keys=[1, 2])
    assert cluster_ids(np.empty((0, 128), dtype=np.uint32), keys=np.empty(0, dtype=np.int64)).tolist() == []


@pytest.mark.shared_data
def test_repeated_ai_paragraphs_in_real_shards_share_a_family():
    docs = pl.concat([pl.read_parquet(path, columns=["id", "text"]) for path in sorted(SHARDS.glob("*.parquet"))])
    ai_docs = docs.filter(pl.col("text").str.contains(r"\bAI\b|(?i)artificial intelligence|(?i)\brobots?\b"))
    paragraphs = (ai_docs.with_columns(pl.col("text").str.split("\n").alias("paragraph"))
                  .explode("paragraph").with_columns(pl.int_range(pl.len()).over("id").alias("index"))
                  .with_columns(pl.col("paragraph").str.strip_chars())
                  .filter(pl.col("paragraph").str.len_chars() > 150)
                  .select("id", "index", "paragraph"))
    sig = signatures(paragraphs["paragraph"].to_list())
    ids = cluster_ids(sig, paragraphs.select("id", "index"))
    repeated = (paragraphs.with_columns(pl.Series("cluster_id", ids))
                .group_by("paragraph").agg(pl.col("id").n_unique().alias("documents"),
                                           pl.col("cluster_id").n_unique().alias("families"))
                .filter(pl.col("documents") >= 2))
    assert repeated.height >= 20, "expected the shards' repeated AI paragraphs"
    assert repeated["families"].max() == 1, "a repeated paragraph was split across families"
    assert_families_verified(ids, sig)
    # Families are more than exact copies: some hold paragraphs whose text differs.
    texts_per_family = (paragraphs.with_columns(pl.Series("cluster_id", ids))
                        .group_by("cluster_id").agg(pl.col("paragraph").n_unique()))
    assert texts_per_family["paragraph"].max() >= 2


@pytest.fixture
def hand_built():
    """Eight passages in six documents: a copied story on three sites, and a family that crosses labels."""
    return pl.DataFrame(
        {
            "doc_id": ["d1", "d2", "d3", "d3", "d4", "d5", "d6", "d6"],
            "shard": ["s0", "s0", "s1", "s1", "s1", "s2", "s2", "s2"],
            "row": [0, 1, 0, 0, 5, 2, 3, 3],
            "passage_index": [0, 0, 1, 4, 0, 0, 0, 1],
            "domain": ["a.com", "a.com", "b.org", "b.org", "c.net", "a.com", None, None],
            "date": [
                "2024-05-01",
                "2023-01-09",
                "2024-02-02",
                "2024-02-02",
                None,
                "2022-12-31",
                "2025-01-01",
                "2025-01-01",
            ],
            "dump": ["CC-1", "CC-1", "CC-2", "CC-2", "CC-2", "CC-1", None, None],
            "label": [
                "misaligned_ai",
                "misaligned_ai",
                "misaligned_ai",
                "neutral_ai",
                "misaligned_ai",
                "neutral_ai",
                "aligned_ai",
                "misaligned_ai",
            ],
            "score": [0.9, 0.8, 0.7, 0.6, 0.95, 0.5, 0.9, 0.6],
            "text": ["story v1", "story v2", "story v3", "launch", "essay", "launch copy", "helper", "doom"],
            "cluster_id": [0, 0, 0, 3, 4, 3, 6, 7],
        }
    )


def test_concentration_figures_on_a_hand_built_corpus(hand_built):
    block = concentration(hand_built, k=2)
    misaligned = block["misaligned_ai"]
    # Misaligned documents: d1, d2 (a.com), d3 (b.org), d4 (c.net), d6 (no domain) -> 5 documents.
    assert misaligned["top_domains"] == [
        {"domain": "a.com", "documents": 2, "share": 0.4},
        {"domain": "b.org", "documents": 1, "share": 0.2},
    ]
    assert misaligned["top_clusters"] == [{"cluster_id": 0, "passages": 3, "documents": 3, "domains": 2}]
    assert misaligned["gini_domains"] == pytest.approx(gini([2, 1, 1, 1]))
    assert misaligned["near_duplicate_share"] == pytest.approx(3 / 5)
    assert misaligned["by_dump"] == [
        {"dump": "CC-1", "documents": 2},
        {"dump": "CC-2", "documents": 2},
        {"dump": None, "documents": 1},
    ]
    # The neutral passages are one family across two documents and domains.
    neutral = block["neutral_ai"]
    assert neutral["near_duplicate_share"] == 1.0
    assert neutral["top_clusters"] == [{"cluster_id": 3, "passages": 2, "documents": 2, "domains": 2}]
    assert block["aligned_ai"]["near_duplicate_share"] == 0.0
    assert block["aligned_ai"]["top_domains"] == [{"domain": None, "documents": 1, "share": 1.0}]


def test_concentration_primitives():
    assert gini([3, 3, 3]) == 0.0
    assert gini([0, 0, 10]) == pytest.approx(2 / 3)
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert gini([]) == 0.0
    assert near_duplicate_share([5, 5, 6, 7, 7, 7]) == pytest.approx(5 / 6)
    assert near_duplicate_share([6], families=[5, 6, 6]) == 1.0
    assert near_duplicate_share([]) == 0.0
    assert top_domains(["x.com", "y.com", "y.com"], k=5)[0] == {"domain": "y.com", "documents": 2, "share": 2 / 3}
    assert top_domains([]) == []
    frame = pl.DataFrame(
        {
            "cluster_id": [1, 1, 2, 2, 3],
            "doc_id": ["a", "b", "c", "c", "d"],
            "domain": ["p.com", "p.com", None, None, "q.com"],
        }
    )
    assert [c["cluster_id"] for c in top_clusters(frame)] == [1, 2]
    assert top_clusters(frame, k=1)[0]["domains"] == 1


def test_cluster_table(hand_built):
    table = cluster_table(hand_built)
    assert table["cluster_id"].to_list() == [0, 3, 4, 6, 7]
    story = table.row(0, named=True)
    assert (story["size"], story["documents"], story["domains"]) == (3, 3, 2)
    assert (story["n_misaligned_ai"], story["n_aligned_ai"], story["n_neutral_ai"]) == (3, 0, 0)
    assert story["exemplar_doc_id"] == "d1" and story["exemplar_text"] == "story v1"
    assert (story["first_date"], story["last_date"]) == ("2023-01-09", "2024-05-01")
    assert story["top_domains"] == ["a.com", "b.org"]
    launch = table.row(1, named=True)
    assert (launch["n_neutral_ai"], launch["exemplar_text"], launch["first_date"]) == (2, "launch", "2022-12-31")
    assert table.filter(pl.col("cluster_id") == 6)["top_domains"].to_list() == [[]]


def test_near_duplicate_share_at_a_sampling_rate():
    ids = np.array([1, 1, 1, 2, 3, 3])
    # Sizes 3, 3, 3, 1, 2, 2: chance that another member is sampled too.
    expected = (3 * (1 - 0.9**2) + 0 + 2 * (1 - 0.9)) / 6
    assert near_duplicate_share(ids, rate=0.1) == pytest.approx(expected)
    assert near_duplicate_share(ids, rate=1.0) == near_duplicate_share(ids)


def test_bottom_k_samples_merge_into_one_uniform_sample():
    full = pl.DataFrame({"sample_hash": np.array([5, 9, 40], dtype=np.uint64), "unit": "a"})
    fuller = pl.DataFrame({"sample_hash": np.array([1, 2, 30], dtype=np.uint64), "unit": "b"})
    small = pl.DataFrame({"sample_hash": np.array([3, 50], dtype=np.uint64), "unit": "c"})
    merged, rate = merge_bottom_k([full, fuller, small], k=3)
    # Full units cut at 40 and 30: only hashes up to 30 are certain to be kept wherever they fall.
    assert sorted(merged["sample_hash"].to_list()) == [1, 2, 3, 5, 9, 30]
    assert rate == pytest.approx(31 / 2**64)
    merged, rate = merge_bottom_k([small], k=3)
    assert (merged.height, rate) == (2, 1.0)


def test_sample_duplicates_counts_copies_within_the_sample():
    rng = np.random.default_rng(4)
    story = " ".join(made_up_text(rng, 60))
    sample = pl.DataFrame(
        {
            "shard": ["s"] * 4,
            "row": [0, 1, 2, 3],
            "passage_index": [0, 0, 0, 0],
            "text": [story, story + " again", " ".join(made_up_text(rng, 60)), "short text"],
        }
    )
    assert sample_duplicates(sample, rate=0.25) == {"passages": 4, "sampling_rate": 0.25, "near_duplicate_share": 0.5}


def test_concentration_by_year_and_at_sample_rate(hand_built):
    block = concentration(hand_built, sample_rate=0.5)
    misaligned = block["misaligned_ai"]
    assert misaligned["by_year"] == [
        {"year": "2023", "documents": 1},
        {"year": "2024", "documents": 2},
        {"year": "2025", "documents": 1},
        {"year": None, "documents": 1},
    ]
    # Three of the five misaligned passages are in a family of three (another member sampled: 1 - 0.5^2).
    assert misaligned["near_duplicate_share_at_sample_rate"] == pytest.approx(3 * 0.75 / 5)


@pytest.mark.shared_data
def test_same_families_from_one_and_two_workers(tmp_path):
    from audit.config import ScanConfig
    from audit.pipeline import scan

    runs = []
    for name, workers, unit_bytes in (("one", 1, 256 * 2**20), ("two", 2, 2**20)):
        out = tmp_path / name
        scan(ScanConfig(inputs=[str(SHARDS)], out=out, workers=workers, unit_bytes=unit_bytes))
        passages = pl.read_parquet(out / "passages.parquet").sort("shard", "row", "passage_index")
        summary = json.loads((out / "summary.json").read_text())
        runs.append((passages, pl.read_parquet(out / "clusters.parquet"), summary["concentration"]))
    (one, one_clusters, one_block), (two, two_clusters, two_block) = runs
    assert one.height > 0 and one_clusters["size"].max() >= 2
    families = ["doc_id", "passage_index", "cluster_id", "document_cluster_id"]
    assert one.select(families).equals(two.select(families))
    assert one_clusters.equals(two_clusters)
    assert set(one_clusters["level"]) == {"passage", "document"}
    assert one_block["misaligned_ai"]["document_near_duplicate_share"] > 0
    contrast = one_block["gated_sample"]
    assert contrast["passages"] > 0 and 0 < contrast["sampling_rate"] < 1
    assert (
        0
        <= one_block["misaligned_ai"]["near_duplicate_share_at_sample_rate"]
        <= one_block["misaligned_ai"]["near_duplicate_share"]
    )
    for label in ("misaligned_ai", "aligned_ai", "neutral_ai"):
        # The gated sample (and the figures set against it) follows the unit plan; the rest must not.
        for block in (one_block, two_block):
            block[label].pop("near_duplicate_share_at_sample_rate")
        assert one_block[label] == two_block[label]


def test_planted_copies_join_their_families_and_text_sharing_only_shared_lines_stays_apart():
    """Real AI texts (half of them one long paragraph) copied with small edits into real host documents
    (audit/planted_families.py; benchmarks/clusters.md has the table over three seeds)."""
    from audit import planted_families

    result = planted_families.score(planted_families.plant(planted_families.real_documents(SHARDS), 100, seed=0))
    table = result["recall"]
    recall = {kind: row["either"] / row["copies"] for kind, row in table.items()}
    two_percent = [table[kind] for kind in ("drop 2%", "replace 2%")]
    assert sum(row["either"] for row in two_percent) / sum(row["copies"] for row in two_percent) >= 0.95, recall
    assert recall["drop 1%"] >= 0.95, recall
    for kind in ("sentences reordered", "paragraph added", "paragraph removed"):
        assert recall[kind] >= 0.85, recall
    # Most of each copy's text, not just one passage of it, sits in the original's families.
    assert all(row["covered"] / row["copies"] >= 0.8 for row in two_percent), table
    assert result["false_merges"] == []


def test_document_families_in_the_table_and_the_concentration_block(hand_built):
    # d1, d2 and d3 are one story (d3 with a launch passage besides); d6's two passages are one document.
    frame = hand_built.with_columns(document_cluster_id=pl.Series([0, 0, 0, 0, 4, 5, 6, 6]))
    table = cluster_table(frame)
    assert table["level"].to_list() == ["passage"] * 5 + ["document"] * 4
    documents = table.filter(pl.col("level") == "document")
    story = documents.row(0, named=True)
    assert (story["cluster_id"], story["size"], story["documents"], story["n_misaligned_ai"]) == (0, 3, 3, 3)
    assert story["exemplar_text"] == "story v1"
    assert documents.filter(pl.col("cluster_id") == 6)["exemplar_text"].to_list() == ["helper\ndoom"]
    block = concentration(frame, k=2)["misaligned_ai"]
    assert block["top_clusters"] == concentration(hand_built, k=2)["misaligned_ai"]["top_clusters"]
    assert block["top_document_clusters"] == [{"cluster_id": 0, "passages": 3, "documents": 3, "domains": 2}]
    # Misaligned documents d1, d2, d3 (family of three), d4 and d6 (alone): 3 of 5.
    assert block["document_near_duplicate_share"] == pytest.approx(3 / 5)


def test_a_story_republished_with_a_new_intro_is_one_document_family():
    from audit.clusters import document_cluster_ids
    from audit.passages import split_passages

    rng = np.random.default_rng(1)
    story = "\n".join(" ".join(made_up_text(rng, 25)) + "." for _ in range(10))
    republished = " ".join(made_up_text(rng, 20)) + ".\n" + story
    unrelated = " ".join(made_up_text(rng, 200))
    texts, documents = [], []
    for number, document in enumerate([story, republished, unrelated]):
        spans = split_passages(document)
        texts += [document[a:b] for a, b in spans]
        documents += [number] * len(spans)
    sig, documents = signatures(texts), np.array(documents)
    passages = cluster_ids(sig, np.arange(len(texts)))
    # The new intro joins the story's first paragraph: that passage has no family in the original ...
    assert not set(passages[documents == 1]) >= set(passages[documents == 0])
    # ... but the two documents are one family.
    expected = np.where(documents <= 1, 0, 2)
    assert document_cluster_ids(sig, documents).tolist() == expected.tolist()
