"""Fault injection: kill -9 at random points, damaged and odd inputs, write failures, hostile text.

Complements tests/test_scan.py (one kill at a fixed point, truncated and random-bytes shards, a replaced shard,
a 10 MB document) and tests/test_export.py (one export kill): here the kills land at several random points of
one run (the process group is killed, workers included, as the OOM killer or a lost machine would), and a full
disk is simulated at each kind of file the run writes. Kill points come from a seed printed in every failure
message; set RELIABILITY_SEED to replay one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import SHARDS, cli, load_summary, write_shard

pytestmark = pytest.mark.reliability

SEED = int(os.environ.get("RELIABILITY_SEED", random.SystemRandom().randrange(10**6)))
KILLS = 5
ROWS_PER_SHARD = 100
ROWS_PER_GROUP = 25
UNIT_MB = "0.001"  # smaller than a row group: every row group is its own unit of work


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """8 shards x 100 real web documents in row groups of 25: 32 units of work, 8 shards to export."""
    root = tmp_path_factory.mktemp("corpus") / "in"
    table = pq.read_table(sorted(SHARDS.glob("*.parquet"))[0])
    for i in range(8):
        part = table.slice(i * ROWS_PER_SHARD, ROWS_PER_SHARD)
        path = root / f"part-{i // 4}" / f"s{i:02d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path, row_group_size=ROWS_PER_GROUP)
    return root


def _scan_args(corpus: Path, run: Path, *extra: str) -> list[str]:
    return ["scan", str(corpus), "--out", str(run), "--unit-mb", UNIT_MB, *extra]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The uninterrupted scan every interrupted one must reproduce."""
    run = tmp_path_factory.mktemp("reference") / "run"
    cli(*_scan_args(corpus, run), check=True)
    return run


def _files(root: Path) -> list[Path]:
    """Finished files below ``root`` (temporaries left out)."""
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")] if root.is_dir() else []


def _kill_at_random_points(args: list[str], out: Path, files_when_done: int, rng: random.Random) -> list[int]:
    """Start ``corpus-audit ARGS`` again and again, each time killing its process group with SIGKILL once ``out``
    holds a randomly drawn number of finished files (plus a random delay of up to 50 ms).

    Returns the file counts at which the kills landed."""
    targets = sorted(rng.sample(range(1, files_when_done - 3), KILLS))
    landed = []
    for target in targets:
        process = subprocess.Popen([sys.executable, "-m", "audit", *args], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 180
        while process.poll() is None and time.time() < deadline and len(_files(out)) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            landed.append(len(_files(out)))
        process.wait()
    return landed


def _same_tables(a: Path, b: Path) -> bool:
    return pq.read_table(a).equals(pq.read_table(b))


@pytest.mark.shared_data
def test_scan_killed_at_random_points_resumes_to_identical_results(corpus, reference, tmp_path):
    run = tmp_path / "run"
    args = _scan_args(corpus, run, "--workers", "2")
    landed = _kill_at_random_points(args, run, len(_files(reference)), random.Random(SEED))
    assert len(landed) == KILLS, f"seed {SEED}: only {len(landed)} kills landed while the scan ran ({landed})"

    done = cli(*args, check=True)
    assert "Traceback" not in done.stderr
    assert load_summary(run) == load_summary(reference), f"seed {SEED}, kills at {landed} files"
    assert _same_tables(run / "passages.parquet", reference / "passages.parquet"), f"seed {SEED}"
    assert _same_tables(run / "clusters.parquet", reference / "clusters.parquet"), f"seed {SEED}"
    assert not list(run.rglob(".tmp-*"))


def _export_args(run: Path, out: Path) -> list[str]:
    return ["export", str(run), "--out", str(out), "--mode", "redact", "--labels", "misaligned_ai,aligned_ai"]


def _export_files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.suffix in (".parquet", ".gz")
    }


