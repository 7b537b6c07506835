"""The audit loop: draw a stratified sample of passages for people to label, then estimate prevalence from it.

The classifier's own estimates lean on its evaluation set resembling the corpus. A sample labelled by people from
this very corpus needs no such assumption. `sample` splits what the scan saw into strata, the places where the
model is most and least likely to be wrong:

- flagged passages (any label but no_ai), in bands of `p_misaligned_ai`;
- passages of gate-passed documents that the model called no_ai (misses hide here);
- documents the gate passed over (never classified; misses of the gate hide here), labelled as whole documents.

and draws an equal number from each (fewer where a stratum has fewer to offer). It writes the rows as JSON Lines
and the plan (strata, their population sizes, the drawn rows and their scores) to RUN/audit_sample.json.

`estimate` reads the labels so far (rows with no settled label, see agreement.py, are left out) and gives, per
label, the stratified (design-based) estimate and a prediction-powered inference (PPI) estimate, each with a 95%
interval, plus per-stratum precision of the model, and writes RUN/estimate.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .atomic import write_json_atomic, write_text_atomic
from .errors import UsageError
from .estimators import Z95, beta_draws, wilson
from .agreement import settled_labels
from .labels import AI_LABELS, LABELS
from .rundir import SCHEMA_VERSION, RunDir
from .scanner import SAMPLE_GATED, SAMPLE_REJECTED, doc_hash

BANDS = (0.0, 0.2, 0.5, 0.8, 1.0)  # p_misaligned_ai bands of the flagged strata
PLAN_FILE = "audit_sample.json"
ESTIMATE_FILE = "estimate.json"
DRAWS = 20_000
SEED = 20_260_127


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


def sample(run_dir: str | Path, n: int, out: str | Path, seed: int = 0) -> dict:
    """Draw about `n` rows for people to label, write them to `out` (JSON Lines) and the plan to
    RUN/audit_sample.json; returns the plan."""
    if n < 1:
        raise UsageError(f"--n must be at least 1 (got {n})")
    run = _run(run_dir)
    strata, frames = _strata(run)
    sizes = allocate(n, [len(frame) for frame in frames])
    rows: list[dict] = []
    for stratum, frame, size in zip(strata, frames, sizes):
        order = np.argsort([doc_hash(f"{d}#{i}", seed) for d, i in zip(frame["doc_id"], frame["passage_index"])], kind="stable")
        stratum.frame, stratum.drawn = len(frame), size
        rows += [_sample_row(r, stratum) for r in frame[order[:size].tolist()].iter_rows(named=True)]
    lines = [json.dumps({**{k: v for k, v in r.items() if k != "f"}, "label": None}, ensure_ascii=False) for r in rows]
    write_text_atomic(out, "".join(line + "\n" for line in lines))
    plan = {
        "schema_version": SCHEMA_VERSION,
        "file": str(Path(out).resolve()),
        "n": n,
        "seed": seed,
        "strata": [asdict(s) for s in strata],
        "rows": [{k: r[k] for k in ("doc_id", "passage_index", "stratum", "model_label", "f")} for r in rows],
    }
    write_json_atomic(run.root / PLAN_FILE, plan)
    return plan


def allocate(n: int, capacities: list[int]) -> list[int]:
    """Equal allocation across strata, a stratum never getting more than it holds; what a small stratum cannot
    take goes to the others. Equal, not proportional: the small strata (high scores) decide precision, the large
    ones (low scores) decide how much the model misses, and both need enough labels."""
    sizes = [0] * len(capacities)
    left = n
    order = sorted(range(len(capacities)), key=lambda i: capacities[i])
    for position, i in enumerate(order):
        sizes[i] = min(capacities[i], left // (len(order) - position))
        left -= sizes[i]
    return sizes


def _run(run_dir: str | Path) -> RunDir:
    run = RunDir(Path(run_dir))
    if not run.summary.is_file():
        raise UsageError(f"{run.root} is not a finished run directory (no summary.json); run `corpus-audit scan` first")
    return run


def _unit_stats(run: RunDir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run.units_dir.glob("*.json"))]


def _read_parquet(path: Path) -> pl.DataFrame:
    """A Parquet file, or a directory of them (the contract allows both for passages.parquet)."""
    return pl.read_parquet(path / "*.parquet" if path.is_dir() else path)


def _strata(run: RunDir) -> tuple[list[Stratum], list[pl.DataFrame]]:
    """The strata with their population sizes and score means, and the rows each can be sampled from."""
    stats = _unit_stats(run)
    units = [s["unit"] for s in stats]
    if not units:
        raise UsageError(f"{run.units_dir} holds no finished unit of work; rerun `corpus-audit scan` to complete the run")
    flagged = _read_parquet(run.passages)
    strata: list[Stratum] = []
    frames: list[pl.DataFrame] = []
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
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

    rejected = sum(s["documents_sampled"] - s["documents_gated"] for s in stats)
    strata.append(Stratum("gate_rejected", "document", rejected, {**{L: 0.0 for L in AI_LABELS}, "no_ai": 1.0}))
    frames.append(_bottom_k_frame(run, units, "gate_rejected", SAMPLE_REJECTED))
    # A label line names its row by (doc_id, passage_index): where a corpus repeats an id, its first row stays.
    return strata, [f.unique(subset=["doc_id", "passage_index"], keep="first", maintain_order=True) for f in frames]


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
    document = stratum.unit == "document"
    scores = None if document else {L: float(row[f"p_{L}"]) for L in LABELS}
    return {
        "doc_id": row["doc_id"],
        "passage_index": None if document else int(row["passage_index"]),
        "stratum": stratum.name,
        "model_label": row["label"],
        "scores": scores,
        "text": row["text"],
        "shard": row["shard"],
        "row": row["row"],
        "url": row["url"],
        "char_start": row["char_start"],
        "char_end": row["char_end"],
        # The model's probabilities as PPI uses them; a document the gate passed over is no_ai by the tool.
        "f": scores or {**{L: 0.0 for L in AI_LABELS}, "no_ai": 1.0},
    }


# ----------------------------------------------------------------------------------------------- estimate


def estimate(run_dir: str | Path, labels_file: str | Path) -> dict:
    """Prevalence from the labelled audit sample; writes RUN/estimate.json atomically and returns its content."""
    run = RunDir(Path(run_dir))
    try:
        plan = json.loads((run.root / PLAN_FILE).read_text())
    except FileNotFoundError:
        raise UsageError(f"{run.root / PLAN_FILE} is missing: draw the audit sample first with "
                         f"`corpus-audit sample {run.root} --n N --out FILE`") from None
    human, agreement = settled_labels(labels_file, plan)  # None where unlabelled or disputed: left out
    strata = [Stratum(**s) for s in plan["strata"]]
    rows = plan["rows"]
    by_stratum = {s.name: [i for i, r in enumerate(rows) if r["stratum"] == s.name and human[i] is not None]
                  for s in strata}
    y = np.array([[h == L for L in LABELS] for h in human], dtype=np.float64).reshape(len(rows), len(LABELS))
    f = np.array([[r["f"][L] for L in LABELS] for r in rows], dtype=np.float64).reshape(len(rows), len(LABELS))

    result_labels = {}
    for j, L in enumerate(LABELS):
        units = {}
        for unit, key in (("passage", "passages"), ("document", "gate_rejected_documents")):
            group = [s for s in strata if s.unit == unit and s.population > 0]
            if not group:
                continue
            parts = [(s, y[by_stratum[s.name], j], f[by_stratum[s.name], j]) for s in group]
            units[key] = _unit_estimates(parts, L)
        result_labels[L] = units
    result = {
        "schema_version": SCHEMA_VERSION,
        "labels_file": str(Path(labels_file).resolve()),
        "labelled": sum(h is not None for h in human),
        "sample_rows": len(rows),
        "agreement": agreement,
        "populations": {
            "passages": "passages of gate-passed documents (flagged bands + gated_no_ai strata)",
            "gate_rejected_documents": "documents the gate passed over, each labelled as a whole",
        },
        "labels": result_labels,
        "strata": [_stratum_report(s, [human[i] for i in by_stratum[s.name]], [rows[i] for i in by_stratum[s.name]])
                   for s in strata],
    }
    write_json_atomic(run.root / ESTIMATE_FILE, result)
    return result


def _unit_estimates(parts: list[tuple[Stratum, np.ndarray, np.ndarray]], label: str) -> dict:
    """Both estimators over the strata of one unit; the stratified one is the headline (it needs no model)."""
    stratified = stratified_estimate([(s.population, yh) for s, yh, _ in parts])
    ppi = ppi_estimate([(s.population, yh, fh, s.score_means[label]) for s, yh, fh in parts])
    return {**{k: stratified[k] for k in ("estimate", "ci95", "method")}, "estimators": {"stratified": stratified, "ppi": ppi}}


def stratified_estimate(strata: list[tuple[int, np.ndarray]], draws: int = DRAWS, seed: int = SEED) -> dict:
    """Design-based share: sum of N_h x (labelled share in stratum h) over sum of N_h. Interval: Monte Carlo of
    the stratum totals, the labelled rows as they are plus the unlabelled rest of each stratum drawn binomially
    at a rate from its Clopper-Pearson confidence distribution (Beta(y, n-y+1) for the lower limit, Beta(y+1,
    n-y) for the upper). A stratum whose sample holds no positive still adds the uncertainty it should, one
    positive in a small sample does not make a rare stratum look common, and a fully labelled stratum adds none."""
    rng = np.random.default_rng(seed)
    total = sum(N for N, _ in strata)
    low, high = np.zeros(draws), np.zeros(draws)
    point = 0.0
    unlabelled = []
    for N, yh in strata:
        n, k = len(yh), float(np.sum(yh))
        rest = max(N - n, 0)
        low += k + rng.binomial(rest, beta_draws(rng, k, n - k + 1, draws))
        high += k + rng.binomial(rest, beta_draws(rng, k + 1, n - k, draws))
        if n:
            point += N * k / n
        else:
            unlabelled.append(N)
    ci95 = [float(np.quantile(low, 0.025)) / total, float(np.quantile(high, 0.975)) / total]
    out = {"estimate": None if unlabelled else point / total, "ci95": ci95,
           "method": "stratified (design-based; Clopper-Pearson finite-population Monte Carlo interval)"}
    if unlabelled:
        out["message"] = f"{len(unlabelled)} stratum/strata with {sum(unlabelled)} items have no labelled row"
    return out


def ppi_estimate(strata: list[tuple[int, np.ndarray, np.ndarray, float]]) -> dict:
    """Prediction-powered inference, stratified and power-tuned (PPI++): in each stratum, lambda x the model's
    mean probability over all its items, plus the mean of (human label - lambda x model probability) over the
    labelled ones. lambda = cov(label, probability) / ((1 + n/N) var(probability)), clipped to [0, 1], takes
    the model only as far as it tracks people's labels; with lambda 0 it is the stratum's labelled share, so a
    stratum where people found nothing cannot pull the estimate below zero. Normal interval from the
    corrections' spread; where a stratum's labels are all alike, the spread cannot show what was not seen, so
    the Wilson interval of its rate sets the spread when wider."""
    total = sum(N for N, *_ in strata)
    point, variance = 0.0, 0.0
    for N, yh, fh, mean_f in strata:
        n = len(yh)
        if n == 0:
            return {"estimate": None, "ci95": [0.0, 1.0], "method": "ppi (prediction-powered inference, stratified)",
                    "message": "a stratum has no labelled row"}
        k = float(yh.sum())
        spread_f = float(np.var(fh, ddof=1)) if n > 1 else 0.0
        lam = float(np.clip(np.cov(yh, fh)[0, 1] / ((1 + n / N) * spread_f), 0.0, 1.0)) if spread_f > 0 else 0.0
        corrected = yh - lam * fh
        spread = float(np.var(corrected, ddof=1)) / n if n > 1 else 0.0
        if k in (0.0, float(n)):
            lo, hi = wilson(k, n).ci95
            spread = max(spread, (max(hi - k / n, k / n - lo) / Z95) ** 2)
        w = N / total
        point += w * (lam * mean_f + float(np.mean(corrected)))
        variance += w * w * spread * max(0.0, 1.0 - n / N)
    half = Z95 * np.sqrt(variance)
    return {"estimate": min(max(point, 0.0), 1.0), "ci95": [max(0.0, float(point - half)), min(1.0, float(point + half))],
            "method": "ppi++ (prediction-powered inference, stratified, power-tuned; normal interval)"}


def _stratum_report(stratum: Stratum, human: list[str], rows: list[dict]) -> dict:
    """What the labels say about one stratum: the human label counts, and how often the model's label was right."""
    model = [r["model_label"] for r in rows]
    precision = {}
    for L in LABELS:
        mine = [h for h, m in zip(human, model) if m == L]
        if mine:
            agree = sum(h == L for h in mine)
            w = wilson(agree, len(mine))
            precision[L] = {"labelled": len(mine), "agree": agree, "precision": agree / len(mine), "ci95": list(w.ci95)}
    return {
        "name": stratum.name, "unit": stratum.unit, "population": stratum.population, "labelled": len(human),
        "human_labels": {L: sum(h == L for h in human) for L in LABELS},
        "model_precision": precision,
    }


def render(result: dict) -> str:
    """A plain-text view of estimate.json for the terminal."""

    def fmt(entry: dict) -> str:
        est = "n/a" if entry["estimate"] is None else f"{entry['estimate']:.4%}"
        return f"{est} [{entry['ci95'][0]:.4%}, {entry['ci95'][1]:.4%}]"

    lines = [f"{result['labelled']} labelled rows"]
    for L, units in result["labels"].items():
        for unit, entry in units.items():
            e = entry["estimators"]
            lines.append(f"  {L:<14} {unit:<24} stratified {fmt(e['stratified'])}   ppi {fmt(e['ppi'])}")
    lines.append("strata (population / labelled; model precision where the model gave that label):")
    for s in result["strata"]:
        prec = ", ".join(f"{L} {p['agree']}/{p['labelled']}" for L, p in s["model_precision"].items())
        lines.append(f"  {s['name']:<32} {s['population']:>10,} / {s['labelled']:<5} {prec}")
    return "\n".join(lines)
