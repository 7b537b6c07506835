"""The audit loop: draw a stratified sample of passages and documents for people to label, then estimate
prevalence from it.

The classifier's own estimates lean on its evaluation set resembling the corpus. A sample labelled by people from
this very corpus needs no such assumption. `sample` splits what the scan saw into strata, the places where the
model is most and least likely to be wrong. Passage strata (the passage share):

- flagged passages (any label but no_ai), in bands of `p_misaligned_ai`;
- passages of gate-passed documents that the model called no_ai (misses hide here);

and document strata, each row a whole document labelled as a whole (the documents share, the scan's headline):

- gate-passed documents by the model's document label (DOC_STRATA: it found a misaligned_ai passage, only other
  AI labels, or nothing);
- documents the gate passed over (never classified; misses of the gate hide here).

It draws from each by Neyman allocation (in proportion to the stratum's share of its population times the spread
of its labels, guessed from the model's scores), with a floor per stratum (fewer where a stratum has fewer to
offer). It writes the rows as JSON Lines and the plan (strata, their population sizes, the drawn rows and their
scores) to RUN/audit_sample.json.

`estimate` reads the labels so far (rows with no settled label, see agreement.py, are left out) and gives, per
label and population (passages; documents, gate-passed documents and gate-rejected documents), the stratified
(design-based) estimate and a prediction-powered inference (PPI) estimate, each with a 95% interval, plus
per-stratum precision of the model, and writes RUN/estimate.json. A sample drawn before there were document
strata still estimates: it gives the passage and gate-rejected figures only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl

from .atomic import write_json_atomic, write_text_atomic
from .errors import InputError, UsageError
from .agreement import settled_labels
from .estimators import DRAWS, SEED, beta_draws, wilson
from .config import SAMPLE_TARGETS as TARGETS, Columns
from .labels import AI_LABELS, BENIGN, LABELS
from .reader import ParquetSource, Shard, Source, open_source, read_column, resolve_columns
from .rundir import ESTIMATE_FILE, SCHEMA_VERSION, RunDir
from .scanner import SAMPLE_GATED, SAMPLE_REJECTED, doc_hash

BANDS = (0.0, 0.2, 0.5, 0.8, 1.0)  # p_misaligned_ai bands of the flagged strata
FLOOR = 0.2  # every stratum gets at least this share of an equal allocation
MIN_RATE = 0.005  # the least spread a stratum is assumed to have when allocating labels
FEW = 5  # a stratum with fewer labelled positives (or negatives) than this gets an exact interval in PPI
REJECTED = "gate_rejected"
# Gate-passed documents by the model's document label (`_document_frame`'s "label", by the document rule below).
DOC_STRATA = {
    "documents_misaligned_ai": pl.col("label") == "misaligned_ai",
    "documents_other_ai": pl.col("label").is_in(BENIGN),
    "documents_no_ai": pl.col("label") == "no_ai",
}
# A whole document's one label, as people give it and as the model's passage labels give it: the first label of
# LABELS that one of its passages holds (misaligned_ai if any passage is, else aligned_ai, ...; no_ai if none).
DOCUMENT_RULE = ("a document is misaligned_ai if any passage of it is; else aligned_ai if any is; else neutral_ai "
                 "if any is; else no_ai")
POPULATIONS = {  # estimate.json's populations: what each holds, and how a sentence names it
    "documents": ("every document (gate-passed document strata + gate_rejected), each labelled as a whole",
                  "of documents"),
    "gated_documents": ("documents the gate passed (they name AI), each labelled as a whole",
                        "of documents that name AI"),
    "passages": ("passages of gate-passed documents (flagged bands + gated_no_ai strata)",
                 "of the passages of documents that name AI"),
    "gate_rejected_documents": ("documents the gate passed over, each labelled as a whole",
                                "of the documents the gate passed over"),
}


@dataclass
class Stratum:
    """One stratum: what it holds, how many items the run has in it, and the mean model probability per label
    over all of them (the PPI estimate starts from it)."""

    name: str
    unit: str  # "passage" or "document"
    population: int
    score_means: dict[str, float]
    frame: int = 0  # rows available to sample from
    drawn: int = 0


# ------------------------------------------------------------------------------------------------- sample


def sample(run_dir: str | Path, n: int, out: str | Path, seed: int = 0, target: str = "documents") -> dict:
    """Draw about `n` rows for people to label, write them to `out` (JSON Lines) and the plan to
    RUN/audit_sample.json; returns the plan. `target` is the estimate whose variance the allocation minimises
    (see TARGETS): by default the share of documents, the scan's headline."""
    if n < 1:
        raise UsageError(f"--n must be at least 1 (got {n})")
    if target not in TARGETS:
        raise UsageError(f"--target must be one of {', '.join(TARGETS)} (got {target!r})")
    run = _run(run_dir)
    strata, frames = _strata(run)
    # Each stratum's weight is its share of its own population (passages or documents) times its spread, for the
    # strata of the target's population; the others get the floor only.
    totals = {unit: sum(s.population for s in strata if s.unit == unit) for unit in ("passage", "document")}
    weights = [
        neyman_weight(s) / totals[s.unit] if totals[s.unit] and s.unit in TARGETS[target] else 0.0 for s in strata
    ]
    sizes = allocate(n, [len(frame) for frame in frames], weights)
    rows: list[dict] = []
    for stratum, frame, size in zip(strata, frames, sizes, strict=True):
        order = np.argsort(
            [doc_hash(f"{d}#{i}", seed) for d, i in zip(frame["doc_id"], frame["passage_index"], strict=True)],
            kind="stable",
        )
        stratum.frame, stratum.drawn = len(frame), size
        rows += [_sample_row(r, stratum) for r in frame[order[:size].tolist()].iter_rows(named=True)]
    _fill_document_texts(run, rows)
    lines = [json.dumps({**{k: v for k, v in r.items() if k != "f"}, "label": None}, ensure_ascii=False) for r in rows]
    write_text_atomic(out, "".join(line + "\n" for line in lines))
    plan = {
        "schema_version": SCHEMA_VERSION,
        "file": str(Path(out).resolve()),
        "n": n,
        "seed": seed,
        "target": target,
        "strata": [asdict(s) for s in strata],
        "drawn": {unit: sum(s.drawn for s in strata if s.unit == unit) for unit in ("passage", "document")},
        "rows": [{k: r[k] for k in ("doc_id", "passage_index", "stratum", "model_label", "f")} for r in rows],
    }
    write_json_atomic(run.audit_plan, plan)
    return plan


