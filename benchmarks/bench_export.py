"""Export throughput, as a ratio to a plain pyarrow read-and-write of the same shards, measured in the same run.

The baseline reads each shard whole (`pq.read_table`) and writes it back with the same codec and row-group size
(`pq.write_table`): the least any copy of the corpus can cost. Each export mode (`audit.exporter.export`, which also
writes the dolma-style attribute files and the manifest) and the baseline are timed ``--repeat`` times, interleaved,
and the best time of each is kept, so a neighbour's load on the shared machine skews them alike.

    .venv/bin/python benchmarks/bench_export.py [--corpus ../shared/data/shards] [--run RUN] [--repeat 3]
        [--out benchmarks/export.md]

Without ``--run`` the corpus is scanned first into a temporary run directory (not timed).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow
import pyarrow.parquet as pq

from audit.config import ScanConfig
from audit.exporter import MODES, WRITER_CODECS, export
from audit.pipeline import scan

SHARDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "shards"


def baseline(shards: list[Path], root: Path, out: Path) -> None:
    """Read every shard and write it back unchanged, with its codec and row-group size."""
    for path in shards:
        metadata = pq.ParquetFile(path).metadata
        codec = (
            WRITER_CODECS.get(metadata.row_group(0).column(0).compression, "zstd")
            if metadata.num_row_groups
            else "zstd"
        )
        rows = max((metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)), default=1)
        target = out / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.read_table(path), target, compression=codec, row_group_size=rows)


def timed(work) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARDS)
    parser.add_argument(
        "--run", type=Path, help="a finished scan of --corpus (default: scan it into a temporary directory)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the Markdown section here")
    args = parser.parse_args(argv)

    corpus = args.corpus.resolve()
    shards = sorted(corpus.rglob("*.parquet"))
    scratch = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        run = args.run or scratch / "run"
        if args.run is None:
            scan(ScanConfig(inputs=[str(corpus)], out=run, workers=2, progress=False))
        summary = json.loads((run / "summary.json").read_text())
        best = {name: (float("inf"), float("inf")) for name in ("baseline", *MODES)}
        manifests = {}
        for attempt in range(args.repeat):
            for name in best:
                out = scratch / f"{name}-{attempt}"
                if name == "baseline":
                    seconds = timed(lambda out=out: baseline(shards, corpus, out))
                else:

                    def run_export(name=name, out=out):
                        manifests[name] = export(run, out, name, placeholder="[removed]").manifest

                    seconds = timed(run_export)
                best[name] = (min(best[name][0], seconds[0]), min(best[name][1], seconds[1]))
                shutil.rmtree(out)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        shutil.rmtree(scratch)

    size_mb = sum(p.stat().st_size for p in shards) / 1e6
    text_mb = summary["corpus"]["characters"] / 1e6
    lines = [
        "## Export (`audit.exporter`)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_export.py --corpus {args.corpus} --repeat {args.repeat}"
        f"{' --run RUN' if args.run else ''}`"
        + (" (RUN: a finished `corpus-audit scan` of the corpus)" if args.run else ""),
        f"Machine: {platform.machine()}, Python {platform.python_version()}, pyarrow {pyarrow.__version__}; "
        "one process; the machine is shared, so read the figures against the baseline measured in the same run "
        "(best of "
        f"{args.repeat} interleaved runs each). Throughput vs baseline = baseline seconds / export seconds.",
        "",
        f"Corpus: {len(shards)} shards, {size_mb:.1f} MB of Parquet, {summary['corpus']['documents']:,} documents, "
        f"{text_mb:.1f} M characters; {summary['labels']['misaligned_ai']['documents']:,} documents flagged "
        "misaligned_ai.",
        "",
        "| step | wall s | MB/s (Parquet in) | docs/s | throughput vs baseline (wall) | CPU s | vs baseline (CPU) "
        "| rows out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    documents = summary["corpus"]["documents"]
    for name, (wall, cpu) in best.items():
        rows_out = manifests[name]["totals"]["rows_out"] if name in manifests else documents
        label = "baseline: pq.read_table + pq.write_table" if name == "baseline" else f"export --mode {name}"
        lines.append(
            f"| {label} | {wall:.2f} | {size_mb / wall:.1f} | {documents / wall:,.0f} "
            f"| {best['baseline'][0] / wall:.2f}x "
            f"| {cpu:.2f} | {best['baseline'][1] / cpu:.2f}x | {rows_out:,} |"
        )
    lines += ["", f"Peak RSS of the benchmark process: {peak_mib:,.0f} MiB.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
