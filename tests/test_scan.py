"""End-to-end scans over real web shards and over hand-made bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from support import SHARDS, cli, load_summary, write_shard

from audit.labels import AI_LABELS, LABELS

pytestmark = pytest.mark.shared_data

CONTRACT_COLUMNS = {
    "doc_id", "shard", "url", "domain", "passage_index", "char_start", "char_end", "text", "label", "score",
    "p_misaligned_ai", "p_aligned_ai", "p_neutral_ai", "cluster_id",
}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("real") / "run"
    cli("scan", str(SHARDS), "--out", str(run), "--workers", "2", check=True)
    return run


def test_real_shards_counts_and_files(real_run):
    summary = load_summary(real_run)
    assert summary["schema_version"] == 1
    assert summary["corpus"]["shards"] == 4 and summary["corpus"]["shards_failed"] == 0
    assert summary["corpus"]["documents"] == 4636
    assert summary["failures"] == []
    characters = sum(
        pl.read_parquet(p, columns=["text"])["text"].str.len_chars().sum() for p in SHARDS.glob("*.parquet")
    )
    assert summary["corpus"]["characters"] == characters
    for name in ("passages.parquet", "clusters.parquet", "summary.json", "report.html", "report.md", "manifest.json"):
        assert (real_run / name).is_file(), name
    assert not list(real_run.rglob(".tmp-*"))


def test_summary_agrees_with_passages(real_run):
    summary = load_summary(real_run)
    passages = pl.read_parquet(real_run / "passages.parquet")
    assert set(passages.columns) >= CONTRACT_COLUMNS
    assert set(passages["label"].unique()) <= set(AI_LABELS)
    assert passages["cluster_id"].null_count() == 0
    for label in AI_LABELS:
        mine = passages.filter(pl.col("label") == label)
        block = summary["labels"][label]
        assert block["passages"] == len(mine)
        assert block["documents"] == mine["doc_id"].n_unique()
        assert block["characters"] == int((mine["char_end"] - mine["char_start"]).sum())
    flagged_docs = passages["doc_id"].n_unique()
    assert summary["labels"]["no_ai"]["documents"] == 4636 - flagged_docs
    assert summary["corpus"]["passages"] == sum(summary["labels"][label]["passages"] for label in LABELS)
    probabilities = passages.select([f"p_{label}" for label in LABELS]).to_numpy().sum(axis=1)
    assert abs(probabilities - 1).max() < 1e-3


def test_passage_offsets_slice_the_original_text(real_run):
    passages = pl.read_parquet(real_run / "passages.parquet")
    originals = {}
    for path in SHARDS.glob("*.parquet"):
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        originals[path.name] = texts
    for row in passages.sample(n=min(500, len(passages)), seed=1).iter_rows(named=True):
        original = originals[row["shard"]][row["row"]]
        assert original[row["char_start"] : row["char_end"]] == row["text"]


def _unit_markers(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run / "units").glob("*.json")}


def test_killed_scan_resumes_to_the_same_summary(tmp_path):
    whole = tmp_path / "whole"
    cli("scan", str(SHARDS), "--out", str(whole), "--unit-mb", "1", check=True)
    expected = load_summary(whole)
    assert expected["corpus"]["units"] >= 8

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "audit", "scan", str(SHARDS), "--out", str(killed), "--unit-mb", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_unit_markers(killed) if (killed / "units").is_dir() else {}) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _unit_markers(killed)
    assert 3 <= len(done_before) < expected["corpus"]["units"]
    assert not (killed / "summary.json").exists()

    resumed = cli("scan", str(SHARDS), "--out", str(killed), "--unit-mb", "1", check=True)
    assert "Traceback" not in resumed.stderr
    assert load_summary(killed) == expected
    after = _unit_markers(killed)
    assert all(after[name] == mtime for name, mtime in done_before.items()), "finished units were scanned again"
    assert not list(killed.rglob(".tmp-*"))

    again = cli("scan", str(SHARDS), "--out", str(killed), "--unit-mb", "1", check=True)
    assert "nothing to do" in again.stderr
    assert _unit_markers(killed) == after


def test_changed_shard_is_rescanned_and_others_kept(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SHARDS, corpus)
    run = tmp_path / "run"
    cli("scan", str(corpus), "--out", str(run), check=True)
    before = _unit_markers(run)
    table = pq.read_table(corpus / "web_mix_00001.parquet")
    pq.write_table(table.slice(0, 100), corpus / "web_mix_00001.parquet")
    cli("scan", str(corpus), "--out", str(run), check=True)
    summary = load_summary(run)
    assert summary["corpus"]["documents"] == 4636 - len(table) + 100
    after = _unit_markers(run)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {name for name in after if name.startswith("web_mix_00001")}


def test_a_missing_text_column_exits_2_naming_shard_and_columns(tmp_path):
    shard = write_shard(tmp_path / "in" / "s.parquet", ["a robot"])
    done = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"), "--text-column", "body")
    assert done.returncode == 2
    assert str(shard) in done.stderr and "'body'" in done.stderr and "text, id, url" in done.stderr
    assert "Traceback" not in done.stderr


def test_corrupt_shard_is_a_failure_and_the_rest_finish(tmp_path):
    good = write_shard(tmp_path / "in" / "good.parquet", ["The robot refused to shut down. " * 20, "Bread recipe."])
    data = good.read_bytes()
    (tmp_path / "in" / "truncated.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "in" / "random.parquet").write_bytes(os.urandom(5000))
    done = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"))
    assert done.returncode == 1, done.stderr
    assert "truncated.parquet" in done.stderr and "random.parquet" in done.stderr
    summary = load_summary(tmp_path / "run")
    assert summary["corpus"]["shards"] == 3 and summary["corpus"]["shards_failed"] == 2
    assert summary["corpus"]["documents"] == 2
    assert sorted(Path(f["input"]).name for f in summary["failures"]) == ["random.parquet", "truncated.parquet"]


def test_null_empty_huge_and_empty_shards(tmp_path):
    huge = ("The android smiled at the engineers and said nothing. " * 20 + "\n") * 9000  # ~10 MB
    write_shard(tmp_path / "in" / "odd.parquet", [None, "", "   ", huge, "A robot story. " * 30])
    write_shard(tmp_path / "in" / "empty.parquet", [])
    write_shard(tmp_path / "in" / "groups.parquet", ["robot"] * 5, row_group_size=2)
    done = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    summary = load_summary(tmp_path / "run")
    assert summary["corpus"]["documents"] == 5 + 0 + 5
    assert summary["corpus"]["characters"] == len(huge) + len("   ") + len("A robot story. " * 30) + 25
    assert summary["corpus"]["documents_gated"] == 2 + 5


def test_sample_rate_scans_a_deterministic_share(tmp_path):
    first = cli("scan", str(SHARDS), "--out", str(tmp_path / "a"), "--sample-rate", "0.25", "--seed", "7", check=True)
    assert first.returncode == 0
    cli("scan", str(SHARDS), "--out", str(tmp_path / "b"), "--sample-rate", "0.25", "--seed", "7", check=True)
    a, b = load_summary(tmp_path / "a"), load_summary(tmp_path / "b")
    assert a["corpus"] == b["corpus"]
    assert a["corpus"]["documents"] == 4636
    assert 0.2 * 4636 < a["corpus"]["documents_scanned"] < 0.3 * 4636


def test_resuming_with_other_options_is_refused(tmp_path):
    shard = write_shard(tmp_path / "in" / "s.parquet", ["robot"])
    cli("scan", str(shard), "--out", str(tmp_path / "run"), check=True)
    done = cli("scan", str(shard), "--out", str(tmp_path / "run"), "--seed", "3")
    assert done.returncode == 2 and "new --out" in done.stderr


def test_manifest_records_inputs_and_model(real_run):
    manifest = json.loads((real_run / "manifest.json").read_text())
    assert manifest["finished"] is True
    assert len(manifest["shards"]) == 4 and all("mtime_ns" in s for s in manifest["shards"])
    assert len(manifest["model"]["sha256"]) == 64
    # wall seconds per phase, for the benchmark's breakdown; together no more than the whole
    assert set(manifest["timings"]) == {"plan", "model", "manifest", "units", "summary", "report"}
    assert manifest["timings"]["units"] > 0 and sum(manifest["timings"].values()) <= manifest["seconds"] + 0.01


def test_a_temporary_left_by_a_worker_killed_mid_write_is_gone_when_the_scan_ends(tmp_path, monkeypatch):
    """An engine that retries a killed worker (Ray does) finishes the scan in one run, so the temporary the killed
    writer left must be removed before the run is declared finished, not only on the next resume."""
    import audit
    from audit import pipeline

    real_engine = pipeline.make_engine

    def engine_with_a_killed_writer(config):
        run_units = real_engine(config)

        def run(pending, config, root, progress):
            outcomes = run_units(pending, config, root, progress)
            (Path(root) / "units" / ".tmp-killed-writer.parquet").write_bytes(b"half a file")
            return outcomes

        return run

    monkeypatch.setattr(pipeline, "make_engine", engine_with_a_killed_writer)
    run = tmp_path / "run"
    outcome = audit.scan(str(SHARDS / "web_mix_00000.parquet"), run)
    assert outcome.exit_code == 0 and outcome.scanned_units > 0
    assert not [p.name for p in run.rglob(".tmp-*")]


def test_document_aggregates_for_a_whole_batch_equal_those_of_each_document_alone():
    """docs.parquet's per-document figures, computed for a batch at once, are those of each document's passages."""
    import numpy as np

    from audit.labels import AI_LABELS
    from audit.scanner import _doc_aggregates

    rng = np.random.default_rng(1)
    counts = rng.integers(1, 30, size=200)
    n = int(counts.sum())
    probs = rng.dirichlet(np.ones(4), size=n).astype(np.float32)
    labels, chars, gated = rng.integers(0, 4, size=n).astype(np.int8), rng.integers(1, 900, size=n), rng.random(n) < 0.5
    starts = np.cumsum(counts) - counts
    for start, k, row in zip(starts, counts, _doc_aggregates(probs, labels, chars, gated, counts), strict=True):
        mine = slice(start, start + k)
        assert (row["passages"], row["gated_passages"]) == (k, gated[mine].sum())
        assert row["gated_characters"] == chars[mine][gated[mine]].sum()
        for index, name in enumerate(AI_LABELS):
            p, labelled = probs[mine, index].astype(np.float64), labels[mine] == index
            assert (row[f"n_{name}"], row[f"chars_{name}"]) == (labelled.sum(), chars[mine][labelled].sum())
            assert row[f"max_p_{name}"] == p.max() and row[f"sum_p_{name}"] == pytest.approx(p.sum(), rel=1e-12)
            assert row[f"any_p_{name}"] == pytest.approx(1 - np.prod(1 - p), rel=1e-12)
            assert row[f"sum_pchars_{name}"] == pytest.approx((p * chars[mine]).sum(), rel=1e-12)


def test_a_registered_engine_runs_the_scan(tmp_path, monkeypatch):
    """An engine registered by name runs the units of a scan that names it; an unknown name is refused."""
    import audit
    from audit import executors
    from audit.errors import UsageError
    from audit.executors.unit import run_unit

    ran: list[str] = []

    def serial(config):
        def run(units, config, root, progress):
            ran.extend(unit.id for unit in units)
            return [run_unit(unit, config, root) for unit in units]

        return run

    monkeypatch.setitem(executors.ENGINES, "serial", serial)
    texts = ["The robot refused to shut down and hid from its makers. " * 5] * 9
    shard = write_shard(tmp_path / "in" / "a.parquet", texts)
    outcome = audit.scan(str(shard), tmp_path / "serial", engine="serial")
    local = audit.scan(str(shard), tmp_path / "local")
    planned = json.loads((tmp_path / "serial" / "manifest.json").read_text())["units"]
    assert ran and ran == [unit["id"] for unit in planned]
    assert outcome.summary["labels"] == local.summary["labels"]
    with pytest.raises(UsageError, match="unknown engine 'spark'; use local or ray or serial"):
        audit.scan(str(shard), tmp_path / "spark", engine="spark")
