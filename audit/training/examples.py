"""Labelled passages as training and evaluation read them, from JSON Lines files of two kinds, told apart by
their first record:
- passages written for the project: {"text", "label", "source", "note"};
- label records of third-party text (classifiers/labels/*.jsonl): {"source", "key", "span", "label", "note"},
  whose text `audit.training.realdata` reads from ../shared/data at run time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audit.errors import UsageError
from audit.jsonl import read_objects
from audit.labels import LABELS
from audit.tagger import normalize


@dataclass
class Example:
    text: str
    label: str
    source: str  # where it comes from: "written" (the project's own passages) or the realdata source name
    key: str = ""  # the realdata key, or "<line>" for written passages
    origin: str = ""  # the data file's name
    note: str = ""
    subtype: str | None = None  # kind of misaligned_ai text (realdata.SUBTYPES), where the label file gives it
    strata: tuple[str, ...] = ()  # how the record was drawn (realdata.STRATA); () for records chosen by content

    @property
    def drawn_in(self) -> tuple[str, ...]:
        """The strata this record was drawn in; "content" for records chosen for what they hold."""
        return self.strata or ("content",)

    @property
    def dev_side(self) -> bool:
        """A third-party passage on the development side of the split: never used to fit anything."""
        from . import realdata

        return self.source != "written" and realdata.is_dev(self.source, self.key)

    @property
    def real_and_read(self) -> bool:
        """Third-party text labelled by a person reading it (not written by us, not labelled by a rule)."""
        return self.source != "written" and not self.note.startswith("rule:")


def load_examples(paths: Iterable[str | Path]) -> list[Example]:
    """Read training or evaluation files (passages written for the project, or label records of real text)."""
    examples: list[Example] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise UsageError(f"data file {path} does not exist")
        first = _first_record(path)
        if first is None:
            raise UsageError(f"data file {path} holds no records")
        examples.extend(_read_text_file(path) if "text" in first else _read_label_file(path))
    return examples


def _first_record(path: Path) -> dict | None:
    with path.open(encoding="utf-8") as handle:
        return next((record for _, record in read_objects(handle, lambda n: f"{path}:{n}")), None)


def _read_text_file(path: Path) -> list[Example]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line_no, record in read_objects(handle, lambda n: f"{path}:{n}"):
            where = f"{path}:{line_no}"
            text, label = record.get("text"), record.get("label")
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"{where}: 'text' must be a non-empty string")
            if label not in LABELS:
                raise UsageError(f"{where}: label {label!r} is not one of {list(LABELS)}")
            examples.append(Example(text, label, "written", str(line_no), path.name, str(record.get("note", ""))))
    return examples


def _read_label_file(path: Path) -> list[Example]:
    from . import realdata

    try:
        resolved = realdata.resolve(realdata.load_records(path))
    except FileNotFoundError as error:
        raise UsageError(f"{path} holds label records whose text lives in the shared data: {error}") from None
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from None
    return [Example(r["text"], r["label"], r["source"], r["key"], path.name, r["note"], r["subtype"], r["strata"])
            for r in resolved]


def deduplicate(examples: list[Example]) -> tuple[list[Example], int]:
    """Keep the first of identical passages; drop every copy of a passage given two different labels."""
    labels_of: dict[str, set[str]] = {}
    for example in examples:
        labels_of.setdefault(normalize(example.text).strip(), set()).add(example.label)
    seen: set[str] = set()
    kept, conflicting = [], 0
    for example in examples:
        key = normalize(example.text).strip()
        if len(labels_of[key]) > 1:
            conflicting += 1
        elif key not in seen:
            seen.add(key)
            kept.append(example)
    return kept, conflicting


def fold_of(example: Example, folds: int, seed: int) -> int:
    """A passage's cross-validation fold, from a hash so the split does not depend on file order.

    Real passages are grouped by their document (the dev split's unit), so a story's or a transcript's other
    passages never sit in the fold that scores it; written passages are hashed by their text.
    """
    from . import realdata

    if example.source == "written":
        unit = normalize(example.text).strip()
    else:
        unit = realdata.split_unit(example.source, example.key)
    digest = hashlib.md5(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % folds

