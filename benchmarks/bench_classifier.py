"""Classification throughput of the shipped model, one process on one core.

Passages: real documents of ../shared/data/shards cut by the scan's own splitter (`audit.passages`), so their
length is what a scan classifies. Each path is timed on the same passages in the same run (median of
`--repeat` runs) and shown as a ratio to the baseline: fastText's own batch prediction (`multilinePredict`) on
text that is already normalised, i.e. the speed class of fastText itself. The full path adds normalisation,
the mapping of labels to columns, the risk-word features, calibration and the decision rule.

    .venv/bin/python benchmarks/bench_classifier.py [--passages 20000] [--repeat 5] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from audit.passages import split_passages
from audit.tagger import Tagger, normalize

SHARDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "shards"


def real_passages(count: int) -> list[str]:
    """The first `count` passages of the development shards' documents, in shard order."""
    passages: list[str] = []
    for path in sorted(SHARDS.glob("*.parquet")):
        for text in pl.read_parquet(path, columns=["text"])["text"]:
            passages.extend(text[start:end] for start, end in split_passages(text))
            if len(passages) >= count:
                return passages[:count]
    return passages


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    tagger = Tagger.load(args.model)
    passages = real_passages(args.passages)
    megabytes = sum(len(p.encode()) for p in passages) / 1e6
    lines = [normalize(p) + "\n" for p in passages]
    paths: list[tuple[str, Callable[[], object]]] = [
        ("fastText multilinePredict, pre-normalised text (baseline)",
         lambda: tagger.model.f.multilinePredict(lines, -1, 0.0, "replace")),
        ("normalize only", lambda: [normalize(p) for p in passages]),
        ("Tagger.raw_predict (normalise + fastText + columns)", lambda: tagger.raw_predict(passages)),
        ("Tagger.predict (+ risk words and calibration)", lambda: tagger.predict(passages)),
        ("Tagger.predict + decide (the scan's path)", lambda: tagger.decide(tagger.predict(passages))),
    ]
    rows = [(name, median_seconds(run, args.repeat)) for name, run in paths]
    baseline = rows[0][1]

    print("## Classifier throughput (`audit.tagger`)\n")
    print(
        f"Command: `.venv/bin/python benchmarks/bench_classifier.py --passages {args.passages} --repeat {args.repeat}`"
    )
    print(
        f"Machine: {platform.machine()}, Python {platform.python_version()}; one process, one thread; "
        "the machine is shared, so read the figures against the baseline measured in the same run.\n"
    )
    print(
        f"Model: `{tagger.path.name}` ({tagger.path.stat().st_size / 2**20:.1f} MiB, sha256 {tagger.sha256[:12]}). "
        f"{len(passages):,} real passages from ../shared/data/shards, "
        f"{sum(len(p.split()) for p in passages) / len(passages):.0f} words on average ({megabytes:.1f} MB).\n"
    )
    print("| path | passages/s | MB/s | time vs baseline |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {len(passages) / seconds:,.0f} | {megabytes / seconds:.1f} | {seconds / baseline:.2f}x |")


if __name__ == "__main__":
    main()
