"""End-to-end ``scan`` throughput against its ceilings, on two corpora, and peak memory per worker.

Two generated corpora (``python -m audit.synthetic``): ``--corpus`` (3% of documents pass the gate) and
``--corpus-web`` (``--ai-share 0.09``: 9%, the gate rate of the real Common Crawl sample). For each, every round times,
one after the other on the same shards (so a neighbour's load on the shared machine hits them alike), and the figures
are the medians over ``--repeat`` rounds:

  * ceiling A: pyarrow reading the text column (``iter_batches``, the scan's batch size), nothing else;
  * the gate alone over those same batches (the read is not timed), and its two parts: the literal pre-filter
    (``audit.gate.prefilter``) and the exact expression over every document (``gate_exact``, the gate before the
    pre-filter); each in wall seconds and in CPU seconds of this process (all its threads), so that "per core"
    figures do not depend on how many cores a neighbour left us;
  * the splitting of the gated documents and ``Tagger.predict`` over their passages (ceiling C);
  * ``corpus-audit scan`` with 1 and with 2 workers, each into a fresh run directory: the whole command's wall time
    and the phases its manifest records (``timings``: plan, model, units, summary, report);
  * ``corpus-audit scan`` of one shard (63 MB) with 2 workers: the whole command against its units phase;
  * optionally the datatrove peer (``benchmarks/datatrove_peer.py`` in its own virtual environment under ``--work``).

MB are 10^6 bytes of UTF-8 text (the text column's values). Peak RSS: one shard of about 2 GB of text
(``--big-shard``, generated when missing) is scanned with 2 workers while every process of the scan is polled
for its high-water mark (``VmHWM`` in /proc/PID/status); ``--big-mb 0`` skips it.

    .venv/bin/python benchmarks/bench_scan.py --corpus DIR --corpus-web DIR [--work /tmp/corpus-audit-bench]
        [--repeat 3] [--peer-repeat 0] [--big-mb 0] [--out benchmarks/scan.md] [--json benchmarks/scan.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
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
from audit.gate import PATTERN, gate, gate_exact, prefilter, warm_up
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
        yield from (
            batch.column(0) for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["text"])
        )


def _timed(function) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process) of ``function()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def ceiling_read(shards: list[Path]) -> dict:
    """Seconds (wall and CPU) for pyarrow to read the text column of every shard."""
    _, wall, cpu = _timed(lambda: [text.nbytes for text in text_batches(shards)])
    return {"wall": wall, "cpu": cpu}


def time_per_batch(shards: list[Path], function) -> tuple[dict, list]:
    """Wall and CPU seconds of ``function`` over the scan's batches (the read not timed), and its results."""
    wall = cpu = 0.0
    results = []
    for text in text_batches(shards):
        result, w, c = _timed(lambda text=text: function(text))
        wall, cpu = wall + w, cpu + c
        results.append((text, result))
    return {"wall": wall, "cpu": cpu}, results


def ceiling_gate(shards: list[Path]) -> tuple[dict, list[str]]:
    """Seconds spent in ``gate`` alone over the scan's batches, and the texts of the gated documents."""
    seconds, results = time_per_batch(shards, gate)
    gated = [t for text, mask in results for t in text.filter(pa.array(mask)).to_pylist()]
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
    return {
        "split_seconds": split_seconds,
        "predict_seconds": time.perf_counter() - started,
        "passages": len(passages),
        "passage_bytes": sum(len(p.encode()) for p in passages),
    }


def run_scan(corpus: Path, run: Path, workers: int) -> dict:
    """One fresh ``corpus-audit scan``: the whole command's wall time, the CPU seconds of all its processes, and its
    manifest's phases."""
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "audit", "scan", str(corpus), "--out", str(run), "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    manifest = json.loads((run / "manifest.json").read_text())
    unit_seconds = sum(json.loads(p.read_text())["seconds"] for p in (run / "units").glob("*.json"))
    return {
        "seconds": manifest["seconds"],
        "wall": wall,
        "cpu": cpu,
        "documents": manifest["documents_scanned"],
        "timings": manifest["timings"],
        "unit_seconds": unit_seconds,
    }


# -- the datatrove peer ---------------------------------------------------------------------------------------


