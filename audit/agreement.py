"""Reading a labels file written by one or several people, their agreement, and the label each row settles on.

A labels file is JSON Lines, one answer a line: `doc_id`, `passage_index`, `label`, and optionally `labeller`
and `time` (what `corpus-audit label` writes; a hand-filled sample file has no labeller). A line whose label is
empty is an unlabelled row. Several labellers may answer the same row; one labeller may answer a row once.

The rule that settles a row (what `estimate` counts):
- an answer by the labeller named `adjudicator` settles the row, whatever the others said;
- otherwise the row settles when every labeller who answered it gave the same label;
- a row whose labellers disagree and that no adjudicator answered stays unsettled (disputed): it is left out of
  the estimate, like an unlabelled row, until someone runs `corpus-audit label RUN --labeller adjudicator`,
  which shows exactly those rows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from .errors import UsageError
from .labels import LABELS

ADJUDICATOR = "adjudicator"
MAX_ERRORS = 20  # label-file problems listed before giving up
RULE = (f"an answer by '{ADJUDICATOR}' settles a row; otherwise a row settles when all its labellers agree; "
        "disputed rows are left out of the estimate")


@dataclass(frozen=True)
class Answer:
    row: int  # index into the plan's rows
    label: str
    labeller: str  # "" for a file without labellers
    line: int


def row_keys(plan: dict) -> dict[tuple, int]:
    """The plan row index of each (doc_id, passage_index)."""
    return {(r["doc_id"], r["passage_index"]): i for i, r in enumerate(plan["rows"])}


def read_answers(path: str | Path, plan: dict) -> list[Answer]:
    """Every answer in the file, in file order. Every problem (bad JSON, unknown label, a row outside the sample,
    a row answered twice by one labeller) is reported with its line number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"label file {path} does not exist") from None
    index = row_keys(plan)
    answers: list[Answer] = []
    seen: dict[tuple[int, str], int] = {}
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        answer_or_problem = _parse_line(line, number, index, seen)
        if isinstance(answer_or_problem, str):
            errors.append(f"{path} line {number}: {answer_or_problem}")
        elif answer_or_problem is not None:
            answers.append(answer_or_problem)
    if errors:
        more = f"\n... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        raise UsageError("the label file has problems:\n" + "\n".join(errors[:MAX_ERRORS]) + more)
    return answers


def _parse_line(line: str, number: int, index: dict, seen: dict[tuple[int, str], int]) -> Answer | str | None:
    """One line's answer, None for an unlabelled row, or what is wrong with the line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return f"not valid JSON ({error.msg})"
    if not isinstance(record, dict):
        return "not a JSON object"
    key = (record.get("doc_id"), record.get("passage_index"))
    if key not in index:
        return (f"doc_id={key[0]!r} passage_index={key[1]} is not in the audit sample drawn by `corpus-audit sample` "
                "(was the sample drawn again since?)")
    label = record.get("label")
    if label in (None, ""):
        return None
    if label not in LABELS:
        return f"unknown label {label!r}; use one of {', '.join(LABELS)}"
    labeller = str(record.get("labeller") or "")
    row = index[key]
    if (row, labeller) in seen:
        by = f" by {labeller!r}" if labeller else ""
        return f"doc_id={key[0]!r} passage_index={key[1]} is labelled twice{by} (also on line {seen[row, labeller]})"
    seen[row, labeller] = number
    return Answer(row, label, labeller, number)


def _by_row(answers: list[Answer]) -> dict[int, dict[str, str]]:
    """Each answered row's labels by labeller."""
    by_row: dict[int, dict[str, str]] = {}
    for a in answers:
        by_row.setdefault(a.row, {})[a.labeller] = a.label
    return by_row


def settle(answers: list[Answer], rows: int) -> list[str | None]:
    """The settled label of each plan row (None: unlabelled or disputed), by the rule in the module docstring."""
    settled: list[str | None] = [None] * rows
    for row, given in _by_row(answers).items():
        if ADJUDICATOR in given:
            settled[row] = given[ADJUDICATOR]
        elif len(set(given.values())) == 1:
            settled[row] = next(iter(given.values()))
    return settled


def disputed_rows(answers: list[Answer]) -> set[int]:
    """Rows whose labellers disagree and that no adjudicator has answered."""
    return {row for row, given in _by_row(answers).items() if ADJUDICATOR not in given and len(set(given.values())) > 1}


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two labellers over the rows both answered: (observed - chance agreement) / (1 - chance).
    None when there is no shared row, or when chance agreement is 1 (both gave one and the same label
    throughout, so agreement says nothing about the labellers)."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    chance = sum(count_a[L] * count_b[L] for L in LABELS) / (n * n)
    return None if chance >= 1 else (observed - chance) / (1 - chance)


def agreement_report(answers: list[Answer], rows: int) -> dict:
    """What estimate.json says about the labellers: answers each, the pairwise agreement and Cohen's kappa (the
    adjudicator left out: it answers only disputed rows), and how many rows settled or are disputed."""
    by_labeller: dict[str, dict[int, str]] = {}
    for a in answers:
        by_labeller.setdefault(a.labeller, {})[a.row] = a.label
    pairs = []
    for a, b in combinations(sorted(name for name in by_labeller if name != ADJUDICATOR), 2):
        shared = sorted(by_labeller[a].keys() & by_labeller[b].keys())
        first, second = [by_labeller[a][r] for r in shared], [by_labeller[b][r] for r in shared]
        pairs.append(
            {
                "labellers": [a, b],
                "rows": len(shared),
                "agreement": sum(x == y for x, y in zip(first, second, strict=True)) / len(shared) if shared else None,
                "kappa": cohen_kappa(first, second),
            }
        )
    settled = settle(answers, rows)
    return {
        "rule": RULE,
        "answers_by_labeller": {name or "(unnamed)": len(given) for name, given in sorted(by_labeller.items())},
        "pairs": pairs,
        "settled_rows": sum(s is not None for s in settled),
        "disputed_rows": len(disputed_rows(answers)),
        "sample_rows": rows,
    }


def settled_labels(path: str | Path, plan: dict) -> tuple[list[str | None], dict]:
    """The settled label of every plan row (None where unlabelled or disputed) and the agreement report."""
    answers = read_answers(path, plan)
    rows = len(plan["rows"])
    return settle(answers, rows), agreement_report(answers, rows)


def render(report: dict) -> str:
    """The agreement lines `estimate` prints."""
    lines = [
        f"{report['settled_rows']} of {report['sample_rows']} sampled rows settled; "
        f"{report['disputed_rows']} disputed ({report['rule']})"
    ]
    for pair in report["pairs"]:
        kappa = "n/a" if pair["kappa"] is None else f"{pair['kappa']:.2f}"
        agree = "n/a" if pair["agreement"] is None else f"{pair['agreement']:.0%}"
        lines.append(
            f"  {pair['labellers'][0]} vs {pair['labellers'][1]}: {pair['rows']} shared rows, "
            f"agreement {agree}, Cohen's kappa {kappa}"
        )
    return "\n".join(lines)
