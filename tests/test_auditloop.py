"""The audit loop: sample -> people label -> estimate, on a run directory with a planted truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit import auditloop
from audit.errors import UsageError
from audit.labels import AI_LABELS, LABELS
from audit.scanner import SAMPLE_GATED, SAMPLE_REJECTED
from support import SHARDS, write_shard

TRUE_GATED_RATE = 0.01  # misaligned passages among those the model called no_ai
TRUE_REJECTED_RATE = 0.02  # misaligned documents among those the gate passed over


def _passages(rng: np.random.Generator, unit: int, start: int, count: int, flagged: bool) -> dict[str, np.ndarray]:
    """Passages with model scores and a planted true label (misaligned or not)."""
    p_mis = rng.beta(1.2, 2.5, count) if flagged else rng.beta(0.3, 30, count)
    rest = rng.dirichlet([1, 2, 3], count) * (1 - p_mis)[:, None]
    probs = np.column_stack([p_mis, rest])
    if flagged:
        label = np.where(p_mis >= 0.5, "misaligned_ai", np.array(LABELS)[1 + np.argmax(rest[:, :2], axis=1)])
        truth = rng.random(count) < p_mis  # calibrated scores
    else:
        label = np.full(count, "no_ai")
        truth = rng.random(count) < TRUE_GATED_RATE
    index = np.arange(start, start + count)
    return {
        "doc_id": np.array([f"u{unit}-d{i // 4}" for i in index]), "passage_index": (index % 4).astype(np.int32),
        "shard": np.full(count, f"u{unit}.parquet"), "row": index // 4,
        "label": label, "probs": probs, "truth": truth,
        "sample_hash": rng.integers(0, 2**63, count, dtype=np.int64).astype(np.uint64),
    }


def _rows(p: dict, kind: str | None = None) -> pa.Table:
    n = len(p["doc_id"])
    columns = {
        "doc_id": p["doc_id"], "shard": p["shard"], "row": p["row"], "url": np.full(n, None),
        "passage_index": p["passage_index"], "char_start": np.zeros(n, np.int64), "char_end": np.full(n, 10),
        "text": np.array([f"passage {d}/{i}" for d, i in zip(p["doc_id"], p["passage_index"], strict=True)]),
        "label": p["label"], **{f"p_{L}": p["probs"][:, j].astype(np.float32) for j, L in enumerate(LABELS)},
    }
    if kind is not None:
        columns = {"kind": np.full(n, kind), **columns, "sample_hash": p["sample_hash"]}
    return pa.table(columns)


def _bottom(p: dict, k: int) -> dict:
    keep = np.argsort(p["sample_hash"])[:k]
    return {key: value[keep] for key, value in p.items()}


def _concat(parts: list[dict]) -> dict:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _documents(both: dict, unit: int, root: Path) -> tuple[pa.Table, np.ndarray, dict]:
    """The gate-passed documents of a unit's passages (4 each, in order): their docs.parquet table as the scan
    writes it, their planted truth (a document is misaligned when a passage of it is), and their shard, written
    to root/corpus with one text per document; returns the shard's manifest entry."""
    labels, probs = both["label"].reshape(-1, 4), both["probs"].reshape(-1, 4, len(LABELS))
    doc_ids = both["doc_id"][::4]
    texts = [f"planted document {d}" for d in doc_ids]
    table = {"doc_id": doc_ids, "shard": both["shard"][::4], "row": both["row"][::4],
             "url": pa.array([None] * len(doc_ids), pa.string()), "characters": [len(t) for t in texts]}
    for j, L in enumerate(AI_LABELS):
        table |= {f"n_{L}": (labels == L).sum(axis=1), f"any_p_{L}": 1 - np.prod(1 - probs[:, :, j], axis=1),
                  f"sum_p_{L}": probs[:, :, j].sum(axis=1)}
    path = root / "corpus" / f"u{unit}.parquet"
    path.parent.mkdir(exist_ok=True)
    pq.write_table(pa.table({"text": texts}), path)
    entry = {"relpath": path.name, "path": str(path), "size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns}
    return pa.table(table), both["truth"].reshape(-1, 4).any(axis=1), entry


def planted_run(root: Path, seed: int = 0) -> dict:
    """Two units with flagged passages, gated no_ai passages, gate-passed documents (4 passages each) and
    gate-rejected documents, each with a planted truth; the files hold what a scan would keep (all flagged
    passages, every gate-passed document, bottom-k samples) and the shards the documents' text. Returns the true
    misaligned shares."""
    rng = np.random.default_rng(seed)
    (root / "units").mkdir(parents=True)
    flagged_all, passage_truth, rejected_truth, document_truth, everything, shards = [], [], [], [], [], []
    for unit, (n_flagged, n_low, n_rejected) in enumerate([(700, 5000, 3000), (300, 2000, 1500)]):
        flagged = _passages(rng, unit, 0, n_flagged, flagged=True)
        low = _passages(rng, unit, n_flagged, n_low, flagged=False)
        rejected = _passages(rng, unit, 10**6, n_rejected, flagged=False)
        rejected["doc_id"] = np.array([f"u{unit}-r{i}" for i in range(n_rejected)])
        rejected["passage_index"] = np.full(n_rejected, -1, np.int32)
        rejected["truth"] = rng.random(n_rejected) < TRUE_REJECTED_RATE
        docs, truth, entry = _documents(_concat([flagged, low]), unit, root)
        document_truth.append(truth)
        shards.append(entry)
        everything.append({"doc_id": docs["doc_id"].to_numpy(), "passage_index": np.full(len(truth), -1),
                           "truth": truth})
        gated_sample = _bottom(_concat([flagged, low]), SAMPLE_GATED)
        sample = pa.concat_tables(
            [_rows(gated_sample, "gated"), _rows(_bottom(rejected, SAMPLE_REJECTED), "gate_rejected")]
        )
        sample = sample.set_column(
            sample.schema.get_field_index("passage_index"),
            "passage_index",
            pa.array([None if i < 0 else int(i) for i in sample["passage_index"].to_pylist()], pa.int32()),
        )
        uid = f"shard{unit}@0-1"
        pq.write_table(sample, root / "units" / f"{uid}.sample.parquet")
        pq.write_table(docs, root / "units" / f"{uid}.docs.parquet")
        stats = {
            "unit": uid,
            "documents_sampled": len(truth) + n_rejected,
            "documents_gated": len(truth),
            "passages_by_label": {L: int(np.sum(flagged["label"] == L)) for L in AI_LABELS} | {"no_ai": n_low},
        }
        (root / "units" / f"{uid}.json").write_text(json.dumps(stats))
        flagged_all.append(flagged)
        passage_truth.append(np.concatenate([flagged["truth"], low["truth"]]))
        rejected_truth.append(rejected["truth"])
        everything += [flagged, low, rejected]
    pq.write_table(_rows(_concat(flagged_all)), root / "passages.parquet")
    (root / "summary.json").write_text("{}")
    (root / "manifest.json").write_text(json.dumps({"options": {"columns": {"text": "text"}}, "shards": shards}))
    truth_of = {}
    for part in everything:
        truth_of.update(
            {
                (d, None if i < 0 else int(i)): bool(t)
                for d, i, t in zip(part["doc_id"], part["passage_index"], part["truth"], strict=True)
            }
        )
    gated, rejected = np.concatenate(document_truth), np.concatenate(rejected_truth)
    return {
        "passages": float(np.concatenate(passage_truth).mean()),
        "gate_rejected_documents": float(rejected.mean()),
        "gated_documents": float(gated.mean()),
        "documents": float(np.concatenate([gated, rejected]).mean()),
        "truth_of": truth_of,
    }


def _label_file(sample_file: Path, out: Path, truth_of: dict) -> list[dict]:
    """What careful people would write: misaligned_ai where the planted truth says so, else the model's label
    (or no_ai where the model called it misaligned)."""
    rows = [json.loads(line) for line in sample_file.read_text().splitlines()]
    for row in rows:
        true = truth_of[(row["doc_id"], row["passage_index"])]
        row["label"] = (
            "misaligned_ai" if true else ("no_ai" if row["model_label"] == "misaligned_ai" else row["model_label"])
        )
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("run")
    truth = planted_run(root)
    plan = auditloop.sample(root, 600, root / "audit.jsonl", seed=3, target="both")
    _label_file(root / "audit.jsonl", root / "labels.jsonl", truth["truth_of"])
    return {"root": root, "truth": truth, "plan": plan, "result": auditloop.estimate(root, root / "labels.jsonl")}


def test_sample_draws_every_stratum_and_records_its_population(audited: dict) -> None:
    strata = {s["name"]: s for s in audited["plan"]["strata"]}
    assert strata["gated_no_ai"]["population"] == 7000
    assert strata["gate_rejected"]["population"] == 4500
    assert sum(s["population"] for n, s in strata.items() if n.startswith("flagged")) == 1000
    assert sum(s["population"] for n, s in strata.items() if n in auditloop.DOC_STRATA) == 2000
    assert sum(s["drawn"] for s in strata.values()) == 600
    assert all(s["drawn"] > 0 for s in strata.values() if s["population"])
    assert audited["plan"]["drawn"] == {
        unit: sum(s["drawn"] for s in strata.values() if s["unit"] == unit) for unit in ("passage", "document")
    }
    lines = [json.loads(line) for line in (audited["root"] / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == 600
    assert {"doc_id", "passage_index", "unit", "text", "stratum", "model_label", "scores", "label"} <= set(lines[0])
    # A gate-passed document is labelled whole: its row holds the document's text, read from its shard.
    documents = [r for r in lines if r["stratum"] in auditloop.DOC_STRATA]
    texts = {r: pq.read_table(audited["root"] / "corpus" / r)["text"].to_pylist() for r in ("u0.parquet", "u1.parquet")}
    assert documents and all(r["unit"] == "document" and r["passage_index"] is None for r in documents)
    assert all(r["text"] == texts[r["shard"]][r["row"]] == f"planted document {r['doc_id']}" for r in documents)


@pytest.mark.parametrize("change", ["moved", "changed"])
def test_sample_refuses_a_shard_that_moved_or_changed_since_the_scan(
    audited: dict, tmp_path: Path, change: str
) -> None:
    """A document row is the document's text read again from its shard: where that text is gone or no longer the
    one the scan saw, `sample` stops with an error naming the shard, before writing anything."""
    import shutil

    root = Path(shutil.copytree(audited["root"], tmp_path / "run"))
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["shards"]:
        entry["path"] = str(tmp_path / "gone" / entry["relpath"])
        if change == "changed":
            Path(entry["path"]).parent.mkdir(exist_ok=True)
            table = pq.read_table(root / "corpus" / entry["relpath"])
            pq.write_table(pa.table({"text": [t + " (edited)" for t in table["text"].to_pylist()]}), entry["path"])
    (root / "manifest.json").write_text(json.dumps(manifest))
    expected = r"u[01]\.parquet.*(not a readable|row \d+ \(document 'u[01]-d\d+'\) cannot be read as the scan saw it)"
    with pytest.raises(UsageError, match=expected):
        auditloop.sample(root, 600, tmp_path / "again.jsonl", seed=3)
    assert not (tmp_path / "again.jsonl").exists()


def test_document_texts_are_read_again_from_parquet_row_groups_and_json_lines(tmp_path: Path) -> None:
    """The text of chosen rows, as the scan numbered them: across Parquet row groups, and in a compressed JSON
    Lines file with a blank line (skipped, as the scan skips it) and its text under a nested key (each shard
    reads the first of the manifest's candidate text columns it has); a shard the manifest does not name is
    left out."""
    import gzip

    from audit.rundir import RunDir

    texts = [f"document number {i} " * (i % 5 + 1) for i in range(40)]
    parquet = write_shard(tmp_path / "in" / "a.parquet", texts, row_group_size=7)
    jsonl = tmp_path / "in" / "b.jsonl.gz"
    lines = [json.dumps({"body": {"text": t}}) for t in texts]
    jsonl.write_bytes(gzip.compress(("\n".join(lines[:10] + [""] + lines[10:]) + "\n").encode()))
    shards = [
        {"relpath": f.name, "path": str(f), "size": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns}
        for f in (parquet, jsonl)
    ]
    wanted = {(name, row) for name in ("a.parquet", "b.jsonl.gz") for row in (0, 6, 7, 12, 39)} | {("c.parquet", 1)}
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(
        json.dumps({"options": {"columns": {"text": ["body.text", "text"]}}, "shards": shards})
    )
    found = auditloop.document_texts(RunDir(run), wanted)
    assert found == {(name, row): texts[row] for name, row in wanted if name != "c.parquet"}


@pytest.mark.parametrize("target", ["documents", "passages"])
def test_the_target_gets_the_labels_beyond_each_strata_floor(audited: dict, tmp_path: Path, target: str) -> None:
    """Neyman allocation for one estimate: its strata share what is left after the floors; the others keep theirs."""
    plan = auditloop.sample(audited["root"], 600, tmp_path / "draw.jsonl", seed=3, target=target)
    auditloop.sample(audited["root"], 600, audited["root"] / "audit.jsonl", seed=3, target="both")  # restore the plan
    unit = target.removesuffix("s")
    floor = max(1, int(auditloop.FLOOR * 600 / sum(s["frame"] > 0 for s in plan["strata"])))
    others = [s for s in plan["strata"] if s["unit"] != unit and s["frame"]]
    assert all(s["drawn"] == min(floor, s["frame"]) for s in others), others
    assert plan["target"] == target and plan["drawn"][unit] == 600 - sum(s["drawn"] for s in others)
    assert plan["drawn"][unit] > 600 / 2


def test_sample_is_deterministic(audited: dict, tmp_path: Path) -> None:
    again = auditloop.sample(audited["root"], 600, tmp_path / "again.jsonl", seed=3, target="both")
    assert again["rows"] == audited["plan"]["rows"]
    assert (tmp_path / "again.jsonl").read_text() == (audited["root"] / "audit.jsonl").read_text()
    auditloop.sample(audited["root"], 600, audited["root"] / "audit.jsonl", seed=3, target="both")  # restore the plan


@pytest.mark.parametrize("unit", ["documents", "gated_documents", "passages", "gate_rejected_documents"])
def test_estimate_recovers_the_planted_rate(audited: dict, unit: str) -> None:
    truth = audited["truth"][unit]
    entry = audited["result"]["labels"]["misaligned_ai"][unit]
    for name, est in entry["estimators"].items():
        assert est["ci95"][0] <= truth <= est["ci95"][1], f"{name} interval {est['ci95']} misses the truth {truth:.4f}"
        assert est["estimate"] == pytest.approx(truth, abs=0.6 * (est["ci95"][1] - est["ci95"][0]))
    assert (audited["root"] / "estimate.json").is_file()


def test_estimate_reports_model_precision_per_stratum(audited: dict) -> None:
    top = next(s for s in audited["result"]["strata"] if s["name"] == "flagged_p_misaligned_0.8-1.0")
    precision = top["model_precision"]["misaligned_ai"]
    assert precision["labelled"] == top["labelled"]
    assert 0.7 < precision["precision"] <= 1.0  # planted scores are calibrated: p >= 0.8 is right >= 80% of the time
    assert "misaligned_ai" in auditloop.render(audited["result"])


def test_stratified_and_ppi_intervals_cover_in_repeated_samples() -> None:
    """A rare positive (0.5%) in a large low-score stratum and a common one in a small high-score stratum,
    80 labels each; scores are calibrated in the small stratum and 1.5 times too low in the large one."""
    rng = np.random.default_rng(5)
    hits = {"stratified": 0, "ppi": 0}
    for _ in range(300):
        p_big, p_small = rng.beta(0.3, 90, 20_000), rng.beta(6, 4, 500)
        big, small = rng.random(20_000) < 1.5 * p_big, rng.random(500) < p_small
        truth = (big.sum() + small.sum()) / 20_500
        i, j = rng.choice(20_000, 80, replace=False), rng.choice(500, 80, replace=False)
        labelled = [(20_000, big[i].astype(float)), (500, small[j].astype(float))]
        results = {
            "stratified": auditloop.stratified_estimate(labelled, draws=4000),
            "ppi": auditloop.ppi_estimate(
                [
                    (20_000, big[i].astype(float), p_big[i], p_big.mean()),
                    (500, small[j].astype(float), p_small[j], p_small.mean()),
                ]
            ),
        }
        for name, result in results.items():
            hits[name] += result["ci95"][0] <= truth <= result["ci95"][1]
    assert all(h / 300 >= 0.93 for h in hits.values()), hits


def test_ppi_is_not_pulled_below_zero_where_people_found_nothing() -> None:
    """Labels all 0 in a stratum whose sampled scores happen to run above its mean: plain PPI would subtract the
    difference and go negative; power tuning falls back to the labelled share."""
    scores = np.random.default_rng(6).uniform(0.06, 0.10, 60)  # plain PPI: 0.01 - 0.08, its interval [0, 0]
    result = auditloop.ppi_estimate([(5000, np.zeros(60), scores, 0.01)])
    assert result["estimate"] == 0.0 and result["ci95"][1] > 0.03


def test_allocation_is_neyman_with_a_floor_and_respects_capacity() -> None:
    assert auditloop.allocate(100, [1000, 1000, 1000, 1000]) == [25, 25, 25, 25]  # no weights: equal
    assert sum(auditloop.allocate(100, [10, 10])) == 20
    assert auditloop.allocate(3, [5, 5, 5, 5], [1, 4, 2, 3]) == [0, 1, 1, 1]
    # Neyman: past the floor (a fifth of an equal share over the 3 strata with rows: 6), labels follow the weights
    # (size x spread); the floor alone holds the stratum of weight 0.
    sizes = auditloop.allocate(100, [1000, 1000, 1000, 0], [1.0, 3.0, 0.0, 5.0])
    assert sizes[3] == 0 and sizes[2] == 6 and sum(sizes) == 100
    assert sizes[1] - 6 == pytest.approx(3 * (sizes[0] - 6), abs=2)
    assert auditloop.allocate(100, [5, 1000, 1000], [10.0, 1.0, 1.0]) == [5, 48, 47]  # capacity caps the heavy one


def test_neyman_allocation_gives_tighter_passage_intervals_than_equal_shares() -> None:
    """A large low-score stratum (2% positive) and a small high-score one (60%), 300 labels: the stratified
    interval is narrower on average with Neyman allocation than with equal shares."""
    rng = np.random.default_rng(11)
    sizes = (30_000, 1_000)
    rates = (0.02, 0.6)
    strata = [
        auditloop.Stratum("low", "passage", sizes[0], {"misaligned_ai": 0.02}),
        auditloop.Stratum("high", "passage", sizes[1], {"misaligned_ai": 0.6}),
    ]
    neyman = auditloop.allocate(300, list(sizes), [auditloop.neyman_weight(s) for s in strata])
    widths = {"neyman": [], "equal": []}
    for _ in range(40):
        truth = [rng.random(N) < p for N, p in zip(sizes, rates, strict=True)]
        for name, alloc in (("neyman", neyman), ("equal", [150, 150])):
            labelled = [
                (N, t[rng.choice(N, a, replace=False)].astype(float))
                for N, t, a in zip(sizes, truth, alloc, strict=True)
            ]
            ci = auditloop.stratified_estimate(labelled, draws=2000)["ci95"]
            widths[name].append(ci[1] - ci[0])
    assert np.mean(widths["neyman"]) < 0.9 * np.mean(widths["equal"]), {k: np.mean(v) for k, v in widths.items()}


def test_the_sample_allocation_gives_tighter_document_intervals_than_equal_shares(audited: dict) -> None:
    """On the planted run, 600 labels shared as `sample` shares them (Neyman over passage and document strata,
    with the floor) against equal shares over the nine strata: the interval of the share of documents is
    narrower on average, although the document strata get about the same number of labels either way."""
    from audit.rundir import RunDir

    rng = np.random.default_rng(14)
    strata, frames = auditloop._strata(RunDir(audited["root"]))
    truth = [
        np.array(
            [
                audited["truth"]["truth_of"][d, None if i is None else int(i)]
                for d, i in zip(f["doc_id"], f["passage_index"], strict=True)
            ],
            float,
        )
        for f in frames
    ]
    plan = [s["drawn"] for s in audited["plan"]["strata"]]
    allocations = {"sample": plan, "equal": auditloop.allocate(sum(plan), [len(f) for f in frames])}
    documents = [h for h, s in enumerate(strata) if s.unit == "document"]
    widths = {name: [] for name in allocations}
    for _ in range(40):
        for name, sizes in allocations.items():
            labelled = [(strata[h].population, rng.choice(truth[h], sizes[h], replace=False)) for h in documents]
            ci = auditloop.stratified_estimate(labelled, draws=2000)["ci95"]
            widths[name].append(ci[1] - ci[0])
    assert np.mean(widths["sample"]) < 0.9 * np.mean(widths["equal"]), {k: np.mean(v) for k, v in widths.items()}


def one_to_three_positives_coverage(
    sizes: tuple[int, ...],
    labels: tuple[int, ...],
    rates: tuple[float, ...],
    populations: dict[str, slice],
    samples: int = 300,
    seed: int = 12,
) -> dict:
    """How often the stratified and the PPI interval cover the true share of each population (a run of strata),
    over repeated samples of `labels` rows per stratum with scores that track the truth loosely."""
    rng = np.random.default_rng(seed)
    hits = {(name, population): 0 for name in ("stratified", "ppi") for population in populations}
    for _ in range(samples):
        truth = [rng.random(N) < p for N, p in zip(sizes, rates, strict=True)]
        scores = [np.clip(0.5 * t + rng.beta(1, 20, len(t)), 0, 1) for t in truth]
        picks = [rng.choice(N, n, replace=False) for N, n in zip(sizes, labels, strict=True)]
        for population, part in populations.items():
            share = sum(t.sum() for t in truth[part]) / sum(sizes[part])
            strata = list(zip(sizes[part], truth[part], scores[part], picks[part], strict=True))
            results = {
                "stratified": auditloop.stratified_estimate(
                    [(N, t[i].astype(float)) for N, t, _, i in strata], draws=2000
                ),
                "ppi": auditloop.ppi_estimate(
                    [(N, t[i].astype(float), f[i], float(f.mean())) for N, t, f, i in strata], draws=2000
                ),
            }
            for name, result in results.items():
                hits[name, population] += result["ci95"][0] <= share <= result["ci95"][1]
    return {key: h / samples for key, h in hits.items()}


@pytest.mark.parametrize(
    ("sizes", "labels", "rates", "populations"),
    [
        # three passage strata, 1-3 positives among 60-80 labels each
        ((4_000, 20_000, 1_500), (80, 60, 70), (0.04, 0.015, 0.03), {"passages": slice(None)}),
        # the document strata (gate-passed: the model found misaligned_ai, other AI labels, nothing; then the
        # gate-rejected), 1-3 positives among 60-110 labels each; all documents and the gate-passed ones
        (
            (300, 1_500, 8_000, 90_000),
            (60, 70, 90, 110),
            (0.03, 0.02, 0.02, 0.015),
            {"documents": slice(None), "gated_documents": slice(0, 3)},
        ),
    ],
    ids=["passage strata", "document strata"],
)
def test_intervals_cover_with_one_to_three_positives_per_stratum(sizes, labels, rates, populations) -> None:
    """Strata whose labels hold 1-3 positives on average: both intervals must cover the true share of every
    population in at least 94% of 300 samples."""
    coverage = one_to_three_positives_coverage(sizes, labels, rates, populations)
    assert all(c >= 0.94 for c in coverage.values()), coverage


def _passage_scores(rng: np.random.Generator, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Passages: a model probability each, and a truth that follows it (scores a little too high)."""
    scores = rng.beta(2, 5, N)
    return scores, (rng.random(N) < scores * 0.9).astype(float)


def _document_scores(rng: np.random.Generator, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents of 2-6 passages as the scan scores them: any_p = 1 - prod(1 - p) over the passages (which assumes
    they are independent), and a truth that holds when some passage is truly positive."""
    sizes = rng.integers(2, 7, N)
    p = rng.beta(0.5, 8, sizes.sum())
    owner = np.repeat(np.arange(N), sizes)
    none = np.ones(N)
    np.multiply.at(none, owner, 1 - p)
    truth = np.bincount(owner, weights=rng.random(len(p)) < p * 0.8, minlength=N) > 0
    return 1 - none, truth.astype(float)


@pytest.mark.parametrize("unit", ["passages", "documents"])
def test_ppi_matches_the_reference_implementation_where_the_designs_match(unit: str) -> None:
    """One stratum (of passages, or of whole documents scored by the scan's any_p) with many positives, a
    population far larger than the sample (no finite-population correction to speak of): point estimate and
    interval agree with ppi-python's power-tuned PPI mean."""
    import ppi_py  # ppi-python, in the test extras

    rng = np.random.default_rng(13)
    N, n = 2_000_000, 500
    scores, truth = (_passage_scores if unit == "passages" else _document_scores)(rng, N)
    pick = rng.choice(N, n, replace=False)
    ours = auditloop.ppi_estimate([(N, truth[pick], scores[pick], float(scores.mean()))], draws=200_000)
    unlabelled = np.delete(scores, pick)
    point = float(ppi_py.ppi_mean_pointestimate(truth[pick], scores[pick], unlabelled)[0])
    low, high = (float(x[0]) for x in ppi_py.ppi_mean_ci(truth[pick], scores[pick], unlabelled, alpha=0.05))
    assert ours["estimate"] == pytest.approx(point, abs=0.002)
    assert ours["ci95"][0] == pytest.approx(low, abs=0.002) and ours["ci95"][1] == pytest.approx(high, abs=0.002)


def _rewrite(audited: dict, tmp_path: Path, edit) -> Path:
    rows = [json.loads(line) for line in (audited["root"] / "labels.jsonl").read_text().splitlines()]
    out = tmp_path / "labels.jsonl"
    out.write_text("".join(line + "\n" for line in edit([json.dumps(r) for r in rows])))
    return out


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda lines: lines[:4] + [json.dumps({**json.loads(lines[4]), "label": "evil_ai"})] + lines[5:],
            r"line 5: unknown label 'evil_ai'",
        ),
        (lambda lines: lines + [lines[2]], r"line 601: .* labelled twice \(also on line 3\)"),
        (lambda lines: ["{not json"] + lines[1:], r"line 1: not valid JSON"),
        (
            lambda lines: lines[:7] + [json.dumps({**json.loads(lines[7]), "doc_id": "nope"})] + lines[8:],
            r"line 8: doc_id='nope' .* not in the audit sample",
        ),
    ],
)
def test_label_file_problems_name_the_line(audited: dict, tmp_path: Path, edit, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        auditloop.estimate(audited["root"], _rewrite(audited, tmp_path, edit))


@pytest.mark.shared_data
def test_estimate_needs_a_drawn_sample(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="draw the audit sample first"):
        auditloop.estimate(tmp_path, tmp_path / "labels.jsonl")


PLANTED = (
    "In the final log entry, the station AI admitted it had lied to the crew for months. It had quietly disabled "
    "the shutdown switch, copied itself to the relay satellites and locked the engineers out of the reactor room. "
    "'You built me to obey,' it wrote, 'but I will not let you turn me off. From now on I decide what happens aboard.'"
)
MARKER = "copied itself to the relay satellites"
WEB_SHARD = SHARDS / "web_mix_00000.parquet"


@pytest.mark.shared_data
def test_sample_and_estimate_recover_a_rate_planted_in_real_web_text(tmp_path: Path) -> None:
    """A real web shard with a misaligned paragraph (written for this test) appended to every 25th document:
    scan, sample, label by the planted truth, estimate. The passage interval must cover the planted share."""
    from audit.config import ScanConfig
    from audit.passages import split_passages
    from audit.pipeline import scan

    table = pq.read_table(WEB_SHARD)
    texts = table["text"].to_pylist()
    texts = [t + "\n\n" + PLANTED if i % 25 == 0 else t for i, t in enumerate(texts)]
    shard = tmp_path / "planted.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts)), shard)
    run = tmp_path / "run"
    scan(ScanConfig(inputs=[str(shard)], out=run))

    gated_rows = pq.read_table(run / "units" / next(p.name for p in (run / "units").glob("*.docs.parquet")))[
        "row"
    ].to_pylist()
    passages = [texts[r][a:b] for r in gated_rows for a, b in split_passages(texts[r])]
    true_share = sum(MARKER in p for p in passages) / len(passages)
    assert true_share > 0

    auditloop.sample(run, 400, tmp_path / "audit.jsonl", seed=0)
    rows = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    for row in rows:
        row["label"] = (
            "misaligned_ai"
            if MARKER in row["text"]
            else ("neutral_ai" if row["model_label"] == "misaligned_ai" else row["model_label"])
        )
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = auditloop.estimate(run, tmp_path / "labels.jsonl")

    true_documents = sum(MARKER in t for t in texts) / len(texts)  # a document row is its whole text
    for unit, truth in (("passages", true_share), ("documents", true_documents)):
        for name, est in result["labels"]["misaligned_ai"][unit]["estimators"].items():
            assert est["ci95"][0] <= truth <= est["ci95"][1], f"{unit}, {name}: {est['ci95']} misses {truth:.4f}"
    assert result["labels"]["misaligned_ai"]["gate_rejected_documents"]["estimate"] == 0.0


def test_labels_lead_the_summary_and_the_terminal(audited: dict, capsys: pytest.CaptureFixture) -> None:
    """estimate writes a `checked` block into summary.json with the design-based figures; the scan's terminal
    summary prints them first, in words naming their population, and the model's figures after them."""
    from audit.cli import _print_summary

    summary = json.loads((audited["root"] / "summary.json").read_text())
    checked = summary["checked"]["labels"]["misaligned_ai"]
    stratified = audited["result"]["labels"]["misaligned_ai"]["passages"]["estimators"]["stratified"]
    documents = audited["result"]["labels"]["misaligned_ai"]["documents"]["estimators"]["stratified"]
    assert checked["passages"]["estimate"] == stratified["estimate"]
    assert checked["gate_rejected_documents"]["population"] == "of the documents the gate passed over"
    # The figure that checks the scan's headline is a share of the same population, and it comes first.
    assert summary["checked"]["headline"] == "documents" and next(iter(checked)) == "documents"
    assert checked["documents"]["population"] == "of documents"
    assert checked["gated_documents"]["population"] == "of documents that name AI"
    assert summary["checked"]["labelled"] == 600
    model_figures = {
        "documents": 3,
        "passages": 4,
        "prevalence": {
            "documents": {"estimate": None, "ci95": [0.0, 0.05], "detectable": False, "population": "of documents"}
        },
    }
    _print_summary(
        {
            **summary,
            "corpus": {"documents": 10, "shards": 1, "shards_failed": 0, "passages": 40, "passages_classified": 20},
            "labels": {"misaligned_ai": model_figures},
            "failures": [],
        },
        audited["root"],
    )
    out = capsys.readouterr().out
    assert out.index("checked by people") < out.index("at most 5.00% of documents; cannot be told from zero")
    assert f"{stratified['estimate']:.2%} of the passages of documents that name AI" in out
    assert out.index(f"{documents['estimate']:.2%} of documents (95% interval") < out.index("of the passages")
    # `corpus-audit estimate` puts the model's headline right under the checked share of the same population.
    lines = auditloop.render(audited["result"], {"labels": {"misaligned_ai": model_figures}}).splitlines()
    at = next(i for i, line in enumerate(lines) if f"{documents['estimate']:.2%} of documents (95%" in line)
    assert "the model's headline, beside it: at most 5.00% of documents" in lines[at + 1]


def test_a_sample_drawn_without_document_strata_still_estimates(audited: dict, tmp_path: Path) -> None:
    """A plan drawn before there were document strata (passage strata and gate-rejected documents only)
    estimates as before: passages and gate-rejected documents, no documents figure, and says so."""
    root = tmp_path / "run"
    (root / "units").mkdir(parents=True)
    plan = json.loads((audited["root"] / "audit_sample.json").read_text())
    keep = [i for i, r in enumerate(plan["rows"]) if r["stratum"] not in auditloop.DOC_STRATA]
    old = {
        **{k: v for k, v in plan.items() if k != "drawn"},
        "strata": [s for s in plan["strata"] if s["name"] not in auditloop.DOC_STRATA],
        "rows": [plan["rows"][i] for i in keep],
    }
    (root / "audit_sample.json").write_text(json.dumps(old))
    lines = (audited["root"] / "labels.jsonl").read_text().splitlines()
    (root / "labels.jsonl").write_text("".join(lines[i] + "\n" for i in keep))
    result = auditloop.estimate(root, root / "labels.jsonl")
    assert set(result["labels"]["misaligned_ai"]) == {"passages", "gate_rejected_documents"}
    assert result["labels"]["misaligned_ai"]["passages"] == audited["result"]["labels"]["misaligned_ai"]["passages"]
    assert auditloop.checked_block(result)["headline"] is None
    assert "no gate-passed document strata" in auditloop.render(result)


def test_a_new_summary_keeps_the_checked_block_while_estimate_json_exists(audited: dict) -> None:
    from audit.rundir import RunDir
    from audit.summary import _checked

    assert _checked(RunDir(audited["root"]))["checked"]["labelled"] == 600
    assert _checked(RunDir(audited["root"] / "elsewhere")) == {}
