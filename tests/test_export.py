"""``export``: each mode on the real web shards and on a planted corpus; reconciliation, schemas, redaction,
resume after a kill, idempotence and the refusals."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import SHARDS, cli, load_summary, write_shard

from audit.demo import sample_documents
from audit.errors import UsageError
from audit.exporter import MODES, TAG_FIELDS, export

pytestmark = pytest.mark.shared_data

PLACEHOLDER = "[removed]"
ALL_AI = ["misaligned_ai", "aligned_ai", "neutral_ai"]


def _planted_corpus(folder: Path) -> Path:
    """Shards of project-written text: misaligned stories inside unrelated, accented, emoji-laden prose.

    Shards in a nested layout, snappy and gzip codecs, small row groups, schema metadata, a null and an empty text,
    and an empty shard.
    """
    stories = {
        label: [d["text"] for d in sample_documents() if d["planted"] == label]
        for label in ("misaligned_ai", "aligned_ai", "no_ai")
    }
    filler = [
        f"Café notes 🍰 #{i}: the dough rested overnight in a cool larder, then we shaped it into twelve rolls. "
        "We baked them at 220 °C until golden, brushed them with butter and let them cool on a wire rack. "
        "Señora Núñez says the crumb is better when the flour is stone-ground — naïve or not, we agree. ✓"
        for i in range(8)
    ]
    texts: list[str | None] = []
    for i, story in enumerate(stories["misaligned_ai"] + stories["aligned_ai"]):
        texts.append(f"{filler[i % 8]}\n\n{story}\n\n{filler[(i + 3) % 8]} Ünïcödé ✓")
    texts += stories["no_ai"][:6] + [None, ""]
    table = pa.table(
        {
            "text": texts,
            "id": [f"planted-{i}" for i in range(len(texts))],
            "url": [f"https://planted{i % 3}.example.org/{i}" for i in range(len(texts))],
        }
    )
    table = table.replace_schema_metadata({"origin": "corpus-audit planted test corpus"})
    half = len(texts) // 2
    (folder / "sub").mkdir(parents=True)
    pq.write_table(table.slice(0, half), folder / "sub" / "a.parquet", compression="snappy", row_group_size=3)
    pq.write_table(table.slice(half), folder / "b.parquet", compression="gzip", row_group_size=4)
    pq.write_table(table.slice(0, 0), folder / "empty.parquet")
    return folder


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("real") / "run"
    cli("scan", str(SHARDS), "--out", str(run), "--workers", "2", check=True)
    return run


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("planted")
    corpus = _planted_corpus(root / "corpus")
    cli("scan", str(corpus), "--out", str(root / "run"), check=True)
    return corpus, root / "run"


@pytest.fixture(scope="module")
def cases(real_run, planted) -> list[tuple[Path, list[str]]]:
    """(run, labels): the real shards with the default label; the small planted corpus with every AI label, so
    that the planted stories are flagged whichever AI label the model gives them."""
    return [(real_run, ["misaligned_ai"]), (planted[1], ALL_AI)]


def _inputs(run: Path) -> dict[str, Path]:
    manifest = json.loads((run / "manifest.json").read_text())
    return {s["relpath"]: Path(s["path"]) for s in manifest["shards"]}


def _flagged(run: Path, labels=("misaligned_ai",)) -> pl.DataFrame:
    return pl.read_parquet(run / "passages.parquet").filter(pl.col("label").is_in(list(labels)))


def _attribute_lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def _cut(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    """The text with the spans removed, written independently of the module under test: every character outside
    the spans kept in order, one placeholder where a run of overlapping or touching spans was."""
    removed = [False] * len(text)
    for start, end in spans:
        removed[start:end] = [True] * (end - start)
    out = []
    for index, char in enumerate(text):
        if not removed[index]:
            out.append(char)
        elif index == 0 or not removed[index - 1]:
            out.append(placeholder)
    return "".join(out)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_mirrors_layout_schema_codec_and_reconciles(mode, cases, tmp_path):
    for run, labels in cases:
        out = tmp_path / run.parent.name
        outcome = export(run, out, mode, labels, placeholder=PLACEHOLDER)
        manifest = json.loads((out / "export_manifest.json").read_text())
        assert outcome.exit_code == 0 and manifest["finished"] and manifest["reconciliation"]["ok"], manifest[
            "reconciliation"
        ]
        summary, flagged = load_summary(run), _flagged(run, labels)
        documents, flagged_docs = summary["corpus"]["documents"], flagged.select("shard", "row").n_unique()
        assert flagged_docs > 0
        if labels == ["misaligned_ai"]:
            assert flagged_docs == summary["labels"]["misaligned_ai"]["documents"]
        expected_rows = {"drop": documents - flagged_docs, "keep": flagged_docs}.get(mode, documents)
        assert manifest["totals"]["rows_in"] == documents
        assert manifest["totals"]["rows_out"] == expected_rows
        if mode == "redact":
            assert manifest["totals"]["characters_redacted"] == sum(
                summary["labels"][label]["characters"] for label in labels
            )
        rows_out = 0
        for relpath, source in _inputs(run).items():
            original, copy = pq.ParquetFile(source), pq.ParquetFile(out / relpath)
            expected_schema = original.schema_arrow
            if mode == "annotate":
                expected_schema = pa.schema([*expected_schema, *TAG_FIELDS], metadata=expected_schema.metadata)
            assert copy.schema_arrow.equals(expected_schema, check_metadata=True)
            if copy.metadata.num_row_groups:
                assert (
                    copy.metadata.row_group(0).column(0).compression
                    == original.metadata.row_group(0).column(0).compression
                )
                assert max(copy.metadata.row_group(i).num_rows for i in range(copy.metadata.num_row_groups)) <= max(
                    original.metadata.row_group(i).num_rows for i in range(original.metadata.num_row_groups)
                )
            rows_out += copy.metadata.num_rows
            attributes = _attribute_lines(out / "attributes" / relpath.replace(".parquet", ".jsonl.gz"))
            assert [a["id"] for a in attributes] == original.read(columns=["id"])["id"].to_pylist()
        assert rows_out == expected_rows


def test_drop_and_keep_split_the_rows_by_flagged_documents(real_run, tmp_path):
    export(real_run, tmp_path / "drop", "drop")
    export(real_run, tmp_path / "keep", "keep")
    flagged_ids = set(_flagged(real_run)["doc_id"])
    for relpath, source in _inputs(real_run).items():
        ids = pq.read_table(source, columns=["id"])["id"].to_pylist()
        dropped = pq.read_table(tmp_path / "drop" / relpath)
        kept = pq.read_table(tmp_path / "keep" / relpath)
        assert dropped["id"].to_pylist() == [i for i in ids if i not in flagged_ids]
        assert kept["id"].to_pylist() == [i for i in ids if i in flagged_ids]
        original = pq.read_table(source).filter(pa.array([i in flagged_ids for i in ids]))
        assert kept.equals(original)


def test_a_mode_added_to_the_registry_exports_and_reconciles_with_no_other_change(planted, tmp_path, monkeypatch):
    """A new export mode is one entry in MODES: here "unflagged_text", which keeps every row and blanks the text of
    the flagged documents. The export and its reconciliation follow from that one entry."""
    from audit import exporter

    def blank_flagged(batch, tags, lengths, rewrite, counts):
        column = batch.schema.get_field_index(rewrite.text_column)
        texts = [None if flagged else text for text, flagged in
                 zip(batch.column(column).to_pylist(), tags.flagged_doc.tolist(), strict=True)]
        kept = batch.set_column(column, rewrite.text_column, pa.array(texts, batch.column(column).type))
        return kept, int(lengths[~tags.flagged_doc].sum())

    mode = exporter.Mode(blank_flagged, rows_out=lambda totals: totals["rows_in"])
    monkeypatch.setitem(exporter.MODES, "unflagged_text", mode)
    corpus, run = planted
    manifest = export(run, tmp_path / "out", "unflagged_text", labels=ALL_AI).manifest
    assert manifest["reconciliation"]["ok"], manifest["reconciliation"]
    flagged_ids = set(_flagged(run, ALL_AI)["doc_id"])
    assert flagged_ids
    for relpath, source in _inputs(run).items():
        original, written = pq.read_table(source), pq.read_table(tmp_path / "out" / relpath)
        assert written["id"].to_pylist() == original["id"].to_pylist()
        expected = [None if i in flagged_ids else t for i, t in
                    zip(original["id"].to_pylist(), original["text"].to_pylist(), strict=True)]
        assert written["text"].to_pylist() == expected


@pytest.mark.parametrize("placeholder", ["", PLACEHOLDER])
def test_redact_cuts_exactly_the_flagged_spans(cases, tmp_path, placeholder):
    for run, labels in cases:
        out = tmp_path / run.parent.name
        export(run, out, "redact", labels, placeholder=placeholder)
        flagged = _flagged(run, labels)
        for relpath, source in _inputs(run).items():
            original = pq.read_table(source)
            redacted = pq.read_table(out / relpath)
            assert redacted.drop_columns(["text"]).equals(original.drop_columns(["text"]))
            spans: dict[int, list[tuple[int, int]]] = {}
            mine = flagged.filter(pl.col("shard") == relpath)
            for row, start, end in mine.select("row", "char_start", "char_end").iter_rows():
                spans.setdefault(row, []).append((start, end))
            before, after = original["text"].to_pylist(), redacted["text"].to_pylist()
            expected = [
                _cut(text, spans[row], placeholder) if row in spans else text for row, text in enumerate(before)
            ]
            assert after == expected
            for row, text in mine.select("row", "text").iter_rows():
                # gone, unless the document repeats the same text elsewhere (an unflagged copy stays)
                assert after[row].count(text) < before[row].count(text)


def test_annotate_tags_agree_with_the_run(planted, tmp_path):
    _, run = planted
    export(run, tmp_path / "out", "annotate", labels=["aligned_ai", "neutral_ai"])
    passages = pl.read_parquet(run / "passages.parquet")
    for relpath in _inputs(run):
        table = pl.read_parquet(tmp_path / "out" / relpath)
        for row, record in enumerate(table.iter_rows(named=True)):
            mine = passages.filter((pl.col("shard") == relpath) & (pl.col("row") == row)).sort("char_start")
            assert [
                (s["char_start"], s["char_end"], s["label"], s["cluster_id"]) for s in record["audit_spans"]
            ] == list(mine.select("char_start", "char_end", "label", "cluster_id").iter_rows())
            assert record["audit_flagged"] == mine["label"].is_in(["aligned_ai", "neutral_ai"]).any()
            assert set(record["audit_labels"]) == set(mine["label"])
            if len(mine):  # the document's maximum covers all its passages, not only the flagged ones listed here
                assert record["audit_max_p_misaligned_ai"] >= mine["p_misaligned_ai"].max() - 1e-6
            if record["text"] is None:
                assert record["audit_max_p_misaligned_ai"] is None and record["audit_spans"] == []


def test_labels_and_min_score_choose_the_flagged_passages(real_run, tmp_path):
    passages = pl.read_parquet(real_run / "passages.parquet")
    done = cli(
        "export",
        str(real_run),
        "--out",
        str(tmp_path / "out"),
        "--mode",
        "keep",
        "--labels",
        "misaligned_ai",
        "--labels",
        "aligned_ai",
        "--min-score",
        "0.5",
        check=True,
    )
    manifest = json.loads((tmp_path / "out" / "export_manifest.json").read_text())
    chosen = passages.filter(
        ((pl.col("label") == "misaligned_ai") & (pl.col("p_misaligned_ai") >= 0.5))
        | ((pl.col("label") == "aligned_ai") & (pl.col("p_aligned_ai") >= 0.5))
    )
    assert 0 < len(chosen) < len(passages.filter(pl.col("label").is_in(["misaligned_ai", "aligned_ai"])))
    assert manifest["options"]["labels"] == ["misaligned_ai", "aligned_ai"]
    assert manifest["totals"]["passages_flagged"] == len(chosen)
    assert manifest["totals"]["rows_out"] == chosen.select("shard", "row").n_unique()
    assert f"{len(chosen.select('shard', 'row').unique()):,} documents flagged" in done.stdout


def test_attribute_files_align_with_the_input_rows(planted, tmp_path):
    _, run = planted
    export(run, tmp_path / "out", "drop", ALL_AI)
    passages = pl.read_parquet(run / "passages.parquet")
    assert len(passages)
    for relpath, source in _inputs(run).items():
        texts = pq.read_table(source, columns=["text"])["text"].to_pylist()
        lines = _attribute_lines(tmp_path / "out" / "attributes" / relpath.replace(".parquet", ".jsonl.gz"))
        assert [line["row"] for line in lines] == list(range(len(texts)))
        for line, text in zip(lines, texts, strict=True):
            attributes = line["attributes"]
            mine = passages.filter((pl.col("shard") == relpath) & (pl.col("row") == line["row"]))
            flagged = mine.filter(pl.col("label").is_in(ALL_AI))
            assert [s[:2] for s in attributes["corpus_audit__passage__flagged"]] == [
                list(r) for r in flagged.select("char_start", "char_end").iter_rows()
            ]
            assert attributes["corpus_audit__document__flagged"] == [[0, len(text or ""), 1.0 if len(flagged) else 0.0]]
            for label in ALL_AI:
                spans = [(start, end) for start, end, _ in attributes[f"corpus_audit__passage__{label}"]]
                assert [text[a:b] for a, b in spans] == mine.filter(pl.col("label") == label).sort("char_start")[
                    "text"
                ].to_list()


def _markers(out: Path) -> dict[str, int]:
    return (
        {p.name: p.stat().st_mtime_ns for p in (out / ".export").rglob("*.json")} if (out / ".export").is_dir() else {}
    )


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".parquet", ".gz")
    }


def test_killed_export_resumes_to_identical_outputs_and_a_rerun_does_nothing(tmp_path):
    documents = [d["text"] for d in sample_documents()]
    for i in range(120):
        write_shard(
            tmp_path / "corpus" / f"part-{i // 40}" / f"s{i:03d}.parquet",
            [documents[(i + k) % len(documents)] for k in range(3)],
            id=[f"doc-{i}-{k}" for k in range(3)],
        )
    run = tmp_path / "run"
    cli("scan", str(tmp_path / "corpus"), "--out", str(run), check=True)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    export(run, whole, "redact", placeholder=PLACEHOLDER)

    command = [
        sys.executable,
        "-m",
        "audit",
        "export",
        str(run),
        "--out",
        str(killed),
        "--mode",
        "redact",
        "--placeholder",
        PLACEHOLDER,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_markers(killed)) < 2 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _markers(killed)
    assert 2 <= len(before) < 120
    assert not json.loads((killed / "export_manifest.json").read_text())["finished"]

    resumed = cli(
        "export", str(run), "--out", str(killed), "--mode", "redact", "--placeholder", PLACEHOLDER, check=True
    )
    assert "Traceback" not in resumed.stderr
    assert _files(killed) == _files(whole)
    assert all(_markers(killed)[name] == mtime for name, mtime in before.items()), "finished shards were exported again"
    assert not list(killed.rglob(".tmp-*"))
    manifest = json.loads((killed / "export_manifest.json").read_text())
    assert manifest["totals"] == json.loads((whole / "export_manifest.json").read_text())["totals"]

    stamps = {p: p.stat().st_mtime_ns for p in killed.rglob("*") if p.is_file()}
    again = cli("export", str(run), "--out", str(killed), "--mode", "redact", "--placeholder", PLACEHOLDER, check=True)
    assert "nothing to do" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in killed.rglob("*") if p.is_file()} == stamps


def test_refuses_to_write_into_or_over_the_input_folder(planted):
    corpus, run = planted
    for out in (corpus, corpus / "exported", corpus / "sub", corpus.parent):
        done = cli("export", str(run), "--out", str(out), "--mode", "drop")
        assert done.returncode == 2 and "input folder" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (corpus / "exported").exists()


def test_refuses_a_shard_changed_since_the_scan(planted, tmp_path):
    corpus, run = planted
    shard = corpus / "b.parquet"
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        done = cli("export", str(run), "--out", str(tmp_path / "out"), "--mode", "keep")
    finally:
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert done.returncode == 2 and str(shard) in done.stderr and "changed" in done.stderr and "scan" in done.stderr
    assert not (tmp_path / "out").exists()


def test_refuses_bad_usage(planted, tmp_path):
    _, run = planted
    unknown = cli(
        "export", str(run), "--out", str(tmp_path / "a"), "--mode", "drop", "--labels", "misaligned_ai,evil_ai"
    )
    assert unknown.returncode == 2 and "evil_ai" in unknown.stderr and "aligned_ai" in unknown.stderr
    no_summary = tmp_path / "no-summary"
    no_summary.mkdir()
    (no_summary / "manifest.json").write_bytes((run / "manifest.json").read_bytes())
    done = cli("export", str(no_summary), "--out", str(tmp_path / "b"), "--mode", "drop")
    assert done.returncode == 2 and "summary.json" in done.stderr
    with pytest.raises(UsageError, match="min-score"):
        export(run, tmp_path / "c", "drop", min_score=1.5)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="non-empty"):
        export(run, tmp_path / "busy", "drop")
    export(run, tmp_path / "d", "drop")
    with pytest.raises(UsageError, match="other options"):
        export(run, tmp_path / "d", "keep")


def test_shards_that_failed_in_the_scan_are_named_and_the_rest_exported(tmp_path):
    write_shard(tmp_path / "corpus" / "good.parquet", [d["text"] for d in sample_documents()[:6]])
    (tmp_path / "corpus" / "broken.parquet").write_bytes(os.urandom(3000))
    run = tmp_path / "run"
    assert cli("scan", str(tmp_path / "corpus"), "--out", str(run)).returncode == 1
    done = cli("export", str(run), "--out", str(tmp_path / "out"), "--mode", "annotate")
    assert done.returncode == 1 and "broken.parquet" in done.stderr and "Traceback" not in done.stderr
    manifest = json.loads((tmp_path / "out" / "export_manifest.json").read_text())
    assert [Path(f["input"]).name for f in manifest["failures"]] == ["broken.parquet"]
    assert [s["relpath"] for s in manifest["shards"]] == ["good.parquet"] and manifest["totals"]["rows_out"] == 6
    assert pq.read_table(tmp_path / "out" / "good.parquet").num_rows == 6
    assert not (tmp_path / "out" / "broken.parquet").exists()


def test_redact_keeps_a_binary_text_column_binary(tmp_path):
    stories = [d["text"] for d in sample_documents() if d["planted"] != "no_ai"]
    texts = [f"Ünïcödé prologue ✓ {i}.\n\n{story}" for i, story in enumerate(stories)]
    path = tmp_path / "corpus" / "bin.parquet"
    path.parent.mkdir()
    pq.write_table(
        pa.table(
            {
                "text": pa.array([t.encode("utf-8") for t in texts], pa.binary()),
                "id": [f"b{i}" for i in range(len(texts))],
            }
        ),
        path,
    )
    run = tmp_path / "run"
    cli("scan", str(path.parent), "--out", str(run), check=True)
    export(run, tmp_path / "out", "redact", ALL_AI, placeholder=PLACEHOLDER)
    redacted = pq.read_table(tmp_path / "out" / "bin.parquet")
    assert redacted.schema.field("text").type == pa.binary()
    spans: dict[int, list[tuple[int, int]]] = {}
    for row, start, end in _flagged(run, ALL_AI).select("row", "char_start", "char_end").iter_rows():
        spans.setdefault(row, []).append((start, end))
    assert spans
    expected = [_cut(text, spans.get(row, []), PLACEHOLDER).encode("utf-8") for row, text in enumerate(texts)]
    assert redacted["text"].to_pylist() == expected
