"""List unlabelled train-side passages of one shared-data source that match a regex, for hand labelling.

    .venv/bin/python -m audit.training.find_candidates news_long_lk '\\b(AI|robots?)\\b' --limit 50

Prints one JSON object per line, {"source", "key", "span", "text"}, ready to be given a label and a note and
appended to train_real.jsonl. Skipped: dev-side records (realdata.is_dev), passages already in
train_real.jsonl (or overlapping a labelled span), and passages whose text also occurs on the dev side of the
same source (republished articles under another slug would otherwise carry the same text across the split).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path

from . import realdata

TRAIN_FILE = realdata.LABEL_DIR / "train_real.jsonl"
BLOCK = re.compile(r"\S(?:.|\n(?!\s*\n))*")  # text between blank lines
LINE = re.compile(r"[^\n]+")
SENTENCE_END = re.compile(r"(?<=[.!?\u201d\"])\s+(?=[A-Z\u201c\"(])")
WRAP_WIDTH = 100  # a block whose lines are all shorter is hard-wrapped prose (Gutenberg): one paragraph
MAX_CHARS = 1400  # longer paragraphs are cut at sentence ends into pieces of about TARGET_CHARS
TARGET_CHARS = 900


def paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """Blank-line blocks; a block of long lines (web text, news) gives one paragraph per line."""
    for block in BLOCK.finditer(text):
        lines = [(m.start() + block.start(), m.end() + block.start()) for m in LINE.finditer(block.group())]
        if all(end - start < WRAP_WIDTH for start, end in lines):
            yield block.start(), block.end()
        else:
            yield from ((start, end) for start, end in lines if text[start:end].strip())


def passages(text: str) -> Iterator[tuple[int, int]]:
    """Code-point spans that read like one paragraph each: long paragraphs are cut at sentence ends."""
    for start, end in paragraphs(text):
        if end - start <= MAX_CHARS:
            yield start, end
            continue
        cuts = [m.end() for m in SENTENCE_END.finditer(text, start, end)] + [end]
        piece_start = start
        for cut in cuts:
            if cut - piece_start >= TARGET_CHARS or cut == end:
                yield piece_start, len(text[:cut].rstrip())
                piece_start = cut


def labelled_spans(path: Path) -> dict[tuple[str, str], list[tuple[int, int] | None]]:
    """Spans already labelled per (source, key); None stands for the whole record."""
    spans: dict[tuple[str, str], list[tuple[int, int] | None]] = {}
    for record in realdata.load_records(path) if path.exists() else []:
        spans.setdefault((record["source"], record["key"]), []).append(
            tuple(record["span"]) if record["span"] else None
        )
    return spans


def overlaps(span: tuple[int, int], labelled: list[tuple[int, int] | None]) -> bool:
    return any(other is None or (span[0] < other[1] and other[0] < span[1]) for other in labelled)


def candidates(source: str, pattern: re.Pattern[str]) -> Iterator[dict]:
    texts = realdata.READERS[source](realdata.data_root())
    dev_passages = {
        text[s:e].strip() for key, text in texts.items() if realdata.is_dev(source, key) for s, e in passages(text)
    }
    done = labelled_spans(TRAIN_FILE)
    for key, text in texts.items():
        if realdata.is_dev(source, key):
            continue
        for start, end in passages(text):
            passage = text[start:end]
            if overlaps((start, end), done.get((source, key), [])) or passage.strip() in dev_passages:
                continue
            if not pattern.search(passage):
                continue
            yield {"source": source, "key": key, "span": [start, end], "text": passage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=sorted(realdata.READERS))
    parser.add_argument("regex", help="Python regex a passage must match")
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    for n, candidate in enumerate(candidates(args.source, re.compile(args.regex))):
        if n >= args.limit:
            break
        print(json.dumps(candidate, ensure_ascii=False))


if __name__ == "__main__":
    main()
