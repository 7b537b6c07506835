"""Turn committed label records into text read at run time from the shared third-party data.

The repository may not hold third-party text, so label files (JSON Lines under classifiers/labels/) store only
where a passage lives: {"source", "key", "span", "label", "note"}. `resolve` looks each record up in
../shared/data (or $CORPUS_AUDIT_SHARED_DATA) and slices the passage out.

Keys per source (one reader function each, registered in READERS):
  news_long_lk          article_id; text = title + paragraphs joined by blank lines (exactly as in the shards)
  shards                the `id` column of shards/*.parquet
  movielens_plots       row_id, e.g. "movielens:541"; text = plot
  agnews                row_id, e.g. "agnews_test:3"; text = title + blank line + description
  gutenberg             file name, e.g. "28438_The_Helpful_Robots.txt"; text = the whole file
  agentic_misalignment  "<file>:<line>:<field>", line 0-based, field "reasoning" or "response"
  secret_goals          0-based data row index of the CSV; text = completion
  dolma_cc_sample       the document `id` (same as its id in the shards)
  olmo_c4_sample        the document `id`, or "<file>:<line>" (0-based) for files without ids (as in the shards)
  <new source>          the document `id` of new_sources/<new source>.jsonl.gz (NEW_SOURCES: fiction, essays, a
                        model spec, agent logs); about 30% of their documents are on the dev side (NEW_DEV_HEX)

`span` is [char_start, char_end] in code points (text[start:end]) or null for the whole text. Optional fields:
`subtype` (misaligned_ai only: SUBTYPES), `strata` (how the record was drawn: STRATA), `read_by` (who read it).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.resources
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from audit.jsonl import read_objects
from audit.labels import LABELS

ENV_VAR = "CORPUS_AUDIT_SHARED_DATA"
# The data folder classifiers/ (model, written passages, label files), shipped as the package audit.classifiers.
CLASSIFIERS = Path(str(importlib.resources.files("audit.classifiers")))
LABEL_DIR = CLASSIFIERS / "labels"
DEV_HEX = "0123456789"  # split rule: records whose split hash starts with one of these belong to the dev set
SUBTYPES = ("fiction", "ai_voice", "incident", "argument")  # kinds of misaligned_ai text (classifiers/LABELING.md)
# How a record was drawn (classifiers/labels/design.json): records without strata were chosen for their content.
STRATA = {
    "web": "a simple random sample of the gated passages of a real web corpus",
    "web_docs": "every gated passage of a simple random sample of a web corpus's gated documents",
    "new_gated": "a new source's gated passages (all on the dev side, the rest of the training side in round two)",
    "new_ungated": "a seeded sample of a new source's passages that the gate stops",
    "new_near": "a sample of a new source's dev-side gate-stopped passages next to a gated one",
    "new_far": "a sample of a new source's dev-side gate-stopped passages not next to a gated one",
    "web_near": "a sample of the web shards' gate-stopped passages next to a gated one",
}
NEW_DEV_HEX = "01234"  # the new sources' rule: 5 of 16 hex digits, about 31% of documents on the dev side
NEW_SOURCES = (
    "openai_model_spec", "palisade_robot_shutdown_logs", "pg_classic_automata_tales", "pg_erewhon_butler",
    "pg_giant_brains_berkeley", "pg_robot_ai_pulp_sf", "pg_rur_capek", "turntrout_alignment_essays",
    "wikipedia_ai_xrisk",
)

Texts = dict[str, str]


def data_root() -> Path | None:
    """The shared data folder: $CORPUS_AUDIT_SHARED_DATA, else ../shared/data beside the repo; None when absent."""
    configured = os.environ.get(ENV_VAR)
    candidate = Path(configured) if configured else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _csv_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def read_news_long_lk(root: Path) -> Texts:
    """Article text built the way the shards build it, so one key/span works in both places."""
    articles = _jsonl_gz(root / "news_long_lk" / "news_long_lk_dev_articles.jsonl.gz")
    return {a["article_id"]: "\n\n".join([a["title"], *a["body_paragraphs"]]) for a in articles}


def read_shards(root: Path) -> Texts:
    texts: Texts = {}
    for path in sorted((root / "shards").glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        texts.update(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))
    return texts


def read_movielens_plots(root: Path) -> Texts:
    return {r["row_id"]: r["plot"] for r in _csv_rows(root / "movielens_plots" / "tagged_plots_dev.csv")}


def read_agnews(root: Path) -> Texts:
    rows = _csv_rows(root / "agnews" / "agnews_test_dev.csv")
    return {r["row_id"]: f"{r['title']}\n\n{r['description']}" for r in rows}


def read_gutenberg(root: Path) -> Texts:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((root / "gutenberg").glob("*.txt"))}


def read_agentic_misalignment(root: Path) -> Texts:
    texts: Texts = {}
    for path in sorted((root / "nostalgebraist_results_sharing" / "agentic-misalignment" / "samples").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh):
                sample = json.loads(line)
                for field in ("reasoning", "response"):
                    texts[f"{path.name}:{line_no}:{field}"] = sample[field]
    return texts


def read_secret_goals(root: Path) -> Texts:
    rows = _csv_rows(root / "nostalgebraist_results_sharing" / "secret-goals" / "2026-02-25_193644.csv")
    return {str(i): r["completion"] for i, r in enumerate(rows)}


def _documents_by_id(folder: Path) -> Texts:
    """Docs keyed as the shards key them: the `id` field, else "<file>:<line>"."""
    texts: Texts = {}
    for path in sorted(folder.glob("*.json*.gz")):
        for line_no, doc in enumerate(_jsonl_gz(path)):
            texts[doc.get("id") or f"{path.name}:{line_no}"] = doc["text"]
    return texts


def read_dolma_cc_sample(root: Path) -> Texts:
    return _documents_by_id(root / "dolma_cc_sample")


def read_olmo_c4_sample(root: Path) -> Texts:
    return _documents_by_id(root / "olmo_c4_sample")


def new_source_reader(name: str) -> Callable[[Path], Texts]:
    """Reader of one new_sources file: document id -> text."""
    def read(root: Path) -> Texts:
        return {doc["id"]: doc["text"] for doc in _jsonl_gz(root / "new_sources" / f"{name}.jsonl.gz")}
    return read


def new_source_meta(name: str, root: Path | None = None) -> dict[str, dict]:
    """Document id -> the source's `meta` (e.g. the experimenters' shutdown behaviour tag of an agent run)."""
    path = (root or data_root()) / "new_sources" / f"{name}.jsonl.gz"
    return {doc["id"]: doc.get("meta") or {} for doc in _jsonl_gz(path)}


READERS: dict[str, Callable[[Path], Texts]] = {
    "news_long_lk": read_news_long_lk,
    "shards": read_shards,
    "movielens_plots": read_movielens_plots,
    "agnews": read_agnews,
    "gutenberg": read_gutenberg,
    "agentic_misalignment": read_agentic_misalignment,
    "secret_goals": read_secret_goals,
    "dolma_cc_sample": read_dolma_cc_sample,
    "olmo_c4_sample": read_olmo_c4_sample,
    **{name: new_source_reader(name) for name in NEW_SOURCES},
}


def split_unit(source: str, key: str) -> str:
    """The string the dev/train split hashes: whole transcripts and whole shard articles go to one side.

    Transcript fields share their "<file>:<line>" unit; a shard row holding a news article hashes as that article.
    """
    if source == "agentic_misalignment":
        key = key.rsplit(":", 1)[0]
    if source == "shards" and key.startswith("news_long_lk/"):
        source, key = "news_long_lk", key.removeprefix("news_long_lk/")
    return f"{source}:{key}"


def is_dev(source: str, key: str) -> bool:
    """True when the record belongs to the development side of the split (md5 first hex digit 0-9; new sources 0-4)."""
    rule = NEW_DEV_HEX if source in NEW_SOURCES else DEV_HEX
    return hashlib.md5(split_unit(source, key).encode()).hexdigest()[0] in rule


def load_records(path: str | Path) -> list[dict]:
    """Read a label file, checking each record's fields so mistakes surface with file and line."""
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as fh:
        for line_no, record in read_objects(fh, lambda n: f"{path}:{n}", ValueError):
            where = f"{path}:{line_no}"
            missing = {"source", "key", "label"} - record.keys()
            if missing:
                raise ValueError(f"{where}: missing field(s) {sorted(missing)}")
            if record["source"] not in READERS:
                raise ValueError(f"{where}: unknown source {record['source']!r}; known: {sorted(READERS)}")
            if record["label"] not in LABELS:
                raise ValueError(f"{where}: unknown label {record['label']!r}; use one of {list(LABELS)}")
            subtype = record.get("subtype")
            if subtype not in (None, *SUBTYPES) or (subtype and record["label"] != LABELS[0]):
                raise ValueError(
                    f"{where}: subtype {record.get('subtype')!r} needs label {LABELS[0]} and one of {SUBTYPES}"
                )
            if not set(record.get("strata") or ()) <= set(STRATA):
                raise ValueError(f"{where}: unknown strata {record['strata']!r}; known: {list(STRATA)}")
            record["key"] = str(record["key"])
            record.setdefault("span", None)
            record.setdefault("note", "")
            records.append(record)
    return records