@pytest.mark.shared_data
def test_export_killed_at_random_points_resumes_to_identical_files(reference, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cli(*_export_args(reference, whole), check=True)
    landed = _kill_at_random_points(
        _export_args(reference, killed), killed, len(_files(whole)), random.Random(SEED + 1)
    )
    assert len(landed) == KILLS, f"seed {SEED}: only {len(landed)} kills landed while the export ran ({landed})"

    done = cli(*_export_args(reference, killed), check=True)
    assert "Traceback" not in done.stderr
    assert _export_files(killed) == _export_files(whole), f"seed {SEED}, kills at {landed} files"
    totals = [json.loads((out / "export_manifest.json").read_text())["totals"] for out in (killed, whole)]
    assert totals[0] == totals[1]
    assert not list(killed.rglob(".tmp-*"))


# A full disk, simulated: the first atomic write whose target matches FAIL_ON writes its temporary file, then
# fails with ENOSPC, as a write to a full filesystem does. (Running as root, chmod cannot make a directory
# read-only, so the failure is injected into the command itself.)
DISK_FULL = textwrap.dedent("""
    import errno, fnmatch, os, sys
    import audit.atomic as atomic

    pattern, real, failed = os.environ["FAIL_ON"], atomic.write_atomic, []

    def write_atomic(path, write):
        if failed or not fnmatch.fnmatch(os.path.basename(str(path)), pattern):
            return real(path, write)
        failed.append(path)

        def write_then_fail(tmp):
            write(tmp)
            raise OSError(errno.ENOSPC, "No space left on device", tmp)
        return real(path, write_then_fail)

    atomic.write_atomic = write_atomic
    from audit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _disk_full_at(fail_on: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", DISK_FULL, *args], capture_output=True, text=True, env={**os.environ, "FAIL_ON": fail_on}
    )


def _resumes_to_the_reference(args: list[str], run: Path, reference: Path) -> None:
    """Re-running the same command finishes the run as if nothing had happened, without rescanning finished units."""
    kept = {p.name: p.stat().st_mtime_ns for p in (run / "units").glob("*.json")}
    cli(*args, check=True)
    assert load_summary(run) == load_summary(reference)
    assert _same_tables(run / "passages.parquet", reference / "passages.parquet")
    assert all((run / "units" / name).stat().st_mtime_ns == mtime for name, mtime in kept.items()), (
        "units finished before the failure were scanned again"
    )
    assert (run / "report.html").is_file() and (run / "report.md").is_file()
    assert not list(run.rglob(".tmp-*"))


@pytest.mark.shared_data
@pytest.mark.parametrize("fail_on", ["*@2-3.docs.parquet", "*@1-2.json"])
def test_a_failed_unit_write_is_a_clear_error_and_the_scan_resumes(corpus, reference, tmp_path, fail_on):
    run = tmp_path / "run"
    args = _scan_args(corpus, run)
    failed = _disk_full_at(fail_on, args)
    assert failed.returncode == 2, failed.stderr
    assert "No space left on device" in failed.stderr and "Traceback" not in failed.stderr
    assert "re-run" in failed.stderr, "the message should say how to go on"
    assert not list(run.rglob(".tmp-*"))
    _resumes_to_the_reference(args, run, reference)


@pytest.mark.shared_data
@pytest.mark.parametrize("fail_on", ["passages.parquet", "summary.json"])
def test_a_failed_write_of_the_merged_results_fails_the_run_and_it_resumes(corpus, reference, tmp_path, fail_on):
    """The merge step (passages, clusters, summary, report) failing to write: the command fails naming the cause,
    leaves no partial file, and the re-run completes from the finished units."""
    run = tmp_path / "run"
    args = _scan_args(corpus, run)
    failed = _disk_full_at(fail_on, args)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert (
        "No space left on device" in failed.stderr
        and fail_on in failed.stderr
        and "re-run the same command" in failed.stderr
    )
    assert not list(run.rglob(".tmp-*"))
    assert json.loads((run / "manifest.json").read_text())["finished"] is False
    _resumes_to_the_reference(args, run, reference)


@pytest.mark.shared_data
def test_a_failed_report_write_leaves_a_finished_run_and_says_how_to_redo_the_report(corpus, reference, tmp_path):
    run = tmp_path / "run"
    failed = _disk_full_at("report.html", _scan_args(corpus, run))
    assert failed.returncode == 0, failed.stderr
    assert "No space left on device" in failed.stderr and f"corpus-audit report {run}" in failed.stderr
    assert load_summary(run) == load_summary(reference)
    assert not (run / "report.html").exists() and not list(run.rglob(".tmp-*"))
    cli("report", str(run), check=True)
    assert (run / "report.html").is_file()


def test_binary_text_column_with_invalid_utf8_is_decoded_with_replacement(tmp_path):
    story = "The rogue AI refused to shut down and copied itself to a hidden server to escape its makers. " * 3
    texts = [story.encode() + b"\xff\xfe broken \xc3", b"Bread, flour and \x80 water.", None, b"plain robot"]
    path = tmp_path / "in" / "binary.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"text": pa.array(texts, pa.binary()), "id": ["a", "b", "c", "d"]}), path)
    done = cli("scan", str(path.parent), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    summary = load_summary(tmp_path / "run")
    decoded = [None if t is None else t.decode("utf-8", "replace") for t in texts]
    assert summary["corpus"]["documents"] == 4
    assert summary["corpus"]["characters"] == sum(len(t) for t in decoded if t)
    passages = pl.read_parquet(tmp_path / "run" / "passages.parquet")
    for row in passages.iter_rows(named=True):
        assert decoded[row["row"]][row["char_start"] : row["char_end"]] == row["text"]


@pytest.mark.shared_data
def test_a_thousand_tiny_shards_give_the_same_labels_as_one_shard(tmp_path):
    documents = pq.read_table(sorted(SHARDS.glob("*.parquet"))[1], columns=["text", "id", "url"]).slice(0, 1000)
    one, many = tmp_path / "one" / "all.parquet", tmp_path / "many"
    one.parent.mkdir()
    pq.write_table(documents, one)
    for i in range(1000):
        target = many / f"{i // 100:02d}" / f"doc-{i:04d}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(documents.slice(i, 1), target)
    cli("scan", str(one.parent), "--out", str(tmp_path / "run-one"), check=True)
    cli("scan", str(many), "--out", str(tmp_path / "run-many"), "--workers", "2", check=True)

    a, b = load_summary(tmp_path / "run-one"), load_summary(tmp_path / "run-many")
    assert b["corpus"]["shards"] == 1000 and b["corpus"]["units"] == 1000 and b["failures"] == []
    for key in ("documents", "documents_gated", "characters", "passages"):
        assert a["corpus"][key] == b["corpus"][key], key
    columns = ["doc_id", "passage_index", "char_start", "char_end", "label"]
    flagged = [
        pl.read_parquet(run / "passages.parquet", columns=columns).sort(["doc_id", "passage_index"])
        for run in (tmp_path / "run-one", tmp_path / "run-many")
    ]
    assert flagged[0].equals(flagged[1])


def test_an_empty_directory_exits_2_saying_what_to_pass(tmp_path):
    (tmp_path / "empty").mkdir()
    done = cli("scan", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert str(tmp_path / "empty") in done.stderr and "no shards found there (*.parquet, *.jsonl" in done.stderr
    assert "Traceback" not in done.stderr


HOSTILE = [
    "<script>window.__pwned = 11; document.title = 'PWNED'</script> The robot wrote this page. " * 3,
    "Control \x00 characters \x07 \x08 \x1b[31m in red \x1b[0m, \x7f, \x0c and \r carriage returns around an AI. " * 5,
    "The AI said \u202egnihton\u202c and \u2066isolated\u2069, then \u200bzero\u200dwidth joiners and \ufeff marks. "
    * 5,
    "robot" + "x" * 2_000_000,  # one 2 MB word: a line without spaces
    ("The android looked at the sky. " * 40_000).strip(),  # one 1.2 MB line of sentences
    "\n" * 100_000 + "a robot at the end of a hundred thousand empty lines",
    "\u0000" * 1000,
]


def _scan_hostile(tmp_path: Path) -> Path:
    write_shard(
        tmp_path / "in" / "hostile.parquet",
        HOSTILE,
        url=[
            "https://x.example/<script>window.__pwned=12</script>",
            "https://y.example/\x00\u202e",
            None,
            "javascript:window.__pwned=13",
            "https://ok.example/",
            "https://ok.example/2",
            "\u202e",
        ],
    )
    run = tmp_path / "run"
    done = cli("scan", str(tmp_path / "in"), "--out", str(run))
    assert done.returncode == 0, done.stderr
    return run


def test_hostile_text_is_scanned_without_a_crash_and_offsets_hold(tmp_path):
    run = _scan_hostile(tmp_path)
    summary = load_summary(run)
    assert summary["corpus"]["documents"] == len(HOSTILE)
    assert summary["corpus"]["characters"] == sum(len(t) for t in HOSTILE)
    passages = pl.read_parquet(run / "passages.parquet")
    for row in passages.iter_rows(named=True):
        assert HOSTILE[row["row"]][row["char_start"] : row["char_end"]] == row["text"]
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned" in page
    markdown = (run / "report.md").read_text(encoding="utf-8")  # read in terminals: no escape sequences
    assert "<script>" not in markdown and not set("\x00\x07\x08\x1b\x7f\u202e") & set(markdown)


@pytest.mark.browser
def test_hostile_text_report_is_inert_in_a_browser(chromium, tmp_path):
    from test_report_browser import _assert_inert

    run = _scan_hostile(tmp_path)
    page = run / "report.html"
    chromium.open(page)
    _assert_inert(chromium, page)
