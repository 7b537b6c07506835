"""Family recall and precision on planted near-copies: how well the splitter and MinHash families hold up to the
edits web copies carry (a few words dropped or replaced, sentences reordered, a paragraph added or removed) and to
being embedded at the start, middle or end of another document.

The planted texts and their hosts are real documents read at run time (``shards``); nothing is stored. Each
planted text stands alone once (the original) and is copied, edited, into fresh hosts. A copy *joins* its family
at passage level when one of its passages (one made mostly of copied text) shares a family with a passage of the
original, and at document level when its host's document family is the original's; ``covered`` adds up the share
of each copy's characters that sit in such passages. Every host also carries a
shared boilerplate line and every other host a common quote (text written here), so hosts that share only those
must stay apart. Used by ``tests/test_clusters.py`` and ``benchmarks/bench_clusters.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audit import clusters, minhash
from audit.gate import gate
from audit.labels import LABELS
from audit.passages import sentence_spans, split_passages
from audit.tagger import load_cached, tag_passages

EDITS = ("drop 1%", "drop 2%", "replace 2%", "drop 5%", "replace 5%", "sentences reordered",
         "paragraph added", "paragraph removed")
POSITIONS = ("start", "middle", "end")
BOILERPLATE = ("Share this story with a friend, and sign up for our weekly letter to get more like it in your "
               "inbox every Friday morning.")
QUOTE = ("As the old engineers liked to say, a machine that cannot be switched off is a machine that no longer "
         "belongs to the people who built it.")
_TOKEN = re.compile(r"\s+|\S+")


@dataclass
class Planted:
    """The documents of one planting, and for each copy where its text sits."""
    texts: list[str]
    family: list[int]  # planted text of each document (-1: a host without a copy)
    edit: list[str]  # "original", one of EDITS, or "host"
    position: list[str]
    span: list[tuple[int, int]]  # the planted text's characters in the document ((0, 0) for plain hosts)
    shared: list[list[tuple[int, int]]]  # boilerplate and quote spans


def real_documents(shards: Path) -> list[str]:
    """Texts of the shards' documents that share no paragraph or long sentence (near-duplicates by MinHash) with
    another document, in file and row order.

    The shards hold real copies of their own (syndicated stories, site boilerplate); leaving those documents out
    means every family of the planted corpus has a known truth: a planted text's copies, or the shared lines.
    """
    frames = [pl.read_parquet(path, columns=["text"]) for path in sorted(shards.glob("*.parquet"))]
    texts = pl.concat(frames)["text"].drop_nulls().to_list()
    units = [(doc, i, text[a:b]) for doc, text in enumerate(texts)
             for i, (a, b) in enumerate(_units(text))]
    frame = pl.DataFrame(units, schema=["doc", "index", "text"], orient="row")
    ids = clusters.cluster_ids(minhash.signatures(frame["text"].to_list()), frame.select("doc", "index"))
    copied = set(frame.with_columns(cluster_id=ids)
                 .filter(pl.col("doc").n_unique().over("cluster_id") >= 2)["doc"].to_list())
    return [text for doc, text in enumerate(texts) if doc not in copied]


def _units(text: str) -> list[tuple[int, int]]:
    """Paragraphs, and sentences of eight words or more: the pieces a copy between documents would show in."""
    paragraphs = [(m.start(), m.end()) for m in re.finditer(r"[^\n]*\S[^\n]*", text)]
    sentences = [s for a, b in paragraphs for s in sentence_spans(text, a, b) if len(text[s[0]:s[1]].split()) >= 8]
    return paragraphs + sentences


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n") if p.strip()]


def choose_texts(documents: list[str], count: int, rng: np.random.Generator) -> tuple[list[list[str]], set[int]]:
    """`count` planted texts that name AI, every other one a single long paragraph (260 to 800 words, the kind a
    splitter must cut inside) and the rest runs of 2 to 5 consecutive paragraphs (120 to 600 words); and the
    documents they come from (which then host no copy)."""
    chosen, sources = [], set()
    for index in rng.permutation(len(documents)):
        paragraphs = [p for p in _paragraphs(documents[index]) if len(p.split()) >= 15]
        if len(chosen) % 2:
            run = [p for p in paragraphs if 260 <= len(p.split()) <= 800][:1]
        else:
            start = int(rng.integers(0, max(len(paragraphs) - 1, 1)))
            run = paragraphs[start: start + int(rng.integers(2, 6))]
            run = run if len(run) >= 2 and 120 <= sum(len(p.split()) for p in run) <= 600 else []
        if run and gate(pl.Series(["\n".join(run)]))[0]:
            chosen.append(run)
            sources.add(int(index))
        if len(chosen) == count:
            break
    return chosen, sources


def _edit_words(paragraph: str, share: float, replace: bool, rng: np.random.Generator) -> str:
    tokens = _TOKEN.findall(paragraph)
    words = [i for i, token in enumerate(tokens) if not token.isspace()]
    for i in rng.choice(words, size=max(1, round(share * len(words))), replace=False).tolist():
        if replace:
            tokens[i] = "".join(rng.choice(list("bcdfgklmnprstvz"), size=7))
        else:  # the word goes with the space before it, unless that space breaks a paragraph
            tokens[i] = ""
            if i and "\n" not in tokens[i - 1]:
                tokens[i - 1] = ""
    return "".join(tokens)


def edit(paragraphs: list[str], kind: str, filler: str, rng: np.random.Generator) -> list[str]:
    """An edited copy of a planted text (a list of paragraphs); word edits spread over the whole text. A
    one-paragraph text gets the added paragraph after it, and loses its first quarter of sentences instead of a
    paragraph."""
    paragraphs = list(paragraphs)
    if kind.startswith(("drop", "replace")):
        share = float(kind.split()[1].rstrip("%")) / 100
        text = _edit_words("\n".join(paragraphs), share, kind.startswith("replace"), rng)
        return _paragraphs(text)
    if kind == "sentences reordered":
        longest = max(range(len(paragraphs)), key=lambda i: len(sentence_spans(paragraphs[i])))
        sentences = [paragraphs[longest][a:b] for a, b in sentence_spans(paragraphs[longest])]
        if len(sentences) >= 2:
            i = int(rng.integers(0, len(sentences) - 1))
            sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        paragraphs[longest] = " ".join(sentences)
        return paragraphs
    if kind == "paragraph added":
        paragraphs.insert(int(rng.integers(1, max(len(paragraphs), 2))), filler)
        return paragraphs
    if kind == "paragraph removed" and len(paragraphs) == 1:  # a quote trimmed: its first quarter of sentences goes
        sentences = sentence_spans(paragraphs[0])
        return [paragraphs[0][sentences[len(sentences) // 4][0]:]]
    if kind == "paragraph removed":
        shortest = min(range(len(paragraphs)), key=lambda i: len(paragraphs[i]))
        return paragraphs[:shortest] + paragraphs[shortest + 1:]
    raise ValueError(f"unknown edit {kind!r}; use one of {EDITS}")


def plant(documents: list[str], count: int, seed: int = 0) -> Planted:
    """`count` planted texts, each standing alone once and copied once with every edit, the position (start,
    middle or end of the host) taking turns. Each copy and each added paragraph uses up a host document."""
    rng = np.random.default_rng(seed)
    texts, sources = choose_texts(documents, count, rng)
    pool = iter([documents[i] for i in rng.permutation(len(documents))
                 if i not in sources and len(_paragraphs(documents[i])) >= 2])

    def host() -> list[str]:
        paragraphs = next(pool, None)
        if paragraphs is None:
            raise ValueError(f"{len(documents)} documents are too few hosts for {count} planted texts "
                             f"(each takes {2 * len(EDITS) + 1}); plant fewer texts")
        return _paragraphs(paragraphs)
    out = Planted([], [], [], [], [], [])

    def add(paragraphs: list[str], family: int, kind: str, position: str, copy: list[str] | None) -> None:
        shared_paragraphs = [QUOTE] if len(out.texts) % 2 else []
        paragraphs = paragraphs + shared_paragraphs
        insert = {"start": 0, "middle": len(paragraphs) // 2, "end": len(paragraphs)}[position]
        parts = paragraphs[:insert] + ([] if copy is None else ["\n".join(copy)]) + paragraphs[insert:]
        parts.append(BOILERPLATE)
        document = "\n\n".join(parts)
        block = "\n".join(copy) if copy else None
        start = document.index(block) if block else 0
        out.texts.append(document)
        out.family.append(family)
        out.edit.append(kind)
        out.position.append(position)
        out.span.append((start, start + len(block)) if block else (0, 0))
        out.shared.append([(m.start(), m.end()) for line in (QUOTE, BOILERPLATE)
                           for m in re.finditer(re.escape(line), document)])

    for family, paragraphs in enumerate(texts):
        out.texts.append("\n".join(paragraphs))
        out.family.append(family)
        out.edit.append("original")
        out.position.append("alone")
        out.span.append((0, len(out.texts[-1])))
        out.shared.append([])
        for number, kind in enumerate(EDITS):
            host_paragraphs, filler = host(), host()[0]
            position = POSITIONS[(family + number) % len(POSITIONS)]
            add(host_paragraphs, family, kind, position, edit(paragraphs, kind, filler, rng))
    for _ in range(len(texts)):  # hosts without a copy, carrying only the shared lines
        add(host(), -1, "host", "end", None)
    return out


def score(planted: Planted, split: Callable[[str], list[tuple[int, int]]] = split_passages) -> dict:
    """Passage and document families of the planted corpus, and per edit the share of copies that joined.

    Document families use the passages the shipped model flags (labels other than no_ai), as the scan does.
    """
    rows = []
    for doc, text in enumerate(planted.texts):
        for index, (a, b) in enumerate(split(text)):
            rows.append((doc, index, a, b, text[a:b]))
    frame = pl.DataFrame(rows, schema=["doc", "passage_index", "start", "end", "text"], orient="row")
    signatures = minhash.signatures(frame["text"].to_list())
    frame = frame.with_columns(cluster_id=clusters.cluster_ids(signatures, frame.select("doc", "passage_index")),
                               origins=pl.Series(_origins(planted, frame)))
    _, labels, _ = tag_passages(load_cached(), frame["text"].to_list())
    flagged = labels != LABELS.index("no_ai")
    flagged_docs = frame["doc"].to_numpy()[flagged]
    doc_family = dict(zip(flagged_docs.tolist(),
                          clusters.document_cluster_ids(signatures[flagged], flagged_docs).tolist(), strict=True))

    family = np.array(planted.family)
    originals = {f: int(np.flatnonzero((family == f) & (np.array(planted.edit) == "original"))[0])
                 for f in set(planted.family) if f >= 0}
    original_families = {f: set(frame.filter(pl.col("doc") == d)["cluster_id"].to_list()) for f, d in originals.items()}
    table = {kind: {"copies": 0, "passage": 0, "document": 0, "either": 0, "covered": 0.0} for kind in EDITS}
    for doc, kind in enumerate(planted.edit):
        if kind not in table:
            continue
        a, b = planted.span[doc]
        overlap = pl.min_horizontal("end", pl.lit(b)) - pl.max_horizontal("start", pl.lit(a))
        copied = (frame.filter((pl.col("doc") == doc) & (pl.col("end") > a) & (pl.col("start") < b))
                  .filter(overlap * 2 >= pl.col("end") - pl.col("start")))  # passages mostly of copied text
        joined = copied.filter(pl.col("cluster_id").is_in(list(original_families[planted.family[doc]])))
        document = doc_family.get(doc, -1) == doc_family.get(originals[planted.family[doc]], -2)
        row = table[kind]
        row["copies"] += 1
        row["passage"] += joined.height > 0
        row["document"] += document
        row["either"] += joined.height > 0 or document
        row["covered"] += joined.select(overlap.sum()).item() / (b - a)
    return {"recall": table, "false_merges": _false_merges(frame), "families": _family_count(frame)}


def _overlap(start: int, end: int, spans: list[tuple[int, int]]) -> int:
    """Characters of [start, end) that the spans cover."""
    return sum(max(0, min(end, b) - max(start, a)) for a, b in spans)


def _origins(planted: Planted, frame: pl.DataFrame) -> list[list[str]]:
    """What each passage holds, as tags: "planted f", "shared" (the shared lines) and "host d" (its host's own
    text), each counted when it covers at least a fifth of the passage; a passage that is mostly shared lines is
    just "shared"."""
    out = []
    for doc, start, end in frame.select("doc", "start", "end").iter_rows():
        planted_chars = _overlap(start, end, [planted.span[doc]])
        shared_chars = _overlap(start, end, planted.shared[doc])
        parts = {f"planted {planted.family[doc]}": planted_chars, "shared": shared_chars,
                 f"host {doc}": end - start - planted_chars - shared_chars}
        mostly_shared = shared_chars * 2 >= end - start
        tags = sorted(tag for tag, chars in parts.items() if chars * 5 >= end - start)
        out.append(["shared"] if mostly_shared else tags)
    return out


def _false_merges(frame: pl.DataFrame) -> list[list[list[str]]]:
    """Families a reader would reject: a member that shares no planted text or host with any other member, short
    of both being mostly shared lines (the origins of the family's members are listed)."""
    bad = []
    for members in frame.group_by("cluster_id").agg("origins").filter(pl.col("origins").list.len() >= 2)["origins"]:
        tags = [set(m) for m in members.to_list()]
        if any(all(not ((mine & other) - {"shared"} or mine == other == {"shared"})
                   for j, other in enumerate(tags) if j != i)
               for i, mine in enumerate(tags)):
            bad.append(members.to_list())
    return bad


def _family_count(frame: pl.DataFrame) -> int:
    return int((frame["cluster_id"].value_counts()["count"] >= 2).sum())