def allocate(n: int, capacities: list[int], weights: list[float] | None = None) -> list[int]:
    """Neyman allocation with a floor: first every stratum that holds rows gets FLOOR of an equal share (a guessed
    spread near zero must not leave a stratum unlabelled: misses hide in the low-score strata), then the rest goes
    in proportion to `weights` (stratum size x spread of its labels, see `neyman_weight`), which minimises the
    variance of the stratified share. A stratum never gets more than it holds; what it cannot take goes to the
    others. Without weights, the rest is shared equally. Deterministic (largest remainders, ties to the first)."""
    count = len(capacities)
    weights = [1.0] * count if weights is None else [max(float(w), 0.0) for w in weights]
    open_ = [i for i in range(count) if capacities[i] > 0]
    sizes = [0] * count
    if not open_:
        return sizes
    if n < len(open_):  # fewer labels than strata: one each to the heaviest
        for i in sorted(open_, key=lambda i: -weights[i])[:n]:
            sizes[i] = 1
        return sizes
    floor = max(1, int(FLOOR * n / len(open_)))
    for i in open_:
        sizes[i] = min(capacities[i], floor)
    left = n - sum(sizes)
    while left > 0:
        room = [i for i in open_ if sizes[i] < capacities[i]]
        if not room:
            break
        total = sum(weights[i] for i in room)
        shares = {i: left * (weights[i] / total if total > 0 else 1 / len(room)) for i in room}
        add = {i: min(int(shares[i]), capacities[i] - sizes[i]) for i in room}
        if not any(add.values()):
            add[max(room, key=lambda i: (shares[i] - int(shares[i]), -i))] = 1
        for i, extra in add.items():
            sizes[i] += extra
        left -= sum(add.values())
    return sizes


