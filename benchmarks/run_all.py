"""Every benchmark in one command: generate the benchmark corpus, run each benchmark, update BENCHMARKS.md.

    .venv/bin/python benchmarks/run_all.py [--work /tmp/corpus-audit-bench] [--mb 500] [--shards 8] [--repeat 3]

Steps (each a separate process, so one benchmark's memory does not weigh on the next):
  1. ``python -m audit.synthetic`` writes WORK/corpus (3% of documents pass the gate) and WORK/corpus-web
     (``--ai-share 0.09``: 9%, as on the Common Crawl sample) when they are not there yet;
  2. ``benchmarks/bench_scan.py``: scan throughput on both, its ceilings and phases, the datatrove peer, peak memory;
  3. ``benchmarks/bench_clusters.py``: MinHash throughput and clustering a million signatures;
  4. ``benchmarks/bench_export.py`` (when present): export throughput against a pyarrow read and write, on the
     corpus and the run directory that step 2 left behind;
  5. ``benchmarks/bench_classifier.py`` (when present).
Each benchmark prints its Markdown section; BENCHMARKS.md keeps its hand-written analysis and gets the sections
between its ``generated`` markers (``benchmarks/clusters.md`` and ``export.md``, written by those benchmarks'
``--out``, are left as they are).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RESULTS = REPO / "BENCHMARKS.md"
BEGIN, END = "<!-- generated: begin (benchmarks/run_all.py) -->", "<!-- generated: end -->"


def run(name: str, *args: str) -> str | None:
    """Run ``benchmarks/<name>.py``; returns its Markdown section (stdout), or None when the script is absent."""
    script = BENCHMARKS / f"{name}.py"
    if not script.exists():
        print(f"{script.name}: not present, skipped", file=sys.stderr)
        return None
    print(f"running {script.name} {' '.join(args)}", file=sys.stderr)
    done = subprocess.run([sys.executable, str(script), *args], cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    return done.stdout.strip() + "\n"


def update_results(sections: list[str]) -> None:
    """Replace the generated part of BENCHMARKS.md (or append one) with ``sections``."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    generated = "\n".join([BEGIN, "", *sections, END])
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + generated + rest.split(END, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + generated + "\n"
    RESULTS.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/corpus-audit-bench"))
    parser.add_argument("--mb", type=float, default=500)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpus, corpus_web = args.work / "corpus", args.work / "corpus-web"
    for path, share in ((corpus, "0.03"), (corpus_web, "0.09")):
        if not list(path.glob("*.parquet")):
            subprocess.run([sys.executable, "-m", "audit.synthetic", "--out", str(path), "--mb", str(args.mb),
                            "--shards", str(args.shards), "--ai-share", share], check=True)
    sections = [
        run("bench_scan", "--corpus", str(corpus), "--corpus-web", str(corpus_web), "--work", str(args.work),
            "--repeat", str(args.repeat), "--json", str(args.work / "scan.json")),
        run("bench_clusters"),
        run("bench_export", "--corpus", str(corpus), "--run", str(args.work / "run-2"), "--repeat", str(args.repeat)),
        run("bench_classifier"),
    ]
    update_results([section for section in sections if section])
    print(RESULTS)


if __name__ == "__main__":
    main()