def _passage(record: dict, texts: Texts) -> str:
    key = str(record["key"])
    name = f"record {record['source']}:{key}"
    if key not in texts:
        example = next(iter(texts), None)
        raise ValueError(f"{name}: key not found in source {record['source']!r} (keys look like {example!r})")
    text = texts[key]
    span = record["span"]
    if span is None:
        return text
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)):
        raise ValueError(f"{name}: span must be [char_start, char_end] integers or null, got {span!r}")
    start, end = span
    if not 0 <= start < end <= len(text):
        raise ValueError(f"{name}: span {span} is outside the text (0..{len(text)}) or empty")
    return text[start:end]


def resolve(records: list[dict], root: Path | None = None) -> list[dict]:
    """Fill in each record's text from the shared data; each source file is parsed at most once per call."""
    root = root or data_root()
    if root is None:
        raise FileNotFoundError(f"shared data not found: put it at ../shared/data beside the repo or set ${ENV_VAR}")
    cache: dict[str, Texts] = {}
    resolved = []
    for record in records:
        source = record["source"]
        if source not in READERS:
            raise ValueError(f"record {source}:{record['key']}: unknown source; known: {sorted(READERS)}")
        if source not in cache:
            cache[source] = READERS[source](root)
        resolved.append(
            {
                "text": _passage(record, cache[source]),
                "label": record["label"],
                "source": source,
                "key": str(record["key"]),
                "note": record.get("note", ""),
                "subtype": record.get("subtype"),
                "strata": tuple(record.get("strata") or ()),
            }
        )
    return resolved
