"""Classify texts with the model alone: each text is one passage, with no gate and no splitting.

`classify` is the API's `audit.classify`; `classify_lines` streams JSON Lines records through it for
`corpus-audit classify`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UsageError
from .jsonl import read_objects
from .labels import LABELS
from .tagger import PassageTagger, as_tagger


def classify(texts: list[str], model: PassageTagger | str | Path | None = None) -> list[dict]:
    """Label and scores (label -> probability) of each text, classified as one passage by the model alone."""
    tagger = as_tagger(model, cached=True)
    probs = tagger.predict(texts)
    return [
        {"label": LABELS[label], "scores": dict(zip(LABELS, map(float, row), strict=True))}
        for row, label in zip(probs, tagger.decide(probs), strict=True)
    ]


def classify_lines(
    lines: Iterable[str],
    model: PassageTagger | str | Path | None = None,
    text_field: str = "text",
    batch_size: int = 2048,
) -> Iterator[dict]:
    """For each JSON Lines input record, in order: its fields plus `label` and `scores` (rounded to 6 digits).

    Records are classified in batches, so a long stream needs little memory. Blank lines are skipped.
    """
    tagger = as_tagger(model, cached=True)
    batch: list[dict] = []
    for line_no, record in read_objects(lines, lambda n: f"input line {n}"):
        if not isinstance(record.get(text_field), str):
            raise UsageError(
                f"input line {line_no}: no string field {text_field!r}; name the text field with --text-field"
            )
        batch.append(record)
        if len(batch) >= batch_size:
            yield from _labelled(tagger, batch, text_field)
            batch = []
    yield from _labelled(tagger, batch, text_field)


def _labelled(tagger: PassageTagger, records: list[dict], text_field: str) -> Iterator[dict]:
    if not records:
        return
    for record, result in zip(records, classify([r[text_field] for r in records], tagger), strict=True):
        record["label"] = result["label"]
        record["scores"] = {name: round(p, 6) for name, p in result["scores"].items()}
        yield record
