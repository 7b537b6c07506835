"""The gate: vectorised, and it lets through (nearly) every document holding misaligned-AI text."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from support import REPO

from audit.classifiers import realdata
from audit.gate import gate

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
    missed = [f"{r['source']}:{r['key']}" for r, ok in zip(records, passed) if not ok]
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
