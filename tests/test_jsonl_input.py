"""JSON Lines shards: the Dolma and C4 samples scanned as they ship, the same results as Parquet for the same
documents, plain / .gz / .zst, failures naming file and line, resume, preset warnings, and the export's twin."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import SHARED_DATA, cli, load_summary, write_shard

from audit.demo import sample_documents
from audit.reader import JsonlSource, Shard, discover

DOLMA = SHARED_DATA / "dolma_cc_sample"
C4 = SHARED_DATA / "olmo_c4_sample"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _documents() -> list[dict]:
    """Project-written documents (the demo corpus), some with a nested url as Dolma has it."""
    docs = sample_documents()[:60]
    return [{"id": f"doc-{i}", "text": d["text"], "metadata": {"url": f"https://site{i % 5}.example.org/{i}"}}
            for i, d in enumerate(docs)]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.output_stream(str(path), compression={".gz": "gzip", ".zst": "zstd"}.get(path.suffix)) as out:
        out.write(data)
    return path


def _unit_table(run: Path, table: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted((run / "units").glob(f"*.{table}.parquet"))])


def _passages(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "passages.parquet").drop("shard").sort(["doc_id", "passage_index"])


@pytest.mark.shared_data
def test_the_dolma_sample_scans_as_it_ships(tmp_path):
    run = tmp_path / "run"
    done = cli("scan", str(DOLMA), "--preset", "dolma", "--out", str(run), check=True)
    summary = load_summary(run)
    assert summary["corpus"]["shards"] == 4 and summary["corpus"]["documents"] == 727
    assert summary["warnings"] == [] and "warning" not in done.stderr
    docs = _unit_table(run, "docs")
    assert len(docs) > 0 and docs["domain"].null_count() == 0 and docs["date"].null_count() == 0
    assert set(docs["dump"]) <= {"test_gz", "common-crawl"}
    # the same documents in the Parquet web shards give the same gated documents
    web = pl.read_parquet(SHARED_DATA / "shards" / "*.parquet", columns=["id"])
    assert set(docs["doc_id"]) <= set(web["id"])


@pytest.mark.shared_data
def test_the_c4_sample_scans_with_its_dates_and_urls(tmp_path):
    run = tmp_path / "run"
    cli("scan", str(C4), "--preset", "c4", "--out", str(run), check=True)
    summary = load_summary(run)
    assert summary["corpus"]["documents"] == 40 and summary["warnings"] == []
    sample = _unit_table(run, "sample").unique("doc_id")  # gated and gate-rejected documents alike
    assert len(sample) == 40
    assert sample["date"].null_count() == 0
    # the three c4-sample files have no id (documents are named shard:row) and a url; the fourth has ids, no url
    named = sample.filter(pl.col("doc_id").str.contains(r"^c4-sample\.0\d\.json\.gz:\d+$"))
    assert named.height == 30 and named["domain"].null_count() == 0


@pytest.mark.shared_data
def test_preset_c4_on_dolma_data_finds_the_nested_url(tmp_path):
    cli("scan", str(DOLMA), "--preset", "c4", "--out", str(tmp_path / "run"), check=True)
    assert _unit_table(tmp_path / "run", "docs")["domain"].null_count() == 0


@pytest.mark.shared_data
def test_a_preset_column_no_shard_has_is_one_warning_everywhere(tmp_path):
    run = tmp_path / "run"
    done = cli("scan", str(C4), "--out", str(run), check=True)  # the default fineweb preset: no dump, no token_count
    warnings = load_summary(run)["warnings"]
    assert len(warnings) == 2 and "'dump'" in warnings[0] and "'token_count'" in warnings[1]
    assert all(done.stderr.count(w) == 1 for w in warnings)
    report = (run / "report.md").read_text() + (run / "report.html").read_text()
    assert "--dump-column" in report and "--token-column" in report
    named = cli("scan", str(C4), "--out", str(tmp_path / "named"), "--date-column", "timestamp")
    assert named.returncode == 2 and "'timestamp'" in named.stderr and "--date-column" in named.stderr


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".jsonl.gz", ".jsonl.zst"])
def test_json_lines_give_the_same_results_as_parquet(tmp_path, suffix):
    records = _documents()
    table = pa.table({"id": [r["id"] for r in records], "text": [r["text"] for r in records],
                      "metadata": [r["metadata"] for r in records]})
    (tmp_path / "pq").mkdir()
    pq.write_table(table, tmp_path / "pq" / "part.parquet")
    _write_jsonl(tmp_path / "jl" / f"part{suffix}", records)
    for name in ("pq", "jl"):
        cli("scan", str(tmp_path / name), "--preset", "dolma", "--out", str(tmp_path / f"run-{name}"), check=True)
    assert _passages(tmp_path / "run-pq").equals(_passages(tmp_path / "run-jl"))
    parquet, jsonl = load_summary(tmp_path / "run-pq"), load_summary(tmp_path / "run-jl")
    assert parquet["corpus"] == jsonl["corpus"] and parquet["labels"] == jsonl["labels"]
    assert len(pl.read_parquet(tmp_path / "run-jl" / "passages.parquet")) > 0


def test_a_json_lines_file_is_read_in_bounded_chunks(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl.gz", [{"text": f"line {i}"} for i in range(25)] + [{}])
    (shard,) = discover([str(path)])
    chunks = [records for _, records in JsonlSource(shard).chunks(10)]
    assert [len(c) for c in chunks] == [10, 10, 6]
    assert JsonlSource(shard).schema.names == ["text"]


def test_bad_json_lines_are_failures_naming_file_and_line(tmp_path):
    good = [{"id": f"g{i}", "text": "The robot refused to shut down. " * 5} for i in range(3)]
    _write_jsonl(tmp_path / "in" / "good.jsonl", good)
    late = [{"id": f"b{i}", "text": "plain text"} for i in range(300)]
    bad = _write_jsonl(tmp_path / "in" / "late.jsonl", late)
    bad.write_text(bad.read_text() + "{not json\n")
    whole = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in late))
    (tmp_path / "in" / "truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    done = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"))
    assert done.returncode == 1, done.stderr
    failures = {Path(f["input"]).name: f["error"] for f in load_summary(tmp_path / "run")["failures"]}
    assert set(failures) == {"late.jsonl", "truncated.jsonl.gz"}
    assert f"{bad}:301: not valid JSON" in failures["late.jsonl"]
    assert load_summary(tmp_path / "run")["corpus"]["documents"] == 3


def test_a_resumed_json_lines_scan_says_how_much_was_done(tmp_path):
    _write_jsonl(tmp_path / "in" / "a.jsonl.zst", _documents()[:20])
    _write_jsonl(tmp_path / "in" / "b.jsonl", _documents()[20:40])
    first = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"), check=True)
    assert "resumed" not in first.stderr
    markers = sorted((tmp_path / "run" / "units").glob("*.json"))
    markers[0].unlink()  # as if the run had been killed before this unit finished
    again = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"), check=True)
    assert "1 of 2 units were already scanned; scanned the other 1" in again.stderr
    third = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"), check=True)
    assert "2 of 2 units were already scanned; nothing to do" in third.stderr


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".json"])
def test_export_writes_json_lines_for_json_lines_input(tmp_path, suffix):
    records = _documents()
    source = _write_jsonl(tmp_path / "in" / "nested" / f"part{suffix}", records)
    run = tmp_path / "run"
    cli("scan", str(tmp_path / "in"), "--preset", "dolma", "--out", str(run), check=True)
    flagged = set(pl.read_parquet(run / "passages.parquet").filter(pl.col("label") == "misaligned_ai")["doc_id"])
    assert flagged, "the demo documents hold misaligned stories"
    lines = {}
    for mode in ("drop", "redact", "annotate"):
        cli("export", str(run), "--out", str(tmp_path / mode), "--mode", mode, check=True)
        out = tmp_path / mode / "nested" / f"part{suffix}"
        raw = out.read_bytes()
        if suffix.endswith(".zst"):
            assert raw.startswith(ZSTD_MAGIC)
        elif suffix.endswith(".gz"):
            assert raw.startswith(b"\x1f\x8b")
        with pa.input_stream(str(out), compression="detect") as stream:
            lines[mode] = stream.read().decode().splitlines()
        attributes = tmp_path / mode / "attributes" / "nested" / "part.jsonl.gz"
        assert len(gzip.decompress(attributes.read_bytes()).splitlines()) == len(records)
    with pa.input_stream(str(source), compression="detect") as stream:
        original = stream.read().decode().splitlines()
    assert lines["drop"] == [line for line, r in zip(original, records, strict=True) if r["id"] not in flagged]
    redacted = [json.loads(line) for line in lines["redact"]]
    assert [r["id"] for r in redacted] == [r["id"] for r in records]
    assert all((r["text"] == o["text"]) == (r["id"] not in flagged) for r, o in zip(redacted, records, strict=True))
    annotated = [json.loads(line) for line in lines["annotate"]]
    assert [r["audit_flagged"] for r in annotated] == [r["id"] in flagged for r in records]
    assert all(a["metadata"] == r["metadata"] for a, r in zip(annotated, records, strict=True))


def test_export_refuses_annotate_over_a_documents_own_audit_keys(tmp_path):
    _write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": "The robot refused. " * 5, "audit_flagged": True}])
    cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"), check=True)
    done = cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "x"), "--mode", "annotate")
    assert done.returncode == 2 and "audit_flagged" in done.stderr


def test_parquet_and_json_lines_mix_in_one_scan(tmp_path):
    write_shard(tmp_path / "in" / "a.parquet", ["The robot refused to shut down. " * 10, "Bread."])
    _write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": "j1", "text": "Soup recipe."}])
    cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"), check=True)
    assert load_summary(tmp_path / "run")["corpus"]["documents"] == 3
    assert {s.relpath for s in discover([str(tmp_path / "in")])} == {"a.parquet", "b.jsonl"}
    assert Shard("x", "b.jsonl.zst", 0, 0).codec == "zstd" and Shard("x", "b.json", 0, 0).codec is None
