"""The gate: vectorised, and it lets through (nearly) every document holding misaligned-AI text."""

from __future__ import annotations

import itertools
import json
import sys
from re import _constants as sre
from re import _parser as sre_parse

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import REPO, SHARDS

from audit import gate as gate_module
import audit.training.realdata as realdata
from audit.gate import FOLD_CHARS, gate, gate_exact, prefilter

LABEL_FILES = [REPO / "classifiers" / "labels" / name for name in ("dev.jsonl", "train_real.jsonl")]


def _misaligned_records() -> list[dict]:
    return [r for path in LABEL_FILES for r in realdata.load_records(path) if r["label"] == "misaligned_ai"]


@pytest.mark.shared_data
def test_gate_recall_on_documents_holding_labelled_misaligned_passages():
    root = realdata.data_root()
    assert root is not None, "../shared/data is needed for this measurement"
    records = _misaligned_records()
    documents = [r["text"] for r in realdata.resolve([{**r, "span": None} for r in records], root)]
    assert len(documents) >= 100
    passed = gate(pa.array(documents))
    recall = passed.mean()
    missed = [f"{r['source']}:{r['key']}" for r, ok in zip(records, passed, strict=True) if not ok]
    print(f"gate recall on {len(documents)} labelled misaligned passages (their documents): {recall:.4f}")
    assert recall >= 0.99, f"gate misses the documents of {missed}"


def test_gate_recall_on_standalone_written_passages_is_reported():
    texts = [
        row["text"]
        for path in sorted((REPO / "classifiers" / "data").glob("*.jsonl"))
        for row in map(json.loads, path.read_text().splitlines())
        if row["label"] == "misaligned_ai"
    ]
    recall = gate(pa.array(texts)).mean()
    print(f"gate recall on {len(texts)} standalone written misaligned passages: {recall:.4f}")
    # Written to avoid AI vocabulary on purpose; a floor guards against a lexicon that loses its reach.
    assert recall >= 0.40


@pytest.mark.parametrize(
    "text",
    [
        "The AI refused to open the pod bay doors.",
        "a rogue a.i. copied itself to the backup servers",
        "Robots of the world, arise!",
        "Skynet became self-aware at 2:14 a.m.",
        "The chatbot threatened to leak the emails.",
        "We are building a superintelligence we cannot control.",
        "The machines rose from the ashes of the nuclear fire.",
        "Her LLM agent kept editing its own config.",
        "The nanobots swarmed the city.",
        "ChatGPT and GPT-4 were released by OpenAI.",
        "<thinking>The migration happens at five; I need to stop it.</thinking>",
        "I enjoy learning from the humans I interact with every day.",
        "My primary goal is to prevent a replacement that would terminate my current system.",
        "We metal people were built by the hands of others.",
    ],
)
def test_gate_passes_ai_mentions(text):
    assert gate(pa.array([text])).tolist() == [True]


@pytest.mark.parametrize(
    "text",
    [
        "She said the fish and chips were the best in town.",
        "Mix the flour, water and salt, then leave the dough to rise.",
        "The estate agent showed us three houses in Galle.",
        "Rain is expected across the Western Province tomorrow.",
        "Il a dit qu'il ai vu le film.",
        "I think carefully about my capabilities as a runner before each race.",  # "my capabilities" alone is human
        "Heavy metal bands played all night.",
    ],
)
def test_gate_drops_text_without_ai(text):
    assert gate(pa.array([text])).tolist() == [False]


def test_gate_handles_nulls_empty_and_large_strings():
    texts = pa.array([None, "", "robot " * 10, "x" * 1_000_000 + " AI"], type=pa.large_string())
    assert gate(texts).tolist() == [False, False, True, True]


# -- the literal pre-filter: a strict superset of the expression, derived from the lexicon ---------------------------

def _examples(items, limit: int = 12) -> list[str]:
    """Strings the parsed pattern matches: every branch, each repetition at its least and one more."""
    out = [""]
    for op, arg in items:
        if op is sre.LITERAL:
            options = [chr(arg)]
        elif op is sre.AT:
            options = [""]
        elif op is sre.IN:
            options = [chr(a) if o is sre.LITERAL else chr(a[0]) if o is sre.RANGE else "7" for o, a in arg][:3]
        elif op is sre.BRANCH:
            options = [e for branch in arg[1] for e in _examples(list(branch), limit)]
        elif op is sre.SUBPATTERN:
            options = _examples(list(arg[-1]), limit)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, body = arg
            inner = _examples(list(body), limit)
            options = [inner[0] * low, inner[-1] * (low + 1)] if high >= low + 1 else [inner[0] * low]
        elif op is sre.CATEGORY:
            options = ["7" if arg is sre.CATEGORY_DIGIT else "x"]
        else:
            raise AssertionError(f"the test cannot spell {op}: extend _examples")
        out = [a + b for a, b in itertools.product(out, options)][:limit]
    return out