def neyman_weight(stratum: Stratum, label: str = "misaligned_ai") -> float:
    """Stratum size times the standard deviation of a label's indicator there, guessed from the model's mean
    score (kept within [MIN_RATE, 1 - MIN_RATE]: a stratum the model scores at zero may still hide positives)."""
    p = min(max(stratum.score_means.get(label, 0.0), MIN_RATE), 1 - MIN_RATE)
    return stratum.population * float(np.sqrt(p * (1 - p)))


def _run(run_dir: str | Path) -> RunDir:
    run = RunDir(Path(run_dir))
    if not run.summary.is_file():
        raise UsageError(
            f"{run.root} is not a finished run directory (no {run.summary.name}); run `corpus-audit scan` first"
        )
    return run


def _unit_stats(run: RunDir) -> list[dict]:
    return [json.loads(p.read_text()) for p in run.unit_stats_files()]


def _read_parquet(path: Path) -> pl.DataFrame:
    """A Parquet file, or a directory of them (the contract allows both for passages.parquet)."""
    return pl.read_parquet(path / "*.parquet" if path.is_dir() else path)


def _strata(run: RunDir) -> tuple[list[Stratum], list[pl.DataFrame]]:
    """The strata with their population sizes and score means, and the rows each can be sampled from."""
    stats = _unit_stats(run)
    units = [s["unit"] for s in stats]
    if not units:
        raise UsageError(
            f"{run.units_dir} holds no finished unit of work; rerun `corpus-audit scan` to complete the run"
        )
    flagged = _read_parquet(run.passages)
    strata: list[Stratum] = []
    frames: list[pl.DataFrame] = []
    for lo, hi in pairwise(BANDS):
        upper = pl.col("p_misaligned_ai") <= hi if hi == BANDS[-1] else pl.col("p_misaligned_ai") < hi
        band = flagged.filter((pl.col("p_misaligned_ai") >= lo) & upper)
        name = f"flagged_p_misaligned_{lo:.1f}-{hi:.1f}"
        strata.append(Stratum(name, "passage", len(band), _means(band)))
        frames.append(band)

    docs = pl.concat([pl.read_parquet(run.unit_table(u, "docs")) for u in units], how="vertical_relaxed")
    low = sum(s["passages_by_label"]["no_ai"] for s in stats)
    sums = {L: float(docs[f"sum_p_{L}"].sum()) - float(flagged[f"p_{L}"].sum()) for L in AI_LABELS}
    means = {L: sums[L] / low if low else 0.0 for L in AI_LABELS}
    means["no_ai"] = 1.0 - sum(means.values())
    strata.append(Stratum("gated_no_ai", "passage", low, means))
    frames.append(_bottom_k_frame(run, units, "gated", SAMPLE_GATED).filter(pl.col("label") == "no_ai"))

    # A label line names its row by (doc_id, passage_index): where a corpus repeats an id, its first row stays.
    gated = _document_frame(docs).unique(subset=["doc_id"], keep="first", maintain_order=True)
    for name, rule in DOC_STRATA.items():
        frame = gated.filter(rule)
        strata.append(Stratum(name, "document", len(frame), _means(frame)))
        frames.append(frame)

    rejected = sum(s["documents_sampled"] - s["documents_gated"] for s in stats)
    strata.append(Stratum(REJECTED, "document", rejected, {**{L: 0.0 for L in AI_LABELS}, "no_ai": 1.0}))
    rejected_rows = _bottom_k_frame(run, units, "gate_rejected", SAMPLE_REJECTED)
    if len(rejected_rows):  # where a corpus repeats an id, a gate-passed document keeps it
        rejected_rows = rejected_rows.filter(~pl.col("doc_id").is_in(gated["doc_id"].implode()))
    frames.append(rejected_rows)
    return strata, [f.unique(subset=["doc_id", "passage_index"], keep="first", maintain_order=True) for f in frames]