def peer_python(work: Path) -> tuple[Path | None, str]:
    """datatrove's virtual environment (created on first use); (None, why) when it cannot be set up."""
    venv = work / "datatrove-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES]]
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
    command = [
        str(python),
        str(REPO / "benchmarks" / "datatrove_peer.py"),
        "--corpus",
        str(corpus),
        "--model",
        str(load_cached(None).path),
        "--pattern-file",
        str(pattern),
        "--out",
        str(work / f"peer-{stages}"),
        "--workers",
        str(workers),
        "--stages",
        stages,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the datatrove pipeline failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- peak memory ------------------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
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
    children = sorted(
        (mib for pid, (role, mib) in peaks.items() if pid != process.pid and role == "child"), reverse=True
    )
    return {
        "main_mib": peaks[process.pid][1],
        "children_mib": children,
        "units": len(manifest["units"]),
        "seconds": manifest["seconds"],
    }


def ensure_big_shard(directory: Path, megabytes: float) -> Path:
    if not list(directory.glob("*.parquet")):
        subprocess.run([sys.executable, "-m", "audit.synthetic", "--out", str(directory), "--mb", str(megabytes),
                        "--shards", "1", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    return directory


# -- report -------------------------------------------------------------------------------------------------------


def measure_corpus(corpus: Path, args: argparse.Namespace) -> dict:
    """The rounds on one corpus (see the module's docstring)."""
    shards = shard_paths(corpus)
    size, documents = text_size(shards)
    warm_up()  # the pre-filter's compilation is a once-per-process cost, timed in the scans' phases instead
    rounds: list[dict] = []
    for _ in range(args.repeat):
        row = {"read": ceiling_read(shards)}
        row["gate"], gated = ceiling_gate(shards)
        row["prefilter"], candidates = time_per_batch(shards, prefilter)
        row["candidates"] = sum(int(mask.sum()) for _, mask in candidates)
        del candidates
        row["exact"], _ = time_per_batch(shards, gate_exact)
        row.update(split_and_predict(gated))
        row["gated_documents"] = len(gated)
        del gated
        for workers in (1, 2):
            row[f"scan_{workers}"] = run_scan(corpus, args.work / f"run-{workers}", workers)
        rounds.append(row)
        print(json.dumps(row), file=sys.stderr)
    return {"path": str(corpus), "text_bytes": size, "documents": documents, "shards": len(shards), "rounds": rounds}


def measure_one_shard(corpus: Path, args: argparse.Namespace) -> dict:
    """The whole command on the corpus's first shard (2 workers), against its units phase."""
    one = args.work / "one-shard"
    shutil.rmtree(one, ignore_errors=True)
    one.mkdir(parents=True)
    first = shard_paths(corpus)[0]
    (one / first.name).symlink_to(first.resolve())
    size, documents = text_size([first])
    rounds = [run_scan(one, args.work / "run-one", 2) for _ in range(args.repeat)]
    return {"text_bytes": size, "documents": documents, "rounds": rounds}


def measure(args: argparse.Namespace) -> dict:
    corpora = (("3%", args.corpus), ("9%", args.corpus_web))
    figures = {
        "corpora": {name: measure_corpus(path, args) for name, path in corpora},
        "one_shard": measure_one_shard(args.corpus, args),
        "peer": None,
        "memory": None,
    }
    if args.peer_repeat:
        python, error = peer_python(args.work)
        subset = peer_subset(args.corpus, args.work, args.peer_shards)
        peer = {
            "error": error,
            "subset": dict(
                zip(("text_bytes", "documents"), text_size(shard_paths(subset)), strict=True), shards=args.peer_shards
            ),
            "rounds": [],
        }
        for _ in range(args.peer_repeat if python else 0):
            try:
                peer["rounds"].append(
                    {
                        "gate_classify": run_peer(python, subset, args.work, "gate-classify", 2),
                        "read_write": run_peer(python, args.corpus, args.work, "read-write", 2),
                    }
                )
            except RuntimeError as failure:  # record why, and report the rest
                peer["error"] = str(failure)
                break
        figures["peer"] = peer
    if args.big_mb:
        figures["memory"] = peak_rss(ensure_big_shard(args.big_shard, args.big_mb), args.work / "run-big", 2)
        figures["memory"]["shard_bytes"] = text_size(shard_paths(args.big_shard))[0]
    return figures


def _median(rounds: list[dict], *keys: str) -> float:
    def get(row: dict):
        for key in keys:
            row = row[key]
        return row

    return statistics.median(get(row) for row in rounds if keys[0] in row)


PHASES = ("plan", "model", "manifest", "units", "summary", "report")


def corpus_section(name: str, corpus: dict) -> tuple[list[str], dict]:
    """The Markdown table of one corpus, and its headline ratios."""
    rounds, mb, docs = corpus["rounds"], corpus["text_bytes"] / 1e6, corpus["documents"]
    read_wall, read_cpu = _median(rounds, "read", "wall"), _median(rounds, "read", "cpu")
    ceiling, ceiling_core = mb / read_wall, mb / read_cpu

    def line(stage: str, wall: float, cpu: float | None = None, note: str = "") -> str:
        core = f"{mb / cpu:,.0f} MB/s | {mb / cpu / ceiling_core:.2f}x" if cpu else "- | -"
        rate = mb / wall
        return (
            f"| {stage} | {wall:.2f} s | {rate:,.0f} MB/s | {docs / wall:,.0f} | {rate / ceiling:.2f}x "
            f"| {core} | {note} |"
        )

    passages, predict = _median(rounds, "passages"), _median(rounds, "predict_seconds")
    gated, candidates = _median(rounds, "gated_documents"), _median(rounds, "candidates")
    lines = [
        f"### Corpus {name}: {corpus['shards']} shards, {docs:,} documents, {mb:,.0f} MB of text; "
        f"{gated:,.0f} documents ({gated / docs:.1%}) pass the gate, holding {passages:,.0f} passages",
        "",
        "| stage | wall | MB/s | documents/s | vs ceiling A | MB/s per CPU-second | per core vs ceiling A | note |",
        "|---|---|---|---|---|---|---|---|",
        line("ceiling A: pyarrow reads the text column", read_wall, read_cpu),
        line(
            "**the gate** (`audit.gate.gate`)",
            _median(rounds, "gate", "wall"),
            _median(rounds, "gate", "cpu"),
            "pre-filter, then the expression on its candidates",
        ),
        line(
            "… its literal pre-filter (`prefilter`)",
            _median(rounds, "prefilter", "wall"),
            _median(rounds, "prefilter", "cpu"),
            f"{candidates:,.0f} candidates ({candidates / docs:.1%} of documents)",
        ),
        line(
            "… the exact expression on every document (the gate before)",
            _median(rounds, "exact", "wall"),
            _median(rounds, "exact", "cpu"),
            "polars",
        ),
        line("splitting the gated documents", _median(rounds, "split_seconds"), None, "1 process"),
        line(
            "ceiling C: `Tagger.predict` + `decide` on their passages",
            predict,
            None,
            f"{passages / predict:,.0f} passages/s",
        ),
    ]
    for workers in (1, 2):
        scan = f"scan_{workers}"
        plural = "s" * (workers > 1)
        lines.append(
            line(
                f"**`corpus-audit scan`, {workers} worker{plural}** (plan to report)",
                _median(rounds, scan, "seconds"),
                _median(rounds, scan, "cpu"),
                f"whole command {_median(rounds, scan, 'wall'):.1f} s with interpreter start-up; "
                "CPU: every process of the whole command",
            )
        )
        lines.append(
            line(
                f"… its units phase ({workers} worker{plural})",
                _median(rounds, scan, "timings", "units"),
                None,
                "reading, gating, classifying, writing the units",
            )
        )
    headline = {
        "scan_2": mb / _median(rounds, "scan_2", "seconds") / ceiling,
        "units_1": mb / _median(rounds, "scan_1", "timings", "units"),
        "units_2": mb / _median(rounds, "scan_2", "timings", "units"),
        "gate_core": read_cpu / _median(rounds, "gate", "cpu"),
        "scan_core": read_cpu / _median(rounds, "scan_2", "cpu"),
        "ceiling": ceiling,
    }
    return lines, headline


def phase_line(label: str, rounds: list[dict]) -> str:
    whole = _median(rounds, "wall")
    start = whole - _median(rounds, "seconds")
    cells = [f"{_median(rounds, 'timings', phase):.2f}" for phase in PHASES]
    units = _median(rounds, "timings", "units")
    return f"| {label} | {start:.2f} | {' | '.join(cells)} | {whole:.2f} | {whole / units:.2f}x |"


def _target(name: str, value: float, met: bool) -> str:
    return f"| {name} | **{value:.2f}x** | {'yes' if met else '**no**'} |"


def markdown(figures: dict, command: str) -> str:
    lines = [
        "## Scan throughput (`benchmarks/bench_scan.py`)",
        "",
        f"Command: `{command}`  ",
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores shared "
        f"with other jobs (loaded: see the load note above), Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}. "
        f"Medians of {len(figures['corpora']['3%']['rounds'])} rounds; a round times every row one after the other, so "
        'the ratios to ceiling A (same rounds) are steadier than the absolute figures. "per core" divides by the '
        "CPU seconds the process used (all its threads), which a neighbour's load changes much less than wall time.",
        "",
    ]
    headlines = {}
    for name, corpus in figures["corpora"].items():
        section, headlines[name] = corpus_section(name, corpus)
        lines += section + [""]
    one = figures["one_shard"]
    lines += [
        "### Where the wall time goes (seconds; medians)",
        "",
        "| run | interpreter + imports | " + " | ".join(PHASES) + " | whole command | whole / units |",
        "|---|---|" + "---|" * len(PHASES) + "---|---|",
        phase_line(f"one shard ({one['text_bytes'] / 1e6:.0f} MB, 3% corpus), 2 workers", one["rounds"]),
    ]
    for name, corpus in figures["corpora"].items():
        for workers in (1, 2):
            rounds = [row[f"scan_{workers}"] for row in corpus["rounds"]]
            lines.append(phase_line(f"corpus {name}, {workers} worker{'s' * (workers > 1)}", rounds))
    three, web = headlines["3%"], headlines["9%"]
    one_ratio = _median(one["rounds"], "wall") / _median(one["rounds"], "timings", "units")
    lines += [
        "",
        "### Scaling",
        "",
        "| corpus | units phase, 1 worker | units phase, 2 workers | 2 workers / 1 |",
        "|---|---|---|---|",
        *[
            f"| {name} | {h['units_1']:,.0f} MB/s | {h['units_2']:,.0f} MB/s | {h['units_2'] / h['units_1']:.2f}x |"
            for name, h in headlines.items()
        ],
        "",
        "### Targets",
        "",
        "| target | measured | met? |",
        "|---|---|---|",
        _target("scan, 2 workers, >= 0.6x ceiling A on the 3% corpus", three["scan_2"], three["scan_2"] >= 0.6),
        _target("scan, 2 workers, >= 0.4x ceiling A on the 9% corpus", web["scan_2"], web["scan_2"] >= 0.4),
        _target("whole command on one shard <= 2x its scan (units) phase", one_ratio, one_ratio <= 2),
        _target("the gate >= 2x ceiling A per core, 3% corpus", three["gate_core"], three["gate_core"] >= 2),
        f"| (the same on the 9% corpus, no target) | {web['gate_core']:.2f}x | - |",
        "",
        "Per core (MB per CPU-second of every process of the whole command, 2 workers, against ceiling A's MB per "
        f"CPU-second): **{three['scan_core']:.2f}x** on the 3% corpus, **{web['scan_core']:.2f}x** on the 9% corpus. "
        "With N workers on N otherwise idle cores, the scan would run at about N times its MB per CPU-second, if the "
        "units outnumber the workers, the storage keeps up, and the serial part (start-up, merge, report: the phases "
        "table) stays small beside the units.",
    ]
    peer = figures.get("peer")
    if peer and peer["rounds"]:
        mb = figures["corpora"]["3%"]["text_bytes"] / 1e6
        scan = mb / _median(figures["corpora"]["3%"]["rounds"], "scan_2", "seconds")
        rate = peer["subset"]["text_bytes"] / 1e6 / _median(peer["rounds"], "gate_classify", "seconds")
        floor = mb / _median(peer["rounds"], "read_write", "seconds")
        lines += [
            "",
            "datatrove (reader -> gate -> fastText -> writer, 2 workers, first "
            f"{peer['subset']['shards']} shards): {rate:.1f} MB/s, so the scan is **{scan / rate:,.0f}x** it; "
            "datatrove's bare reader -> writer: "
            f"{floor:.0f} MB/s ({scan / floor:.1f}x).",
        ]
    if peer and peer["error"]:
        lines += ["", f"The datatrove peer could not be run: {peer['error']}"]
    memory = figures.get("memory")
    if memory:
        lines += [
            "",
            f"### Peak memory on one shard of {memory['shard_bytes'] / 1e9:.1f} GB of text",
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
    parser.add_argument("--corpus", type=Path, required=True, help="the 3%% corpus (python -m audit.synthetic)")
    parser.add_argument("--corpus-web", type=Path, required=True, help="the 9%% corpus (generate --ai-share 0.09)")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/corpus-audit-bench"), help="run directories and the peer's venv"
    )
    parser.add_argument(
        "--big-shard", type=Path, default=None, help="directory of the one big shard (default WORK/big)"
    )
    parser.add_argument("--big-mb", type=float, default=2000, help="size of the big shard; 0 skips the memory figure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-shards", type=int, default=2, help="shards the (slow) datatrove gate pipeline reads")
    parser.add_argument("--peer-repeat", type=int, default=1, help="rounds of the datatrove peer; 0 skips it")
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
