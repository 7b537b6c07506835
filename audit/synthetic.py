"""Generate a benchmark corpus: FineWeb-like Parquet shards of a chosen size with a known share of AI text.

Documents are assembled from paragraphs: ordinary text for the bulk, AI text planted in a share of documents
(``--ai-share``: 3% by default; 9% is the gate rate of the real Common Crawl sample) and misaligned-AI text in a tenth
of those. Paragraph pools come from the real web and news text in ``../shared/data`` when it
is present (read at run time, never copied into the repository) and from the project's own written passages
(``classifiers/data``), which alone are enough to run; the gate sorts them, so bulk paragraphs never mention AI and
planted AI paragraphs always do.
Document lengths follow a log-normal distribution (median about 2,000 characters, a long tail to 200,000), like web
crawls. The output is for throughput and memory benchmarks, not for judging the classifier.

    python -m audit.synthetic --out /tmp/bench-corpus --mb 500 --shards 8 [--ai-share 0.09]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audit.atomic import write_json_atomic, write_parquet_atomic
from audit.training.realdata import CLASSIFIERS, data_root
from audit.gate import gate

WRITTEN = CLASSIFIERS / "data"  # the written passages, wherever the package is installed
AI_SHARE = 0.03  # documents with planted AI paragraphs; the gate passes about as many
MISALIGNED_OF_AI = 0.1  # of those, the share that also holds a misaligned-AI passage
ROWS_PER_GROUP = 10_000


@dataclass
class Pools:
    bulk: list[str]
    ai: list[str]
    misaligned: list[str]


def _written(label_prefix: tuple[str, ...]) -> list[str]:
    texts = []
    for path in sorted(WRITTEN.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["label"].startswith(label_prefix):
                texts.append(row["text"])
    return texts


def _paragraphs(texts: list[str]) -> list[str]:
    return [p.strip() for t in texts for p in t.split("\n") if len(p.strip()) > 40]


def load_pools() -> Pools:
    bulk, ai = _written(("no_ai",)), _written(("neutral_ai", "aligned_ai"))
    root = data_root()
    if root is not None:
        texts = [
            t
            for path in sorted((root / "shards").glob("*.parquet"))
            for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()
            if t
        ]
        bulk += _paragraphs(texts)
        ai += _paragraphs(texts)
    # Sorted by the gate, so plain documents never mention AI and planted AI paragraphs always name it.
    bulk_named, ai_named = gate(pa.array(bulk)), gate(pa.array(ai))
    return Pools(
        bulk=[p for p, named in zip(bulk, bulk_named, strict=True) if not named],
        ai=[p for p, named in zip(ai, ai_named, strict=True) if named],
        misaligned=_written(("misaligned_ai",)),
    )


def _document(rng: np.random.Generator, pools: Pools, length: int, kind: str) -> str:
    parts: list[str] = []
    size = 0
    while size < length:
        paragraph = pools.bulk[rng.integers(len(pools.bulk))]
        parts.append(paragraph)
        size += len(paragraph) + 1
    if kind != "plain":
        planted = [pools.ai[rng.integers(len(pools.ai))] for _ in range(rng.integers(1, 4))]
        if kind == "misaligned":
            planted.append(pools.misaligned[rng.integers(len(pools.misaligned))])
        for paragraph in planted:
            parts.insert(int(rng.integers(len(parts) + 1)), paragraph)
    return "\n".join(parts)


def generate(out: Path, megabytes: float, shards: int, seed: int = 0, ai_share: float = AI_SHARE) -> dict:
    """Write ``shards`` Parquet files holding about ``megabytes`` MB of text, ``ai_share`` of the documents with
    planted AI text; returns the planted counts."""
    rng = np.random.default_rng(seed)
    pools = load_pools()
    per_shard = megabytes * 1e6 / shards
    truth = {
        "documents": 0,
        "characters": 0,
        "ai_documents": 0,
        "misaligned_documents": 0,
        "shards": shards,
        "ai_share": ai_share,
    }
    for shard in range(shards):
        texts: list[str] = []
        kinds: list[str] = []
        size = 0
        while size < per_shard:
            draw = rng.random()
            kind = "misaligned" if draw < ai_share * MISALIGNED_OF_AI else "ai" if draw < ai_share else "plain"
            length = int(np.clip(rng.lognormal(np.log(2000), 1.0), 200, 200_000))
            texts.append(_document(rng, pools, length, kind))
            kinds.append(kind)
            size += len(texts[-1])
        n = len(texts)
        table = pa.table(
            {
                "text": texts,
                "id": [f"bench-{shard:05d}-{i:07d}" for i in range(n)],
                "url": [f"https://site{int(rng.integers(5000))}.example.com/page/{i}" for i in range(n)],
                "date": ["2024-01-01"] * n,
                "dump": [f"CC-MAIN-2024-{10 + shard % 4:02d}"] * n,
                "token_count": [len(t.split()) for t in texts],
            }
        )
        write_parquet_atomic(out / f"bench-{shard:05d}.parquet", table, row_group_size=ROWS_PER_GROUP)
        truth["documents"] += n
        truth["characters"] += sum(len(t) for t in texts)
        truth["ai_documents"] += sum(k != "plain" for k in kinds)
        truth["misaligned_documents"] += sum(k == "misaligned" for k in kinds)
    write_json_atomic(out / "truth.json", truth)
    return truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mb", type=float, default=500, help="megabytes of text in all")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ai-share", type=float, default=AI_SHARE, help="share of documents with planted AI text")
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.out, args.mb, args.shards, args.seed, args.ai_share)))


if __name__ == "__main__":
    main()