def _document_frame(docs: pl.DataFrame) -> pl.DataFrame:
    """docs.parquet's gate-passed documents as sample rows: the model's document label (DOCUMENT_RULE over its
    passage labels) and document probabilities p_L = any_p_L (the chance that some passage holds L, as the scan
    computes it; p_no_ai the chance that none holds an AI label). PPI is unbiased whatever these are; the closer
    they track people's labels, the narrower its interval."""
    counts = [pl.col(f"n_{L}") > 0 for L in AI_LABELS]
    label = pl.when(counts[0]).then(pl.lit(AI_LABELS[0]))
    for L, holds in zip(AI_LABELS[1:], counts[1:], strict=True):
        label = label.when(holds).then(pl.lit(L))
    no_ai = pl.lit(1.0)
    for L in AI_LABELS:
        no_ai = no_ai * (1.0 - pl.col(f"any_p_{L}"))
    return docs.select(
        "doc_id",
        "shard",
        "row",
        "url",
        "characters",
        *[f"n_{L}" for L in AI_LABELS],
        pl.lit(None, pl.Int32).alias("passage_index"),
        label.otherwise(pl.lit("no_ai")).alias("label"),
        *[pl.col(f"any_p_{L}").cast(pl.Float64).alias(f"p_{L}") for L in AI_LABELS],
        no_ai.alias("p_no_ai"),
    )


def _means(frame: pl.DataFrame) -> dict[str, float]:
    return {L: float(frame[f"p_{L}"].mean()) if len(frame) else 0.0 for L in LABELS}


def _bottom_k_frame(run: RunDir, units: list[str], kind: str, k: int) -> pl.DataFrame:
    """A uniform sample of one kind of the units' bottom-k hash samples. Each unit kept its k smallest hashes; a
    row counts only below the smallest cut-off of the units that had to cut, so every item of the run below
    that cut-off is in, whatever its unit, and any subset (say, one label) of the result is uniform too."""
    tables = [pl.read_parquet(run.unit_table(u, "sample")).filter(pl.col("kind") == kind) for u in units]
    cuts = [int(t["sample_hash"].max()) for t in tables if len(t) >= k]
    merged = pl.concat(tables, how="vertical_relaxed") if tables else pl.DataFrame()
    if cuts and len(merged):
        merged = merged.filter(pl.col("sample_hash") <= min(cuts))
    return merged


def _sample_row(row: dict, stratum: Stratum) -> dict:
    """One sample line. A gate-passed document's text is read from its shard afterwards (_fill_document_texts)."""
    document = stratum.unit == "document"
    scores = None if stratum.name == REJECTED else {L: float(row[f"p_{L}"]) for L in LABELS}
    return {
        "doc_id": row["doc_id"],
        "passage_index": None if document else int(row["passage_index"]),
        "unit": stratum.unit,
        "stratum": stratum.name,
        "model_label": row["label"],
        "scores": scores,
        "text": row.get("text"),
        "shard": row["shard"],
        "row": row["row"],
        "url": row["url"],
        "char_start": row.get("char_start", 0),
        "char_end": row.get("char_end", row.get("characters")),
        "characters": row.get("characters"),
        # The model's probabilities as PPI uses them; a document the gate passed over is no_ai by the tool.
        "f": scores or {**{L: 0.0 for L in AI_LABELS}, "no_ai": 1.0},
    }


