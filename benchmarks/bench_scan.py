"""End-to-end ``scan`` throughput against its ceilings and a peer pipeline, and peak memory per worker.

Each round times, one after the other on the same shards (so a neighbour's load on the shared machine hits them
alike), and the figures are the medians over ``--repeat`` rounds:

  * ceiling A: pyarrow reading the text column (``iter_batches``, the scan's batch size), nothing else;
  * ceiling B: ``audit.gate.gate`` alone over those same batches (the read is not timed);
  * ceiling C: ``Tagger.predict`` alone over every passage of the gated documents (split beforehand, not timed);
    the splitting (``audit.passages.split_passages``) is timed on its own as well;
  * ``corpus-audit scan`` with 1 and with 2 workers, each into a fresh run directory (the manifest's ``seconds``:
    from planning to the written report; the interpreter's start-up is left out);
  * the peer: datatrove ParquetReader -> keyword gate -> FastTextClassifierFilter (paragraph mode, our model) ->
    ParquetWriter with 2 workers (``benchmarks/datatrove_peer.py``, in its own virtual environment under
    ``--work``), and datatrove's ParquetReader -> ParquetWriter as the least a datatrove pipeline costs.

MB are 10^6 bytes of UTF-8 text (the text column's values). Peak RSS: one shard of about 2 GB of text
(``--big-shard``, generated when missing) is scanned with 2 workers while every process of the scan is polled
for its high-water mark (``VmHWM`` in /proc/PID/status).

    .venv/bin/python benchmarks/bench_scan.py --corpus DIR [--big-shard DIR] [--work /tmp/corpus-audit-bench]
        [--repeat 3] [--out benchmarks/scan.md] [--json benchmarks/scan.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audit.config import ScanConfig
from audit.gate import PATTERN, gate
from audit.passages import split_passages
from audit.tagger import load_cached

REPO = Path(__file__).resolve().parents[1]
BATCH_ROWS = ScanConfig(inputs=[], out=Path(".")).batch_rows
PEER_PACKAGES = ["datatrove", "fasttext-numpy2-wheel", "fasteners", "regex", "pyarrow"]
PREDICT_CHUNK = 8192


def shard_paths(corpus: Path) -> list[Path]:
    return sorted(corpus.glob("*.parquet"))


def text_size(shards: list[Path]) -> tuple[int, int]:
    """(bytes of text, documents) in the shards."""
    size = documents = 0
    for path in shards:
        text = pq.read_table(path, columns=["text"]).column("text")
        size += pc.sum(pc.binary_length(text)).as_py() or 0
        documents += len(text)
    return size, documents


def text_batches(shards: list[Path]):
    for path in shards:
        yield from (batch.column(0) for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["text"]))


def ceiling_read(shards: list[Path]) -> float:
    """Seconds for pyarrow to read the text column of every shard."""
    started = time.perf_counter()
    for text in text_batches(shards):
        text.nbytes  # noqa: B018 - touch the batch
    return time.perf_counter() - started


def ceiling_gate(shards: list[Path]) -> tuple[float, list[str]]:
    """Seconds spent in ``gate`` alone over the scan's batches, and the texts of the gated documents."""
    seconds, gated = 0.0, []
    for text in text_batches(shards):
        started = time.perf_counter()
        mask = gate(text)
        seconds += time.perf_counter() - started
        gated += text.filter(pa.array(mask)).to_pylist()
    return seconds, gated


def split_and_predict(gated: list[str]) -> dict:
    """Seconds to split the gated documents into passages, and (ceiling C) to classify those passages."""
    started = time.perf_counter()
    passages = [text[a:b] for text in gated for a, b in split_passages(text)]
    split_seconds = time.perf_counter() - started
    tagger = load_cached(None)
    started = time.perf_counter()
    for i in range(0, len(passages), PREDICT_CHUNK):
        tagger.decide(tagger.predict(passages[i : i + PREDICT_CHUNK]))
    return {"split_seconds": split_seconds, "predict_seconds": time.perf_counter() - started,
            "passages": len(passages), "passage_bytes": sum(len(p.encode()) for p in passages)}


def run_scan(corpus: Path, run: Path, workers: int) -> dict:
    """One fresh ``corpus-audit scan``; its manifest's timing and the wall time of the whole command."""
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "audit", "scan", str(corpus), "--out", str(run), "--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    manifest = json.loads((run / "manifest.json").read_text())
    return {"seconds": manifest["seconds"], "wall": wall, "documents": manifest["documents_scanned"]}


# -- the datatrove peer ---------------------------------------------------------------------------------------


def peer_python(work: Path) -> tuple[Path | None, str]:
    """datatrove's virtual environment (created on first use); (None, why) when it cannot be set up."""
    venv = work / "datatrove-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                return None, f"`{' '.join(step)}` failed: {done.stderr.strip()[-500:]}"
    return python, ""


def python_pattern() -> str:
    """The gate's pattern in Python ``re`` syntax (Rust's ASCII ``(?-u:\\b)`` and mid-pattern ``(?-i)`` rewritten)."""
    insensitive, cased = PATTERN.replace(r"(?-u:\b)", r"\b").split("|(?-i)")
    return f"(?i:{insensitive.removeprefix('(?i)')})|(?:{cased})"


