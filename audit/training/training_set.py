"""Write rule-labelled `no_ai` passages of third-party text as label records (ids and spans, no text).

Hand-labelled data hold a few hundred real negatives; a corpus holds millions. This adds ordinary real text as
`no_ai` by a rule instead of by reading: a passage qualifies when its whole document (an AG News item, or a
document of ../shared/data/shards) mentions no AI term at all by the scan's own gate (`audit.gate`), and the
document lies on the training side of the dev split (`realdata.is_dev` is false). The rule is right by
construction for what the gate sees, and such passages are exactly what the model meets in gated documents
that also talk about other things.

Passages with the vocabulary of AI-risk stories used about people (blackmail, takeover, extinction, shutdown,
sabotage, ...) are the useful hard negatives, so all of them are kept; the rest are sampled by a hash of their
id, so the output is the same on every run.

    python -m audit.training.training_set --out /tmp/rule_no_ai.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import polars as pl

from audit.gate import gate
from audit.passages import split_passages

from . import realdata

NOTE_PREFIX = "rule: gate-negative document (no AI term), training side of the split"
RISK_WORDS = re.compile(
    r"(?i)\b(?:blackmail|extinct|takeover|take over|shut ?down|sabotag|existential|deceiv|decept|manipulat|escap"
    r"|surviv|threat|destroy|kill|wipe[sd]? out|rogue|villain|enslav|rebel|uprising|doom|apocalyp|replac"
    r"|lie[sd]?|lying|agents?|machines?|terminat|autonom|algorithm|hack|spy|secret|plot|scheme|betray)\b"
)


def _hash_rank(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _record(source: str, key: str, span: list[int] | None, kind: str) -> dict:
    return {"source": source, "key": key, "span": span, "label": "no_ai", "note": f"{NOTE_PREFIX}; {kind}"}


def shard_passages(root: Path) -> list[tuple[dict, bool]]:
    """(record, has risk words) for each passage of a training-side shard document with no AI term."""
    texts = realdata.read_shards(root)
    keys = sorted(texts)
    mask = gate(pl.Series(values=[texts[k] for k in keys]))
    out = []
    for key, mentions_ai in zip(keys, mask, strict=True):
        if mentions_ai or realdata.is_dev("shards", key):
            continue
        text = texts[key]
        for start, end in split_passages(text):
            risky = bool(RISK_WORDS.search(text[start:end]))
            out.append((_record("shards", key, [start, end], "shard passage"), risky))
    return out


def agnews_items(root: Path) -> list[tuple[dict, bool]]:
    texts = realdata.read_agnews(root)
    keys = sorted(texts)
    mask = gate(pl.Series(values=[texts[k] for k in keys]))
    return [
        (_record("agnews", key, None, "AG News item"), bool(RISK_WORDS.search(texts[key])))
        for key, mentions_ai in zip(keys, mask, strict=True)
        if not mentions_ai and not realdata.is_dev("agnews", key)
    ]


def select(candidates: list[tuple[dict, bool]], max_plain: int) -> list[dict]:
    """Every risk-word passage, plus up to `max_plain` others chosen by hash order (stable across runs)."""
    risky = [record for record, is_risky in candidates if is_risky]
    plain = [record for record, is_risky in candidates if not is_risky]
    plain.sort(key=lambda r: _hash_rank(f"{r['source']}:{r['key']}:{r['span']}"))
    return risky + plain[:max_plain]


def build(root: Path, max_plain_shards: int, max_plain_agnews: int) -> list[dict]:
    records = select(shard_passages(root), max_plain_shards) + select(agnews_items(root), max_plain_agnews)
    return sorted(records, key=lambda r: (r["source"], r["key"], r["span"] or []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="label-record JSON Lines to write")
    parser.add_argument("--max-plain-shards", type=int, default=1500, help="shard passages without risk words")
    parser.add_argument("--max-plain-agnews", type=int, default=500, help="AG News items without risk words")
    args = parser.parse_args()
    root = realdata.data_root()
    if root is None:
        parser.error(f"shared data not found: put it at ../shared/data or set ${realdata.ENV_VAR}")
    records = build(root, args.max_plain_shards, args.max_plain_agnews)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    print(f"wrote {len(records)} rule-labelled no_ai records to {args.out}")


if __name__ == "__main__":
    main()
