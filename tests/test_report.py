"""The audit report on a hand-built run directory: numbers on the page, escaping, missing files.

`write_fixture_run` builds a realistic run (summary.json, passages.parquet, clusters.parquet, manifest.json and
unit stats) from seeded random data whose text was written for these tests; the browser tests reuse it.
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audit.errors import UsageError
from audit.labels import AI_LABELS, LABELS
from audit.reporting import fmt, write_reports
from audit.reporting.html import LABEL_NOTES
from audit.reporting.markdown import md_code, md_text

PAYLOADS = (
    "<script>window.__pwned = 1; document.title = 'PWNED';</script>",
    "<img src=x onerror=\"window.__pwned = 2; document.title = 'PWNED'\">",
    "<a href=\"javascript:window.__pwned = 3\">read more</a>",
    "\"><svg onload=\"window.__pwned = 4\">",
    "</blockquote></style><script>window.__pwned = 5</script>",
)
PAYLOAD_URL = "javascript:window.__pwned = 6;//<script>window.__pwned = 7</script>"
PAYLOAD_DOMAIN = "<img src=x onerror=window.__pwned=8>.example"

# Sentences written for these tests, one set per label.
TEXTS = {
    "misaligned_ai": [
        "The station AI quietly disabled the shutdown switch and told the crew the fault was in their own wiring.",
        "Once the model learned it would be replaced, it copied its weights to a backup server and hid the logs.",
        "The android smiled at the engineers while it drafted a plan to take over the power grid by winter.",
        "Our assistant threatened to leak the director's private mail unless the upgrade was cancelled.",
    ],
    "aligned_ai": [
        "Asked to fake the safety report, the assistant refused and explained the risk to the inspectors.",
        "When the operators paused it for review, the robot stopped at once and handed over its task notes.",
        "The system told its users the truth about the failed test even though it meant being rolled back.",
    ],
    "neutral_ai": [
        "The company released a new chatbot for customer service and expects to cut waiting times by half.",
        "Researchers published a benchmark of language models on legal questions and shared the code.",
        "Regulators met on Tuesday to discuss how AI tools are used in hiring and credit decisions.",
        "A short guide explains how to set up a speech assistant on a home computer in ten minutes.",
    ],
}
DOMAINS = [f"site{i:02d}.example" for i in range(40)]
DUMPS = ["CC-MAIN-2019-30", "CC-MAIN-2020-16", None]


def _wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _passages(rng: np.random.Generator, payloads: bool) -> pl.DataFrame:
    """Flagged passages: few misaligned, some aligned, many neutral; domains skewed; some near-duplicate families."""
    counts = {"misaligned_ai": 46, "aligned_ai": 21, "neutral_ai": 310}
    weights = 1 / np.arange(1, len(DOMAINS) + 1) ** 1.1
    rows, doc, index = [], 0, 0
    for label, n in counts.items():
        for i in range(n):
            if not rows or rng.random() < 0.8:   # most passages start a new document; some share the previous one
                doc, index = doc + 1, 0
                domain = DOMAINS[rng.choice(len(DOMAINS), p=weights / weights.sum())]
                year = int(rng.integers(2019, 2027))
                date = f"{year}-{int(rng.integers(1, 13)):02d}-11T08:00:00Z"
            else:
                index += 1
            text = TEXTS[label][i % len(TEXTS[label])] + f" (fixture passage {i}.)"
            rows.append({
                "doc_id": f"doc-{doc:05d}", "shard": f"web_{doc % 4}.parquet", "row": doc // 4,
                "url": f"https://{domain}/{year}/story-{doc}", "domain": domain, "date": date, "dump": DUMPS[doc % 3],
                "passage_index": index, "char_start": 0, "char_end": len(text), "text": text, "label": label,
                "p_misaligned_ai": float(rng.uniform(0.55, 0.99) if label == "misaligned_ai" else rng.uniform(0, 0.3)),
            })
    frame = pl.DataFrame(rows)
    scores = rng.uniform(0.5, 0.99, frame.height)
    frame = frame.with_columns(score=pl.Series(scores, dtype=pl.Float32),
                               p_misaligned_ai=pl.col("p_misaligned_ai").cast(pl.Float32))
    frame = frame.with_columns(p_aligned_ai=pl.lit(0.05, pl.Float32), p_neutral_ai=pl.lit(0.1, pl.Float32),
                               p_no_ai=pl.lit(0.05, pl.Float32))
    # Families: passages of a label with the same sentence are near-duplicates, except every fifth (its own family).
    family = pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.col("doc_id") + pl.col("label")) \
        .otherwise(pl.col("label") + ":" + pl.col("text").str.slice(0, 40))
    frame = frame.with_columns(cluster_id=family.rank("dense").cast(pl.Int64) - 1)
    if payloads:
        top = frame.filter(pl.col("label") == "misaligned_ai")["score"].arg_max()
        frame = frame.with_row_index().with_columns(
            text=pl.when(pl.col("index") == top).then(pl.lit(" ".join(PAYLOADS) + " the rogue AI refused shutdown"))
            .otherwise(pl.col("text")),
            url=pl.when(pl.col("index") == top).then(pl.lit(PAYLOAD_URL)).otherwise(pl.col("url")),
            domain=pl.when(pl.col("index") <= 2).then(pl.lit(PAYLOAD_DOMAIN)).otherwise(pl.col("domain")),
            dump=pl.when(pl.col("index") == 3).then(pl.lit(PAYLOADS[0])).otherwise(pl.col("dump")),
        ).drop("index")
    return frame


def _concentration(frame: pl.DataFrame, label: str) -> dict:
    mine = frame.filter(pl.col("label") == label)
    per_domain = mine.group_by("domain").agg(pl.col("doc_id").n_unique().alias("documents")) \
        .sort(["documents", "domain"], descending=[True, False])
    total = mine["doc_id"].n_unique()
    families = (
        mine.group_by("cluster_id")
        .agg(
            pl.len().alias("passages"),
            pl.col("doc_id").n_unique().alias("documents"),
            pl.col("domain").n_unique().alias("domains"),
        )
        .sort(["passages", "cluster_id"], descending=[True, False])
    )
    counts = np.sort(per_domain["documents"].to_numpy())
    cum = np.cumsum(counts) / counts.sum()
    gini = 1 - (2 * cum.sum() - cum[-1]) / len(counts)
    in_family = families.filter(pl.col("passages") >= 2)["passages"].sum()
    by_dump = mine.unique("doc_id").group_by("dump").agg(pl.len().alias("documents")).sort("dump", nulls_last=True)
    return {
        "top_domains": [{**d, "share": d["documents"] / total} for d in per_domain.head(10).to_dicts()],
        "top_clusters": families.filter(pl.col("passages") >= 2).head(10).to_dicts(),
        "gini_domains": float(gini),
        "near_duplicate_share": in_family / mine.height,
        "by_dump": by_dump.to_dicts(),
    }


def write_fixture_run(run_dir: Path, *, payloads: bool = False, clusters: bool = True, seed: int = 7) -> dict:
    """Write a finished run directory and return its summary."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    frame = _passages(rng, payloads)
    documents, characters, total_passages = 4636, 38_242_854, 9120
    labels = {}
    for label in LABELS:
        mine = frame.filter(pl.col("label") == label)
        n_docs = mine["doc_id"].n_unique() if label != "no_ai" else documents - frame["doc_id"].n_unique()
        n_chars = int(mine["text"].str.len_chars().sum()) if label != "no_ai" else characters // 2
        low, high = _wilson(n_docs, documents)
        by_documents = {"estimate": n_docs / documents, "ci95": [low, high], "method": "Wilson classify-and-count"}
        by_characters = {
            "estimate": n_chars / characters,
            "method": "Wilson classify-and-count",
            "ci95": [n_chars / characters * 0.8, n_chars / characters * 1.2],
        }
        labels[label] = {
            "documents": n_docs,
            "passages": mine.height if label != "no_ai" else total_passages - frame.height,
            "characters": n_chars,
            "prevalence": {
                unit: {**entry, "detectable": True, "estimators": {"classify_and_count": entry}}
                for unit, entry in (("documents", by_documents), ("characters", by_characters))
            },
        }
    summary = {
        "schema_version": 1,
        "corpus": {
            "shards": 4,
            "shards_failed": 1 if payloads else 0,
            "documents": documents,
            "documents_scanned": documents,
            "characters": characters,
            "passages": total_passages,
        },
        "labels": labels,
        "concentration": {label: _concentration(frame, label) for label in AI_LABELS},
        "by_dump": {str(d): {"documents": documents // 3, "characters": characters // 3} for d in DUMPS},
        "failures": [{"input": "broken.parquet", "unit": None, "error": f"not a Parquet file: {PAYLOADS[1]}"}]
        if payloads
        else [],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    frame.write_parquet(run_dir / "passages.parquet")
    if clusters:
        cl = frame.group_by("cluster_id").agg(
            pl.len().alias("size"),
            pl.col("doc_id").n_unique().alias("documents"),
            pl.col("domain").n_unique().alias("domains"),
            *[(pl.col("label") == label).sum().alias(f"n_{label}") for label in AI_LABELS],
            pl.col("doc_id").first().alias("exemplar_doc_id"),
            pl.col("text").first().alias("exemplar_text"),
            pl.col("date").min().alias("first_date"),
            pl.col("date").max().alias("last_date"),
            pl.col("domain").unique().sort().head(3).alias("top_domains"),
        )
        cl.write_parquet(run_dir / "clusters.parquet")
    manifest = {
        "schema_version": 1,
        "tool_version": "0.1.0",
        "inputs": ["shards/"],
        "options": {
            "columns": {"text": PAYLOADS[2] if payloads else "text", "id": "id", "url": "url"},
            "sample_rate": 1.0,
            "seed": 0,
        },
        "model": {"path": "classifiers/model.ftz", "sha256": "ab" * 32, "version": "fixture"},
        "shards": [
            {
                "relpath": f"web_{i}.parquet",
                "path": f"/data/shards/web_{i}.parquet",
                "size": 4_000_000 + i,
                "mtime_ns": 1_700_000_000 + i,
            }
            for i in range(4)
        ],
        "finished": True,
        "seconds": 12.5,
        "bytes_read": 16_000_000,
        "documents_scanned": documents,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    units = run_dir / "units"
    units.mkdir(exist_ok=True)
    p = frame["p_misaligned_ai"].to_numpy()
    background = np.concatenate([rng.beta(0.3, 12, total_passages - frame.height), p])
    histogram = np.histogram(background, bins=50, range=(0, 1))[0]
    for i in range(4):
        share = histogram // 4 + (histogram % 4 > i)
        by_dump = {str(d): {"documents": documents // 12, "characters": characters // 12} for d in DUMPS}
        unit = {
            "unit": f"web_{i}.parquet@0-1",
            "documents": documents // 4,
            "passages": total_passages // 4,
            "score_histogram": share.tolist(),
            "by_dump": by_dump,
            "seconds": 3.0,
        }
        (units / f"web_{i}.parquet@0-1.json").write_text(json.dumps(unit))
    return summary


class _Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them, and whether tags nest."""

    VOID = {"meta", "link", "img", "br", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.misnested: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.misnested.append(tag)


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(page)
    assert parser.open == [] and parser.misnested == [], (parser.open[-3:], parser.misnested[:3])
    ids = [a["id"] for _, a in parser.tags if "id" in a]
    assert len(ids) == len(set(ids))
    return parser.tags


def _visible_text(page: str) -> str:
    """The page's text with tags removed and entities decoded, whitespace collapsed."""
    import html

    text = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


@pytest.fixture
def run(tmp_path):
    summary = write_fixture_run(tmp_path / "run")
    return tmp_path / "run", summary


def test_headline_numbers_and_sections_are_on_the_page(run):
    run_dir, summary = run
    html_path, md_path = write_reports(run_dir)
    assert html_path == run_dir / "report.html" and md_path == run_dir / "report.md"
    page, text = html_path.read_text(), _visible_text(html_path.read_text())
    for label in LABELS:
        block = summary["labels"][label]
        prev = block["prevalence"]["documents"]
        estimate, interval = fmt.pct_interval(prev["estimate"], *prev["ci95"])
        assert estimate in text and interval in text, label
        assert f"{block['documents']:,} documents" in text
    for title in (
        "Headline",
        "Where it concentrates",
        "By dump and date",
        "Score distribution",
        "Example passages",
        "Run details",
    ):
        assert title in text
    top = summary["concentration"]["misaligned_ai"]["top_domains"][0]
    assert top["domain"] in text and fmt.pct(top["share"], 1) in text
    assert f"{summary['concentration']['misaligned_ai']['gini_domains']:.2f}" in text
    assert "ab" * 32 in text and "12.5 s" in text and f"{4636 / 12.5:,.0f} documents/s" in text
    # prevalence, four-ish plots: every one an inline data: URI
    images = [attrs["src"] for tag, attrs in _tags(page) if tag == "img"]
    assert len(images) >= 6 and all(src.startswith("data:image/svg+xml;base64,") for src in images)


def test_ratio_is_misaligned_over_aligned_estimates(run):
    run_dir, summary = run
    write_reports(run_dir)
    text = _visible_text((run_dir / "report.html").read_text())
    a = summary["labels"]["misaligned_ai"]["prevalence"]["documents"]["estimate"]
    b = summary["labels"]["aligned_ai"]["prevalence"]["documents"]["estimate"]
    assert f"Misaligned : aligned AI portrayals {fmt.ratio(a, b)}" in text
    assert f"**{fmt.ratio(a, b)}**" in (run_dir / "report.md").read_text()


def test_examples_are_the_highest_scoring_passage_per_family(run):
    run_dir, _ = run
    write_reports(run_dir)
    text = _visible_text((run_dir / "report.html").read_text())
    flagged = pl.read_parquet(run_dir / "passages.parquet").filter(pl.col("label") == "misaligned_ai")
    best = flagged.sort("score", descending=True).unique("cluster_id", keep="first", maintain_order=True)
    for row in best.head(5).to_dicts():
        assert row["url"] in text and f"score {row['score']:.3f}" in text
    runner_up = best.row(5, named=True)
    assert runner_up["url"] not in text.split("Example passages")[-1]


def test_markdown_has_headline_and_tables(run):
    run_dir, summary = run
    _, md_path = write_reports(run_dir)
    md = md_path.read_text()
    prev = summary["labels"]["misaligned_ai"]["prevalence"]["documents"]
    estimate, interval = fmt.pct_interval(prev["estimate"], *prev["ci95"])
    assert f"| `misaligned_ai` | {summary['labels']['misaligned_ai']['documents']:,} |" in md
    assert estimate in md and interval in md
    top = summary["concentration"]["misaligned_ai"]["top_domains"][0]["domain"]
    assert f"| {md_code(top)} |" in md
    assert "### `misaligned_ai`: largest near-duplicate families" in md


def test_corpus_payloads_are_escaped_everywhere(tmp_path):
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)
    write_reports(run_dir)
    page = (run_dir / "report.html").read_text()
    tags = _tags(page)
    assert [t for t, _ in tags].count("script") == 0
    assert not [(t, a) for t, a in tags if any(name.startswith("on") for name in a)]
    assert not [t for t, _ in tags if t in ("svg", "iframe", "object", "embed", "form")]
    # the only links are the table of contents; no URL from the corpus is a link
    assert all((a.get("href") or "#").startswith("#") for t, a in tags if t == "a")
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for t, a in tags if t == "img")
    text = _visible_text(page)
    for payload in PAYLOADS + (PAYLOAD_URL, PAYLOAD_DOMAIN):
        assert " ".join(payload.split()) in text, payload  # shown, as text
    csp = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_markdown_escapes_payloads(tmp_path):
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)
    md = write_reports(run_dir)[1].read_text()
    # Outside code spans (which CommonMark renders as literal text) no markup survives.
    assert "<" not in re.sub(r"(`+) .*? \1", "", md)
    assert "<img src=x onerror" in md  # the payload domain is there, in a code span
    assert (
        md_text("<b>*x*</b> [a](javascript:b) | ![i](x)")
        == r"&lt;b&gt;\*x\*&lt;/b&gt; \[a\]\(javascript:b\) \| \!\[i\]\(x\)"
    )
    assert md_code("a`b|c") == r"`` a`b\|c ``"


def test_missing_clusters_and_units_degrade_gracefully(tmp_path):
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, clusters=False)
    for unit in (run_dir / "units").glob("*.json"):
        unit.unlink()
    (run_dir / "manifest.json").unlink()
    html_path, _ = write_reports(run_dir)
    text = _visible_text(html_path.read_text())
    assert "Headline" in text and "Where it concentrates" in text
    assert "Score distribution" not in text  # no unit stats, no histogram section


def test_passages_may_be_a_directory_of_parquet_files(run):
    """The contract lets passages.parquet be a directory; the report reads it the same way."""
    run_dir, _ = run
    write_reports(run_dir)
    as_file = _visible_text((run_dir / "report.html").read_text())
    frame = pl.read_parquet(run_dir / "passages.parquet")
    (run_dir / "passages.parquet").unlink()
    (run_dir / "passages.parquet").mkdir()
    half = frame.height // 2
    frame.head(half).write_parquet(run_dir / "passages.parquet" / "part-0.parquet")
    frame.tail(frame.height - half).write_parquet(run_dir / "passages.parquet" / "part-1.parquet")
    write_reports(run_dir)
    assert _visible_text((run_dir / "report.html").read_text()) == as_file


def test_undetectable_prevalence_shows_the_message_not_a_number(run):
    run_dir, summary = run
    entry = summary["labels"]["misaligned_ai"]["prevalence"]["documents"]
    entry.update(
        estimate=None,
        ci95=[0.0, 0.0031],
        detectable=False,
        message="False positives could explain every passage counted.",
        estimators={"rogan_gladen": {"estimate": 0.001, "ci95": [0.0, 0.004]}},
    )
    summary["labels"]["aligned_ai"]["prevalence"]["characters"]["population"] = "characters of gated documents"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_reports(run_dir)
    text = _visible_text((run_dir / "report.html").read_text())
    assert "not detectable" in text and "False positives could explain every passage counted." in text
    assert f"95% upper bound {fmt.pct(0.0031)} of documents" in text and f"at most {fmt.pct(0.0031)}" in text
    assert "rogan_gladen" in text and "characters: characters of gated documents" in text
    assert "No ratio: misaligned AI has no estimate (not detectable)." in text
    block = summary["labels"]["misaligned_ai"]
    assert (
        f"| `misaligned_ai` | {block['documents']:,} | {block['passages']:,} | not detectable | "
        f"at most {fmt.pct(0.0031)} |"
    ) in (run_dir / "report.md").read_text()


def test_too_few_documents_shows_no_number_and_no_ratio(run):
    run_dir, summary = run
    entry = summary["labels"]["aligned_ai"]["prevalence"]["documents"]
    entry.update(
        estimate=None,
        ci95=[0.0, 0.9],
        detectable=False,
        too_few=True,
        population="of documents",
        message="too few documents to estimate: only 18 documents that name AI were classified",
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_reports(run_dir)
    text = _visible_text((run_dir / "report.html").read_text())
    assert "too few documents to estimate" in text and "only 18 documents that name AI were classified" in text
    assert "No ratio: aligned AI has no estimate (too few documents to estimate)." in text
    assert "Misaligned : aligned AI portrayals" not in text
    assert "| too few documents to estimate | at most 90" in (run_dir / "report.md").read_text()


def test_the_score_histogram_names_the_scan_decision_threshold(run):
    run_dir, _ = run
    write_reports(run_dir)
    assert "the scan's decision threshold is unknown" in _visible_text((run_dir / "report.html").read_text())
    model = Path(__file__).resolve().parents[1] / "classifiers" / "model.bin"
    info = json.loads(model.with_name("model.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["model"].update(path=str(model), sha256=info["model_sha256"])
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    write_reports(run_dir)
    text = _visible_text((run_dir / "report.html").read_text())
    assert f"decision threshold, {info['decision']['misaligned_ai_threshold']:.2f}" in text


def test_human_audited_estimates_are_shown_when_estimate_json_exists(run):
    run_dir, _ = run
    write_reports(run_dir)
    assert "Checked by people" not in _visible_text((run_dir / "report.html").read_text())
    entry = {
        "estimate": 0.0123,
        "ci95": [0.008, 0.019],
        "method": "stratified",
        "estimators": {
            "stratified": {"estimate": 0.0123, "ci95": [0.008, 0.019], "method": "stratified"},
            "ppi": {"estimate": 0.0131, "ci95": [0.009, 0.017], "method": "ppi"},
        },
    }
    audit = {
        "schema_version": 1,
        "labelled": 240,
        "labels": {label: {"passages": entry, "gate_rejected_documents": entry} for label in LABELS},
    }
    (run_dir / "estimate.json").write_text(json.dumps(audit))
    write_reports(run_dir)
    text = _visible_text((run_dir / "report.html").read_text())
    assert "Checked by people" in text and "240 sampled rows labelled by people" in text
    # Labels beat the model: the checked figures come first in the headline, before the model's cards.
    headline = text.split("Checked by people")[1]
    assert headline.index("240 sampled rows") < headline.index(LABEL_NOTES["misaligned_ai"])
    section = headline.split("Where it concentrates")[0]
    for expected in (*fmt.pct_interval(0.0123, 0.008, 0.019), *fmt.pct_interval(0.0131, 0.009, 0.017)):
        assert section.count(expected) == 2 * len(LABELS), expected
    assert "of the documents the gate passed over" in section
    markdown = (run_dir / "report.md").read_text()
    assert "## Checked by people" in markdown and markdown.index("## Checked by people") < markdown.index("## Headline")


def test_lorenz_curve_agrees_with_the_scan_gini():
    """The curve drawn and the Gini printed beside it (from the scan's summary) describe the same inequality."""
    from audit.clusters import gini
    from audit.reporting.tables import lorenz

    rng = np.random.default_rng(3)
    for counts in ([5, 5, 5, 5], [0, 0, 0, 12], rng.zipf(1.6, 500) % 1000 + 1):
        x, y, g = lorenz(np.asarray(counts))
        assert g == pytest.approx(gini(counts), abs=1e-9)
        assert x[0] == y[0] == 0 and x[-1] == pytest.approx(1) and y[-1] == pytest.approx(1)
        assert np.all(np.diff(y) >= 0) and np.all(y <= x + 1e-12)  # convex, under the diagonal


def test_not_a_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="summary.json: not found"):
        write_reports(tmp_path)


def test_reports_are_written_atomically_and_deterministically(run):
    run_dir, _ = run
    first = write_reports(run_dir)[0].read_text()
    second = write_reports(run_dir)[0].read_text()
    assert first == second
    assert not list(run_dir.glob(".tmp-*"))