def peer_subset(corpus: Path, work: Path, shards: int) -> Path:
    """A directory of links to the first ``shards`` shards (the gate in Python ``re`` is too slow for them all)."""
    subset = work / f"peer-corpus-{shards}"
    shutil.rmtree(subset, ignore_errors=True)
    subset.mkdir(parents=True)
    for path in shard_paths(corpus)[:shards]:
        (subset / path.name).symlink_to(path.resolve())
    return subset


def run_peer(python: Path, corpus: Path, work: Path, stages: str, workers: int) -> dict:
    pattern = work / "gate-pattern.txt"
    pattern.write_text(python_pattern())
    command = [str(python), str(REPO / "benchmarks" / "datatrove_peer.py"), "--corpus", str(corpus),
               "--model", str(load_cached(None).path), "--pattern-file", str(pattern), "--out", str(work / f"peer-{stages}"),
               "--workers", str(workers), "--stages", stages]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the datatrove pipeline failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- peak memory ------------------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children + [d for c in children for d in _descendants(c)]


def _high_water_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return int(line.split()[1]) / 1024 if line else None


def _role(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    if "resource_tracker" in command:
        return "resource tracker"
    return "child" if "multiprocessing" in command else command[:60]


def peak_rss(shard_dir: Path, run: Path, workers: int) -> dict:
    """Scan ``shard_dir`` with ``workers`` processes, polling every process's peak RSS (MiB) until it exits."""
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "audit", "scan", str(shard_dir), "--out", str(run), "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, tuple[str, float]] = {}
    while process.poll() is None:
        for pid in [process.pid, *_descendants(process.pid)]:
            mib = _high_water_mib(pid)
            if mib is not None and mib >= peaks.get(pid, ("", 0.0))[1]:
                peaks[pid] = (peaks.get(pid, (_role(pid), 0))[0], mib)
        time.sleep(0.1)
    if process.returncode != 0:
        raise RuntimeError(f"scan of {shard_dir} failed: {process.stderr.read().decode()[-2000:]}")
    manifest = json.loads((run / "manifest.json").read_text())
    children = sorted((mib for pid, (role, mib) in peaks.items() if pid != process.pid and role == "child"), reverse=True)
    return {"main_mib": peaks[process.pid][1], "children_mib": children, "units": len(manifest["units"]),
            "seconds": manifest["seconds"]}


def ensure_big_shard(directory: Path, megabytes: float) -> Path:
    if not list(directory.glob("*.parquet")):
        subprocess.run([sys.executable, "-m", "audit.corpora.generate", "--out", str(directory), "--mb", str(megabytes),
                        "--shards", "1", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    return directory


# -- report -------------------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict:
    shards = shard_paths(args.corpus)
    size, documents = text_size(shards)
    python, peer_error = peer_python(args.work)
    subset = peer_subset(args.corpus, args.work, args.peer_shards)
    rounds: list[dict] = []
    for index in range(args.repeat):
        row = {"read": ceiling_read(shards)}
        row["gate"], gated = ceiling_gate(shards)
        row.update(split_and_predict(gated))
        row["gated_documents"] = len(gated)
        del gated
        for workers in (1, 2):
            row[f"scan_{workers}"] = run_scan(args.corpus, args.work / f"run-{workers}", workers)
            row[f"scan_{workers}"]["unit_seconds"] = sum(
                json.loads(p.read_text())["seconds"] for p in (args.work / f"run-{workers}" / "units").glob("*.json"))
        if python is not None:
            try:
                if index < args.peer_repeat:
                    row["peer"] = run_peer(python, subset, args.work, "gate-classify", 2)
                row["peer_read_write"] = run_peer(python, args.corpus, args.work, "read-write", 2)
            except RuntimeError as error:  # record why, and measure the rest
                python, peer_error = None, str(error)
                row.pop("peer", None)
        rounds.append(row)
        print(json.dumps(row), file=sys.stderr)
    memory = peak_rss(ensure_big_shard(args.big_shard, args.big_mb), args.work / "run-big", 2) if args.big_mb else None
    big_size = text_size(shard_paths(args.big_shard))[0] if memory else None
    return {"text_bytes": size, "documents": documents, "shards": len(shards), "rounds": rounds,
            "peer_subset": dict(zip(("text_bytes", "documents"), text_size(shard_paths(subset))), shards=args.peer_shards),
            "peer_error": peer_error, "memory": memory, "big_shard_bytes": big_size}


def _median(rounds: list[dict], *keys: str) -> float:
    def get(row: dict):
        for key in keys:
            row = row[key]
        return row
    return statistics.median(get(row) for row in rounds if keys[0] in row)


def markdown(figures: dict, command: str) -> str:
    rounds = figures["rounds"]
    mb, docs = figures["text_bytes"] / 1e6, figures["documents"]
    ceiling_a = mb / _median(rounds, "read")

    def line(name: str, seconds: float, extra: str = "", size: float = mb, count: int = docs) -> str:
        rate = size / seconds
        return f"| {name} | {seconds:.1f} s | {rate:,.1f} MB/s | {count / seconds:,.0f} | {rate / ceiling_a:.2f}x | {extra} |"

    passages = _median(rounds, "passages")
    predict = _median(rounds, "predict_seconds")
    lines = [
        "## Scan throughput (`benchmarks/bench_scan.py`)",
        "",
        f"Command: `{command}`  ",
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores shared with other "
        f"jobs, Python {platform.python_version()}, pyarrow "
        f"{pa.__version__}. Medians of {len(rounds)} rounds; a round times every row one after the other, so the "
        "ratios to ceiling A (same rounds) are steadier than the absolute figures.",
        "",
        f"Corpus: {figures['shards']} shards, {docs:,} documents, {mb:,.0f} MB of text; "
        f"{_median(rounds, 'gated_documents'):,.0f} documents pass the gate, holding {passages:,.0f} passages.",
        "",
        "| stage | time | MB/s of text | documents/s | vs ceiling A | note |",
        "|---|---|---|---|---|---|",
        line("ceiling A: pyarrow reads the text column", _median(rounds, "read")),
        line("ceiling B: `gate` alone over the same batches", _median(rounds, "gate"), "polars, 2 threads; read not timed"),
        line("splitting the gated documents (`split_passages`)", _median(rounds, "split_seconds"), "1 process"),
        line("ceiling C: `Tagger.predict` + `decide` over their passages", predict,
             f"{passages / predict:,.0f} passages/s, 1 process"),
    ]
    for workers in (1, 2):
        scan = f"scan_{workers}"
        lines.append(line(f"**`corpus-audit scan`, {workers} worker{'s' * (workers > 1)}**", _median(rounds, scan, "seconds"),
                          f"whole command {_median(rounds, scan, 'wall'):.1f} s with interpreter start-up"))
        units = _median(rounds, scan, "unit_seconds") / workers
        lines.append(line(f"… its units of work alone ({workers} worker{'s' * (workers > 1)})", units,
                          "sum of the units' seconds / workers: no start-up, merge or report"))
    peer = figures["peer_subset"]
    if "peer" in rounds[0]:
        lines.append(line(f"datatrove: reader -> gate -> fastText (paragraphs) -> writer, 2 workers, first {peer['shards']} shards",
                          _median(rounds, "peer", "seconds"), "the gate's regex in Python `re`; 1 run",
                          size=peer["text_bytes"] / 1e6, count=peer["documents"]))
        lines.append(line("datatrove: reader -> writer, 2 workers", _median(rounds, "peer_read_write", "seconds"),
                          "the least any datatrove pipeline costs"))
    lines.append("")
    scan2 = mb / _median(rounds, "scan_2", "seconds")
    summary = f"`corpus-audit scan` with 2 workers: **{scan2 / ceiling_a:.2f}x ceiling A** (target 0.6)"
    if "peer" in rounds[0]:
        peer_rate = peer["text_bytes"] / 1e6 / _median(rounds, "peer", "seconds")
        floor_rate = mb / _median(rounds, "peer_read_write", "seconds")
        summary += (f"; **{scan2 / peer_rate:,.0f}x the datatrove pipeline** with the same gate (target 5x) and "
                    f"{scan2 / floor_rate:.1f}x datatrove's bare reader -> writer.")
    lines.append(summary)
    if figures["peer_error"]:
        lines += ["", f"The datatrove peer could not be run: {figures['peer_error']}"]
    memory = figures["memory"]
    if memory:
        lines += [
            "",
            f"### Peak memory on one shard of {figures['big_shard_bytes'] / 1e9:.1f} GB of text",
            "",
            f"`corpus-audit scan` with 2 workers: {memory['units']} units of work, {memory['seconds']:.0f} s. "
            "Peak RSS (VmHWM) of each process of the scan:",
            "",
            "| process | peak RSS |",
            "|---|---|",
            f"| main (plans, merges, writes the report) | {memory['main_mib']:,.0f} MiB |",
            *[f"| child process {i + 1} | {mib:,.0f} MiB |" for i, mib in enumerate(memory["children_mib"])],
            "",
            f"Largest child (a worker): **{max(memory['children_mib'], default=0) / 1024:.2f} GiB** (target 1 GiB).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="benchmark shards (python -m audit.corpora.generate)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/corpus-audit-bench"), help="run directories and the peer's venv")
    parser.add_argument("--big-shard", type=Path, default=None, help="directory of the one big shard (default WORK/big)")
    parser.add_argument("--big-mb", type=float, default=2000, help="size of the big shard; 0 skips the memory figure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-shards", type=int, default=2, help="shards the (slow) datatrove gate pipeline reads")
    parser.add_argument("--peer-repeat", type=int, default=1, help="rounds that run the datatrove gate pipeline")
    parser.add_argument("--out", type=Path, help="write the Markdown section here")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.big_shard = args.big_shard or args.work / "big"
    command = " ".join(["python benchmarks/bench_scan.py", *(argv if argv is not None else sys.argv[1:])])
    figures = measure(args)
    text = markdown(figures, command)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
