"""End to end: labelled real passages planted at a known rate into the real web shards of ../shared/data.

The planted passages are the development set's `misaligned_ai` passages (real third-party text, read and
labelled; `classifiers/labels/dev.jsonl`), which is where the shipped model's recorded error rates come from.
The host documents are the shards' documents that name no AI term at all; a fifth of them also get a dev
passage of another label (AI news, aligned or neutral AI, hard negatives) for the model to falsely flag. So
nothing but the planted misaligned text is misaligned, and the true rate is known exactly. The scan's headline
intervals (documents; passages, counting every scan passage that holds planted text) must cover it, and the audit
loop, given labels written from the planted truth, must recover the passage share.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import SHARDS

import audit
from audit import auditloop
import audit.training.realdata as realdata
from audit.gate import gate
from audit.passages import split_passages

pytestmark = pytest.mark.shared_data

DEV = Path(__file__).resolve().parents[1] / "classifiers" / "labels" / "dev.jsonl"


def plant(out: Path, every: int, seed: int, distractor_every: int = 5) -> dict[str, int]:
    """Copy the shards' AI-free documents to `out`, appending a dev `misaligned_ai` passage (as its own
    paragraph) to every `every`-th one, and a dev passage of another label to every `distractor_every`-th of the
    rest, so that the model also meets AI text that it may falsely flag. Returns {doc id: character offset where
    the planted misaligned text starts}."""
    records = realdata.resolve(realdata.load_records(DEV))
    positives = [r["text"] for r in records if r["label"] == "misaligned_ai"]
    negatives = [r["text"] for r in records if r["label"] != "misaligned_ai"]
    rng = np.random.default_rng(seed)
    out.mkdir()
    planted: dict[str, int] = {}
    for path in sorted(SHARDS.glob("*.parquet")):
        table = pq.read_table(path)
        table = table.filter(pa.array(~gate(table["text"])))
        texts = table["text"].to_pylist()
        for i in range(len(texts)):
            if i % every == 0:
                planted[table["id"][i].as_py()] = len(texts[i]) + 2
                texts[i] += "\n\n" + positives[rng.integers(len(positives))]
            elif i % distractor_every == 1:
                texts[i] += "\n\n" + negatives[rng.integers(len(negatives))]
        pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts)), out / path.name)
    return planted


RATES = {"4%": 25, "1%": 100}  # plant into every n-th AI-free document


@pytest.fixture(scope="module")
def planted_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    runs = {}
    for name, every in RATES.items():
        root = tmp_path_factory.mktemp(f"planted{every}")
        planted = plant(root / "shards", every=every, seed=every)
        summary = audit.scan(str(root / "shards"), root / "run").summary
        runs[name] = {"root": root, "run": root / "run", "planted": planted, "summary": summary}
    return runs


@pytest.mark.parametrize("rate", RATES)
def test_the_headline_intervals_cover_the_planted_rate(planted_runs: dict, rate: str) -> None:
    run = planted_runs[rate]
    summary, planted = run["summary"], run["planted"]
    prevalence = summary["labels"]["misaligned_ai"]["prevalence"]
    truth = {
        "documents": len(planted) / summary["corpus"]["documents"],
        "passages": _planted_passage_share(run["root"] / "shards", planted),
    }
    for unit, true_rate in truth.items():
        lo, hi = prevalence[unit]["ci95"]
        assert lo <= true_rate <= hi, f"{unit}: {prevalence[unit]['ci95']} misses the planted rate {true_rate:.4f}"


def test_at_4_percent_the_rate_is_detected_and_the_raw_count_would_have_missed_it(planted_runs: dict) -> None:
    """At 1% the model's false flags on the planted AI distractors could explain every flag (an upper bound is
    all the headline gives, covered above); at 4% the adjusted estimate is a point estimate, and the raw count of
    flagged documents falls short of the truth, which only the adjustment recovers."""
    run = planted_runs["4%"]
    headline = run["summary"]["labels"]["misaligned_ai"]["prevalence"]["documents"]
    true_rate = len(run["planted"]) / run["summary"]["corpus"]["documents"]
    assert headline["detectable"], headline.get("message")
    assert headline["estimators"]["classify_and_count"]["ci95"][1] < true_rate


@pytest.mark.parametrize("rate", RATES)
def test_sample_and_estimate_with_labels_from_the_planted_truth_recover_the_passage_and_document_shares(
    planted_runs: dict, rate: str
) -> None:
    """Both shares the audit loop estimates cover the planted truth: passages of documents that name AI, and
    documents (a document row is the whole document, so it holds the planted text when its document does)."""
    run, planted = planted_runs[rate]["run"], planted_runs[rate]["planted"]
    auditloop.sample(run, 400, run / "audit.jsonl", seed=0)
    rows = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    for row in rows:  # what a careful reader writes: nothing but the planted text is misaligned
        row["label"] = "misaligned_ai" if _is_planted(planted, row["doc_id"], row["char_end"] or 0) else "no_ai"
    (run / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = auditloop.estimate(run, run / "labels.jsonl")

    truth = {"passages": _planted_passage_share(planted_runs[rate]["root"] / "shards", planted),
             "documents": len(planted) / planted_runs[rate]["summary"]["corpus"]["documents"]}
    for unit, share in truth.items():
        for name, est in result["labels"]["misaligned_ai"][unit]["estimators"].items():
            assert est["ci95"][0] <= share <= est["ci95"][1], f"{unit}, {name}: {est['ci95']} misses {share:.4f}"


def _is_planted(planted: dict[str, int], doc_id: str, char_end: int) -> bool:
    return doc_id in planted and char_end > planted[doc_id]


def _planted_passage_share(shards: Path, planted: dict[str, int]) -> float:
    """The share of the passages of gate-passed documents (the audit loop's population) that hold planted text."""
    hits = total = 0
    for path in sorted(shards.glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        table = table.filter(pa.array(gate(table["text"])))
        for doc_id, text in zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True):
            spans = split_passages(text)
            total += len(spans)
            hits += sum(_is_planted(planted, doc_id, end) for _, end in spans)
    return hits / total