def _fill_document_texts(run: RunDir, rows: list[dict]) -> None:
    """Give each sampled gate-passed document its whole text, read again from its shard; UsageError naming the
    shard and row when it cannot be (a shard moved or changed since the scan)."""
    wanted = [r for r in rows if r["text"] is None]
    try:
        texts = document_texts(run, {(r["shard"], r["row"]) for r in wanted})
    except InputError as error:
        raise UsageError(
            f"the audit sample's documents cannot be read again from their shards ({error}); put the "
            "shard back where the scan read it, or scan again"
        ) from None
    for r in wanted:
        text = texts.get((r["shard"], r["row"]))
        if text is None or len(text) != r["characters"]:
            raise UsageError(
                f"{r['shard']} row {r['row']} (document {r['doc_id']!r}) cannot be read as the scan "
                "saw it: the shard moved or changed since the scan. Restore it, or scan again."
            )
        r["text"], r["char_end"] = text, len(text)


def document_texts(run: RunDir, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """The text of each (shard relpath, row) in `wanted`, read again from the shards the run's manifest names (only
    the Parquet row groups that hold a wanted row). A shard the manifest does not name is left out; one that
    cannot be read raises InputError naming it."""
    manifest = run.read_manifest() or {}
    column = (manifest.get("options", {}).get("columns") or {}).get("text") or "text"
    shards = {s["relpath"]: s for s in manifest.get("shards", [])}
    found: dict[tuple[str, int], str] = {}
    for relpath in sorted({shard for shard, _ in wanted if shard in shards}):
        entry = shards[relpath]
        source = open_source(Shard(entry["path"], relpath, entry["size"], entry["mtime_ns"]))
        name = resolve_columns(source.shard, source.schema, Columns(text=column), frozenset({"text"}))["text"]
        rows = {row for shard, row in wanted if shard == relpath}
        found.update({(relpath, row): text or "" for row, text in _shard_texts(source, name, rows)})
    return found


def _shard_texts(source: Source, column: str, rows: set[int]) -> Iterator[tuple[int, str | None]]:
    """(row, text) for the wanted rows of one open shard."""
    if not isinstance(source, ParquetSource):  # JSON Lines: read through, counting documents as the scan does
        start, ordered = 0, sorted(rows)
        for batch in source.batches(source.units(1)[0], {"text": column}, 10_000):
            texts = batch["text"]
            yield from ((row, texts[row - start].as_py()) for row in ordered if start <= row < start + len(texts))
            start += len(texts)
        return
    start = 0
    for group in range(source.file.num_row_groups):
        stop = start + source.file.metadata.row_group(group).num_rows
        mine = sorted(row for row in rows if start <= row < stop)
        if mine:
            table = source.file.read_row_group(group, columns=[column.split(".")[0]])
            texts = read_column(table.combine_chunks().to_batches()[0], column)
            yield from ((row, texts[row - start].as_py()) for row in mine)
        start = stop


# ----------------------------------------------------------------------------------------------- estimate


def estimate(run_dir: str | Path, labels_file: str | Path) -> dict:
    """Prevalence from the labelled audit sample; writes RUN/estimate.json atomically and returns its content."""
    run = RunDir(Path(run_dir))
    try:
        plan = json.loads(run.audit_plan.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{run.audit_plan} is missing: draw the audit sample first with "
            f"`corpus-audit sample {run.root} --n N --out FILE`"
        ) from None
    human, agreement = settled_labels(labels_file, plan)  # None where unlabelled or disputed: left out
    strata = [Stratum(**s) for s in plan["strata"]]
    rows = plan["rows"]
    by_stratum = {
        s.name: [i for i, r in enumerate(rows) if r["stratum"] == s.name and human[i] is not None] for s in strata
    }
    y = np.array([[h == L for L in LABELS] for h in human], dtype=np.float64).reshape(len(rows), len(LABELS))
    f = np.array([[r["f"][L] for L in LABELS] for r in rows], dtype=np.float64).reshape(len(rows), len(LABELS))

    groups = populations(strata)
    result_labels = {}
    for j, L in enumerate(LABELS):
        result_labels[L] = {
            key: _unit_estimates([(s, y[by_stratum[s.name], j], f[by_stratum[s.name], j]) for s in group], L)
            for key, group in groups.items()
        }
    result = {
        "schema_version": SCHEMA_VERSION,
        "labels_file": str(Path(labels_file).resolve()),
        "labelled": sum(h is not None for h in human),
        "sample_rows": len(rows),
        "agreement": agreement,
        "populations": {key: POPULATIONS[key][0] for key in groups},
        "document_rule": DOCUMENT_RULE,
        "labels": result_labels,
        "strata": [
            _stratum_report(s, [human[i] for i in by_stratum[s.name]], [rows[i] for i in by_stratum[s.name]])
            for s in strata
        ],
    }
    write_json_atomic(run.estimate, result)
    if run.summary.is_file():  # labels beat the model: the summary leads with them from now on
        summary = json.loads(run.summary.read_text())
        write_json_atomic(run.summary, {**summary, "checked": checked_block(result)})
    return result


POPULATION_WORDS = {key: words for key, (_, words) in POPULATIONS.items()}


def populations(strata: list[Stratum]) -> dict[str, list[Stratum]]:
    """The strata (with items) each population of estimate.json sums over, the scan's headline population
    (documents) first. A plan drawn before there were gate-passed document strata has passages and gate-rejected
    documents only."""
    held = [s for s in strata if s.population > 0]
    rejected = [s for s in held if s.name == REJECTED]
    gated = [s for s in held if s.name in DOC_STRATA]
    drawn_documents = any(s.name in DOC_STRATA for s in strata)
    groups = {"documents": gated + rejected, "gated_documents": gated} if drawn_documents else {}
    groups |= {"passages": [s for s in held if s.unit == "passage"], "gate_rejected_documents": rejected}
    return {key: group for key, group in groups.items() if group}


def checked_block(result: dict) -> dict:
    """summary.json's `checked` block: the design-based (stratified) figures of estimate.json per label and
    population, which lead the terminal and the report wherever they exist; the model's own figures stay where
    they were (labels.*.prevalence) and are shown beside them. `headline` names the population the scan's
    headline is a share of ("documents"), None for a sample drawn without document strata."""
    labels = {}
    for label, units in result["labels"].items():
        labels[label] = {}
        for unit, entry in units.items():
            stratified = entry["estimators"]["stratified"]
            labels[label][unit] = {
                "estimate": stratified["estimate"],
                "ci95": stratified["ci95"],
                "method": stratified["method"],
                "population": POPULATION_WORDS.get(unit, unit),
            }
    documents = any("documents" in units for units in result["labels"].values())
    return {
        "source": ESTIMATE_FILE,
        "labels_file": result["labels_file"],
        "labelled": result["labelled"],
        "headline": "documents" if documents else None,
        "labels": labels,
    }


def checked_words(entry: dict) -> str:
    """One checked figure in plain words, naming its population."""
    lo, hi = entry["ci95"]
    if entry["estimate"] is None:
        return f"no estimate (a stratum has no labelled row); at most {hi:.2%} {entry['population']}"
    return f"{entry['estimate']:.2%} {entry['population']} (95% interval {lo:.2%}-{hi:.2%})"


def _unit_estimates(parts: list[tuple[Stratum, np.ndarray, np.ndarray]], label: str) -> dict:
    """Both estimators over the strata of one unit; the stratified one is the headline (it needs no model)."""
    stratified = stratified_estimate([(s.population, yh) for s, yh, _ in parts])
    ppi = ppi_estimate([(s.population, yh, fh, s.score_means[label]) for s, yh, fh in parts])
    return {
        **{k: stratified[k] for k in ("estimate", "ci95", "method")},
        "estimators": {"stratified": stratified, "ppi": ppi},
    }


def _exact_totals(rng: np.random.Generator, N: int, yh: np.ndarray, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws of one stratum's positive total for the lower and the upper limit: the labelled rows as they are plus
    the unlabelled rest drawn binomially at a rate from its Clopper-Pearson confidence distribution (Beta(y,
    n-y+1) for the lower limit, Beta(y+1, n-y) for the upper). A sample with no positive still adds the
    uncertainty it should, and a fully labelled stratum adds none."""
    n, k = len(yh), float(np.sum(yh))
    rest = max(N - n, 0)
    low = k + rng.binomial(rest, beta_draws(rng, k, n - k + 1, draws))
    high = k + rng.binomial(rest, beta_draws(rng, k + 1, n - k, draws))
    return low, high


def stratified_estimate(strata: list[tuple[int, np.ndarray]], draws: int = DRAWS, seed: int = SEED) -> dict:
    """Design-based share: sum of N_h x (labelled share in stratum h) over sum of N_h. Interval: Monte Carlo of
    the stratum totals (`_exact_totals`), the 2.5% point of the lower draws and the 97.5% point of the upper."""
    rng = np.random.default_rng(seed)
    total = sum(N for N, _ in strata)
    low, high = np.zeros(draws), np.zeros(draws)
    point = 0.0
    unlabelled = []
    for N, yh in strata:
        lo_h, hi_h = _exact_totals(rng, N, yh, draws)
        low, high = low + lo_h, high + hi_h
        if len(yh):
            point += N * float(np.sum(yh)) / len(yh)
        else:
            unlabelled.append(N)
    ci95 = [float(np.quantile(low, 0.025)) / total, float(np.quantile(high, 0.975)) / total]
    out = {
        "estimate": None if unlabelled else point / total,
        "ci95": ci95,
        "method": "stratified (design-based; Clopper-Pearson finite-population Monte Carlo interval)",
    }
    if unlabelled:
        out["message"] = f"{len(unlabelled)} stratum/strata with {sum(unlabelled)} items have no labelled row"
    return out


def ppi_estimate(strata: list[tuple[int, np.ndarray, np.ndarray, float]], draws: int = DRAWS, seed: int = SEED) -> dict:
    """Prediction-powered inference, stratified and power-tuned (PPI++): in each stratum, lambda x the model's
    mean probability over all its items, plus the mean of (human label - lambda x model probability) over the
    labelled ones. lambda = cov(label, probability) / ((1 + n/N) var(probability)), clipped to [0, 1], takes
    the model only as far as it tracks people's labels; with lambda 0 it is the stratum's labelled share, so a
    stratum where people found nothing cannot pull the estimate below zero.

    A normal interval holds only where a stratum's labels hold enough positives and negatives: a stratum with
    fewer than FEW of either is estimated by its labelled share with the exact draws of the stratified estimate
    (`_exact_totals`), the others by PPI with normal draws from the corrections' spread (finite-population
    corrected); the limits are Monte Carlo quantiles of the sums."""
    rng = np.random.default_rng(seed)
    total = sum(N for N, *_ in strata)
    point = 0.0
    low, high = np.zeros(draws), np.zeros(draws)
    exact = 0
    for N, yh, fh, mean_f in strata:
        n = len(yh)
        if n == 0:
            return {
                "estimate": None,
                "ci95": [0.0, 1.0],
                "method": "ppi (prediction-powered inference, stratified)",
                "message": "a stratum has no labelled row",
            }
        k = float(yh.sum())
        if min(k, n - k) < FEW:
            exact += 1
            lo_h, hi_h = _exact_totals(rng, N, yh, draws)
            point += N * k / n
            low, high = low + lo_h, high + hi_h
            continue
        spread_f = float(np.var(fh, ddof=1))
        lam = float(np.clip(np.cov(yh, fh)[0, 1] / ((1 + n / N) * spread_f), 0.0, 1.0)) if spread_f > 0 else 0.0
        corrected = yh - lam * fh
        mean_h = lam * mean_f + float(np.mean(corrected))
        sd_h = np.sqrt(float(np.var(corrected, ddof=1)) / n * max(0.0, 1.0 - n / N))
        noise = N * sd_h * rng.standard_normal(draws)
        point += N * mean_h
        low, high = low + N * mean_h + noise, high + N * mean_h + noise
    method = "ppi++ (prediction-powered inference, stratified, power-tuned; normal interval"
    method += f"; {exact} stratum/strata with fewer than {FEW} positives or negatives: exact)" if exact else ")"
    return {
        "estimate": min(max(point / total, 0.0), 1.0),
        "ci95": [max(0.0, float(np.quantile(low, 0.025)) / total), min(1.0, float(np.quantile(high, 0.975)) / total)],
        "method": method,
    }


def _stratum_report(stratum: Stratum, human: list[str], rows: list[dict]) -> dict:
    """What the labels say about one stratum: the human label counts, and how often the model's label was right."""
    model = [r["model_label"] for r in rows]
    precision = {}
    for L in LABELS:
        mine = [h for h, m in zip(human, model, strict=True) if m == L]
        if mine:
            agree = sum(h == L for h in mine)
            w = wilson(agree, len(mine))
            precision[L] = {"labelled": len(mine), "agree": agree, "precision": agree / len(mine), "ci95": list(w.ci95)}
    return {
        "name": stratum.name,
        "unit": stratum.unit,
        "population": stratum.population,
        "labelled": len(human),
        "human_labels": {L: sum(h == L for h in human) for L in LABELS},
        "model_precision": precision,
    }


def render(result: dict, summary: dict | None = None) -> str:
    """A plain-text view of estimate.json for the terminal; with the run's summary, each label's checked share of
    documents is followed by the model's headline, a share of the same population."""
    from .cli import headline_words

    def fmt(entry: dict) -> str:
        est = "n/a" if entry["estimate"] is None else f"{entry['estimate']:.4%}"
        return f"{est} [{entry['ci95'][0]:.4%}, {entry['ci95'][1]:.4%}]"

    checked = checked_block(result)
    lines = [f"checked by people ({result['labelled']} labelled rows; design-based, needs no model):"]
    models = (summary or {}).get("labels", {})
    for L, units in checked["labels"].items():
        if L == "no_ai":
            continue
        model = models.get(L, {}).get("prevalence", {}).get("documents")
        for unit, entry in units.items():
            lines.append(f"  {L:<14} {checked_words(entry)}")
            if model and unit == checked["headline"]:
                lines.append(f"  {'':<14}   the model's headline, beside it: {headline_words(model)}")
    if checked["headline"] is None:
        lines.append(
            "  (this sample has no gate-passed document strata, so nothing above is a share of documents "
            "like the scan's headline; `corpus-audit sample` draws one that has them)"
        )
    else:
        lines.append(f"  (document labels: {DOCUMENT_RULE})")
    lines.append("every estimator:")
    for L, units in result["labels"].items():
        for unit, entry in units.items():
            e = entry["estimators"]
            lines.append(f"  {L:<14} {unit:<24} stratified {fmt(e['stratified'])}   ppi {fmt(e['ppi'])}")
    lines.append("strata (population / labelled; model precision where the model gave that label):")
    for s in result["strata"]:
        prec = ", ".join(f"{L} {p['agree']}/{p['labelled']}" for L, p in s["model_precision"].items())
        lines.append(f"  {s['name']:<32} {s['population']:>10,} / {s['labelled']:<5} {prec}")
    return "\n".join(lines)