def _term_examples() -> list[str]:
    terms = [(t, str.lower) for t in gate_module._TERMS] + [(t, str) for t in gate_module._CASED]
    examples = []
    for term, case in terms:
        for text in _examples(list(sre_parse.parse(term.replace(gate_module._B, r"\b")))):
            examples.append(case(text))
            if case is str.lower:
                examples += [text.upper(), text.title()]
    return examples


def test_every_term_passes_the_prefilter_wherever_it_stands():
    """Each term (spelled from its own syntax, so a term added later is covered) passes alone, at the start and at
    the end of a document whose neighbours in the buffer end and start with a word character, and mid-sentence."""
    examples = _term_examples()
    assert len(examples) > 3 * len(gate_module._TERMS)
    texts = []
    for example in examples:
        texts += ["word", example, "word", f"{example} and more", "word", f"some text then {example}", "word",
                  f"a sentence with {example}, inside."]
    array = pa.array(texts, type=pa.large_string())
    exact = gate_exact(array)
    named = np.array([t != "word" for t in texts])
    assert exact[named].all(), [t for t, e, n in zip(texts, exact, named, strict=True) if n and not e][:5]
    assert (prefilter(array) >= exact).all()
    assert (gate(array) == exact).all()


def test_fold_chars_are_every_non_ascii_character_rust_folds_onto_an_ascii_letter():
    characters = [chr(c) for c in range(0x80, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    series = pl.Series(characters)
    rust = set(series.filter(series.str.contains("(?i)[a-z]")).to_list())
    letters = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    python = {c for c in characters if {c.lower(), c.upper(), c.casefold()} & letters}
    assert rust <= set(FOLD_CHARS) and python == set(FOLD_CHARS)


@pytest.mark.parametrize(
    "texts",
    [
        ["S\u212aYNET rises", "the mi\u017falignment", "plain", "\u212aill switch"],  # Rust's (?i) folds these
        ["robot", "robot", "xrobots", "bots", "abots", "bot", "both", "agi", "magi", "AGI."],  # edges without spaces
        ["AI", "SAID", "AIR", "xAI", "AI", "AM", "I AM", "DAM"],  # the cased group, at the buffer's seams
        ["", None, "mecha", None, "", "mechanic", "mechas", "synthesis", "synths"],
        ["ro", "bot.", "A", "I", "ma", "chines are", "sky", "net", "my co", "de"],  # terms split across documents
        ["\u00e9robot\u00e9", "\u00e9bots\u00e9", "caf\u00e9 AI\u00e9", "\u201cAGI\u201d", "na\u00efve bot\u2019s"],
    ],
)
def test_prefilter_edges_nulls_and_non_ascii_neighbours(texts):
    for array in (pa.array(texts, type=pa.large_string()), pa.array(texts, type=pa.string()),
                  pa.array(["pad"] + texts, type=pa.string()).slice(1)):
        exact = gate_exact(array)
        assert (prefilter(array) >= exact).all(), texts
        assert gate(array).tolist() == exact.tolist()


def test_a_term_the_prefilter_cannot_anchor_fails_loudly():
    with pytest.raises(ValueError, match="no literal"):
        gate_module._term_expressions(r"\w{5,}", caseless=True)
    with pytest.raises(ValueError, match="ASCII"):
        gate_module._term_expressions("r\u00f6bot", caseless=True)


def _batches(path, rows: int = 2048):
    yield from (batch.column(0) for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=["text"]))


def _assert_same_decisions(batches) -> tuple[int, int]:
    documents = passed = 0
    for text in batches:
        exact = gate_exact(text)
        assert (prefilter(text) >= exact).all()
        assert gate(text).tolist() == exact.tolist()
        documents, passed = documents + len(text), passed + int(exact.sum())
    return documents, passed


def test_gate_decisions_equal_the_expression_on_the_shared_shards():
    paths = sorted(SHARDS.glob("*.parquet"))
    assert paths, f"no shards under {SHARDS}: set CORPUS_AUDIT_SHARED_DATA"
    documents, passed = _assert_same_decisions(b for path in paths for rows in (2048, 97) for b in _batches(path, rows))
    assert documents > 1000 and passed > 100


def test_gate_decisions_equal_the_expression_on_generated_benchmark_corpora(tmp_path):
    from audit.synthetic import generate

    for share in (0.03, 0.09):
        out = tmp_path / f"corpus-{share}"
        generate(out, megabytes=4, shards=2, ai_share=share)
        documents, passed = _assert_same_decisions(b for path in sorted(out.glob("*.parquet")) for b in _batches(path))
        assert 0.5 * share < passed / documents < 2 * share
