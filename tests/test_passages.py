"""The passage splitter: exact offsets, bounded length, and sentence boundaries that agree with spaCy."""

from __future__ import annotations

import re
from itertools import pairwise

import pyarrow.parquet as pq
import pytest
from support import SHARDS

from audit.passages import MAX_WORDS, MIN_WORDS, sentence_spans, split_passages


def _real_documents(n: int) -> list[str]:
    texts = []
    for path in sorted(SHARDS.glob("*.parquet")):
        texts.extend(t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t)
    return texts[:n]


def _words(text: str) -> int:
    return len(text.split())


def _check(text: str) -> list[tuple[int, int]]:
    spans = split_passages(text)
    # in order, not overlapping, trimmed, and covering every word of the document exactly once
    assert all(a < b for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in pairwise(spans))
    assert all(not text[a].isspace() and not text[b - 1].isspace() for a, b in spans)
    covered = "".join(text[a:b] for a, b in spans)
    assert re.sub(r"\s+", "", covered) == re.sub(r"\s+", "", text)
    for i, (a, b) in enumerate(spans):
        n = _words(text[a:b])
        assert n <= MAX_WORDS
        if n < MIN_WORDS and len(spans) > 1:
            # a short passage stands alone only when joining a neighbour would pass the upper bound
            neighbours = [_words(text[x:y]) for x, y in spans[max(0, i - 1) : i] + spans[i + 1 : i + 2]]
            assert all(n + m > MAX_WORDS for m in neighbours), (n, neighbours)
    return spans


@pytest.mark.shared_data
def test_real_documents_split_into_bounded_exact_passages():
    documents = _real_documents(400)
    total = sum(len(_check(doc)) for doc in documents)
    assert total > len(documents)


def test_short_paragraphs_are_joined_and_long_ones_cut_at_sentences():
    para = "The robot waited. " * 10  # 30 words
    doc = "\n\n".join([para] * 3)
    assert [_words(doc[a:b]) for a, b in _check(doc)] == [90]
    long = " ".join(f"Sentence number {i} is here and it is long enough to count." for i in range(60))
    spans = _check(long)
    assert len(spans) >= 3
    assert all(long[a:b].endswith(".") for a, b in spans)


def test_a_sentence_longer_than_the_bound_is_cut_at_words():
    doc = "word " * 1000
    spans = _check(doc)
    assert [_words(doc[a:b]) for a, b in spans] == [250, 250, 250, 250]


def test_empty_and_whitespace_documents_have_no_passages():
    assert split_passages("") == []
    assert split_passages(" \n\n\t ") == []


def test_a_10_mb_document_is_split():
    doc = ("The machine hummed. " * 40 + "\n") * 13_000
    assert len(doc) > 10_000_000
    spans = split_passages(doc)
    assert spans[0][0] == 0 and spans[-1][1] == len(doc.rstrip())


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("Dr. Smith came home. He slept.", ["Dr. Smith came home.", "He slept."]),
        ("It cost $5 in the U.S. and more elsewhere. Fine!", ["It cost $5 in the U.S. and more elsewhere.", "Fine!"]),
        ('She said "Stop." Then she left.', ['She said "Stop."', "Then she left."]),
        ("T.B. Illangaratne spoke. Nobody listened?", ["T.B. Illangaratne spoke.", "Nobody listened?"]),
    ],
)
def test_sentence_boundaries(text, sentences):
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


@pytest.mark.shared_data
def test_sentence_boundaries_agree_with_spacy_sentencizer():
    import spacy
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    paragraphs = [p.strip() for doc in _real_documents(300) for p in doc.split("\n") if _words(p) > 20][:1500]

    def starts(text: str, ends: list[int]) -> set[int]:
        # compare where the next sentence's first letter or digit is (spaCy attaches an opening quote to the
        # previous sentence; the splitter keeps it with its own)
        found = set()
        for end in ends:
            match = re.compile(r"[A-Za-z0-9]").search(text, end)
            if match:
                found.add(match.start())
        return found

    agree = total = 0
    for paragraph, doc in zip(paragraphs, nlp.pipe(paragraphs), strict=True):
        theirs = starts(paragraph, [s.end_char for s in doc.sents])
        ours = starts(paragraph, [b for _, b in sentence_spans(paragraph)])
        agree += len(theirs & ours)
        total += len(theirs | ours)
    assert agree / total >= 0.95


def test_a_long_run_of_repeated_sentences_splits_without_deep_recursion():
    """Thousands of identical sentences in one paragraph tie on every cut, so the run was cut 40 words at a time,
    recursively, past Python's depth limit."""
    text = ("The robot looked at the sky. " * 8_000).strip()  # about 1,100 cuts deep
    spans = split_passages(text)
    assert spans and spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(len(text[a:b].split()) <= 250 for a, b in spans)
