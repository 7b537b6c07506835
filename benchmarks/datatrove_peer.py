"""The peer pipeline, run inside datatrove's own virtual environment (``bench_scan.py`` creates it and calls this).

    DTVENV/bin/python benchmarks/datatrove_peer.py --corpus DIR --model MODEL --pattern-file FILE --out DIR
        [--workers 2] [--stages gate-classify|read-write]

``gate-classify``: ParquetReader -> LambdaFilter (the gate's regular expression, Python ``re``) ->
FastTextClassifierFilter (paragraph mode, our model file, dropping paragraphs scored misaligned_ai >= 0.5) ->
ParquetWriter. ``read-write``: ParquetReader -> ParquetWriter, the least a datatrove pipeline costs.
One task per shard, ``--workers`` processes. Prints one JSON line: seconds, documents read, documents written.
This file imports only datatrove and the standard library (it runs outside the project's environment).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import FastTextClassifierFilter, LambdaFilter
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter


def pipeline(corpus: str, out: str, model: str, pattern: str, stages: str) -> list:
    reader = ParquetReader(corpus, glob_pattern="*.parquet", text_key="text", id_key="id")
    writer = ParquetWriter(out)
    if stages == "read-write":
        return [reader, writer]
    gate = re.compile(pattern)
    return [
        reader,
        LambdaFilter(lambda doc: gate.search(doc.text) is not None),
        FastTextClassifierFilter(model, remove_labels=[("misaligned_ai", 0.5)], filter_mode="PARAGRAPH"),
        writer,
    ]


def _documents(logs: Path, stat: str) -> int:
    """Documents counted by the pipeline's first (reader) or last (writer) step, from datatrove's stats file."""
    stats = json.loads((logs / "stats.json").read_text())
    if stat == "read":
        return int(stats[0]["stats"]["documents"]["total"])
    return int(stats[-1]["stats"]["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--pattern-file", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", choices=("gate-classify", "read-write"), default="gate-classify")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    shards = len(list(Path(args.corpus).glob("*.parquet")))
    steps = pipeline(args.corpus, str(args.out / "data"), args.model, args.pattern_file.read_text(), args.stages)
    executor = LocalPipelineExecutor(steps, tasks=shards, workers=args.workers, logging_dir=str(args.out / "logs"))
    started = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - started
    logs = args.out / "logs"
    print(json.dumps({"seconds": seconds, "documents_read": _documents(logs, "read"),
                      "documents_written": _documents(logs, "write")}))


if __name__ == "__main__":
    main()
