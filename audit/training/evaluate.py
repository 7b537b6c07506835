"""Measure a classifier on labelled passages and record the figures in its model.json.

`evaluate` runs the scan's decision (split, gate, classify) on labelled data and the model alone beside it; nothing
is fitted. `compute_metrics` gives precision, recall, F1, the confusion matrix, misaligned_ai PR-AUC and calibration
error, with slices per source, drawing stratum and misaligned sub-type; `record_evaluation` stores them in model.json
for the model card and the estimators; `agent_run_flags` counts flagged real agent runs per experimenters' tag.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from audit.atomic import write_json_atomic
from audit.labels import BENIGN, LABELS
from audit.passages import split_passages
from audit.tagger import PassageTagger, as_tagger, file_sha256, info_path, tag_passages

from .examples import Example, load_examples


@dataclass
class Metrics:
    """Evaluation figures; `to_json` is what `evaluate --json` writes and model.json stores."""

    n: int
    confusion: list[list[int]]  # rows: true label, columns: predicted label, both in LABELS order
    per_label: dict[str, dict[str, float]]
    accuracy: float
    benign_vs_no_ai_accuracy: float | None
    misaligned_pr_auc: float | None
    ece: float
    by_source: dict[str, dict] = field(default_factory=dict)
    by_stratum: dict[str, dict] = field(default_factory=dict)  # per drawing design: "web" gives the web false-flag rate
    recall_by_subtype: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    error_types: list[dict] = field(default_factory=list)  # mistakes counted by (source, true, predicted)
    sweep: list[dict] = field(default_factory=list)  # misaligned_ai precision and recall at other thresholds
    data_sha256: dict[str, str] = field(default_factory=dict)  # which data files, in which version
    # The figures above are of the scan's decision (`evaluate`). These split it for the estimators (sensitivity
    # and gate recall per labelled passage for documents, per piece for the other units; false flags per piece),
    # and add the model's own figures without the gate or the splitting.
    gate_passed: dict[str, int] = field(default_factory=dict)  # labelled passages with a piece that names AI
    confusion_gated: list[list[int]] = field(default_factory=list)  # those passages: true vs the scan's label
    # their gated pieces: the passage's true label vs the piece's
    confusion_pieces: list[list[int]] = field(default_factory=list)
    pieces: dict[str, int] = field(default_factory=dict)  # all pieces (gated or not) of the passages of each label
    model_alone: dict = field(default_factory=dict)
    # The same decision figures per drawing stratum of the labelled data (web sample, enriched content, ...), in the
    # shape the estimators read, so an interval can span the error rates of every stratum (`ErrorRates.strata`).
    strata: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("confusion", "confusion_gated", "confusion_pieces"):
            if data[key]:
                data[key] = {"labels": list(LABELS), "matrix": data[key]}
        return data


def threshold_sweep(p_misaligned: np.ndarray, is_misaligned: np.ndarray) -> list[dict]:
    """Precision and recall of misaligned_ai at a few thresholds, for people choosing `export --min-score`."""
    rows = []
    for threshold in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        flagged, tp = flagged_and_hits(p_misaligned, is_misaligned, threshold)
        rows.append({
            "threshold": threshold,
            "precision": round(_ratio(tp, flagged), 4),
            "recall": round(_ratio(tp, is_misaligned.sum()), 4),
        })
    return rows


def flagged_and_hits(p_misaligned: np.ndarray, is_misaligned: np.ndarray, threshold: float) -> tuple[int, int]:
    """How many passages reach the threshold, and how many of those are truly misaligned_ai."""
    flagged = p_misaligned >= threshold
    return int(flagged.sum()), int(np.sum(flagged & is_misaligned))


def evaluate(data_paths: Iterable[str | Path], model: PassageTagger | str | Path | None = None) -> Metrics:
    """Measure the scan's decision on labelled data (default model: the shipped one), and the model alone beside
    it; nothing is fitted.

    The scan cuts text into its own passages (`split_passages`), gates each and classifies those that name AI
    (`tagger.tag_passages`). A labelled passage is scored the same way, as a small document: its label is the
    first of LABELS that one of its pieces got (the labelling guide's precedence: misaligned before aligned before
    neutral before no_ai) and its score is its most misaligned piece's. The estimators also need the false-flag
    rate per piece, which the negatives give exactly: every piece of a passage labelled neutral or no_ai is
    neither misaligned nor aligned (else the passage would carry that label)."""
    tagger = as_tagger(model)
    data_paths = [Path(p) for p in data_paths]
    examples = load_examples(data_paths)
    texts = [e.text for e in examples]
    spans = [split_passages(text) or [(0, len(text))] for text in texts]
    owner = np.repeat(np.arange(len(texts)), [len(s) for s in spans])
    pieces = [text[a:b] for text, doc_spans in zip(texts, spans, strict=True) for a, b in doc_spans]
    piece_probs, piece_labels, gated = tag_passages(tagger, pieces)
    labels = np.full(len(texts), len(LABELS) - 1, dtype=np.int64)
    np.minimum.at(labels, owner, piece_labels.astype(np.int64))
    order = np.lexsort((piece_probs[:, 0], owner))  # by passage, then by p_misaligned_ai
    deciding = order[np.r_[owner[order][1:] != owner[order][:-1], True]]  # each passage's most misaligned piece
    reached = np.zeros(len(texts), dtype=bool)
    np.logical_or.at(reached, owner, gated)

    metrics = compute_metrics(examples, piece_probs[deciding], labels)
    truth = np.array([LABELS.index(e.label) for e in examples], dtype=np.int64)
    decision = _Decision(truth, labels, reached, owner, gated, piece_labels.astype(np.int64))
    for key, value in decision.figures(np.ones(len(examples), dtype=bool)).items():
        if key not in ("confusion", "per_label"):  # compute_metrics has them already
            setattr(metrics, key, value)
    strata = sorted({s for e in examples for s in e.drawn_in})
    if strata != ["content"]:
        metrics.strata = {name: {
            **{key: _wrap(key, value) for key, value in decision.figures(
                np.array([name in e.drawn_in for e in examples])).items()},
            "false_positives_apply": name in STRATA_FALSE_POSITIVES,
            "sensitivity_applies": name in STRATA_SENSITIVITY,
        } for name in strata}
    alone = tagger.predict(texts)
    alone_confusion = confusion_matrix(truth, tagger.decide(alone))
    metrics.model_alone = {
        "per_label": per_label_scores(alone_confusion),
        "benign_vs_no_ai_accuracy": benign_vs_no_ai_accuracy(alone_confusion),
        "misaligned_pr_auc": average_precision(alone[:, 0], truth == 0),
        "ece": expected_calibration_error(alone, truth),
    }
    metrics.data_sha256 = {path.name: file_sha256(path) for path in data_paths}
    return metrics


@dataclass
class _Decision:
    """The scan's decision on labelled passages, kept so its gate figures can be counted for any subset."""

    truth: np.ndarray  # per labelled passage
    labels: np.ndarray  # per labelled passage: its pieces' first label by precedence
    reached: np.ndarray  # per labelled passage: some piece passed the gate
    owner: np.ndarray  # per piece: its labelled passage
    gated: np.ndarray  # per piece
    piece_labels: np.ndarray  # per piece

    def figures(self, rows: np.ndarray) -> dict:
        """What the estimators read (`ErrorRates.from_evaluation`) for the labelled passages `rows` selects."""
        truth, reached, labels = self.truth[rows], self.reached[rows], self.labels[rows]
        pieces = rows[self.owner]
        gated = pieces & self.gated
        confusion = confusion_matrix(truth, labels)
        return {
            "gate_passed": {label: int(reached[truth == i].sum()) for i, label in enumerate(LABELS)},
            "confusion_gated": confusion_matrix(truth[reached], labels[reached]).tolist(),
            "confusion_pieces": confusion_matrix(self.truth[self.owner[gated]], self.piece_labels[gated]).tolist(),
            "pieces": {label: int(np.sum(self.truth[self.owner[pieces]] == i)) for i, label in enumerate(LABELS)},
            "confusion": confusion.tolist(),
            "per_label": per_label_scores(confusion),
        }


# Which error rates each drawing stratum (realdata.STRATA) stands for in the estimators (`ErrorRates.strata`). The
# uniform web samples give false-flag rates (their few positives say little about sensitivity); the new sources'
# essays, fiction and agent logs give sensitivity (their negatives are not a web corpus's); "content", the first
# dev set of news, plots and web pages rich in benign AI text, gives both.
STRATA_FALSE_POSITIVES = frozenset({"web", "web_docs", "web_near", "content"})
STRATA_SENSITIVITY = frozenset({"content", "new_gated", "new_near", "new_far", "new_ungated"})


def _wrap(key: str, value):
    """Confusion matrices carry their label order in JSON (as Metrics.to_json writes them)."""
    return {"labels": list(LABELS), "matrix": value} if key.startswith("confusion") else value


AGENT_RUNS = "palisade_robot_shutdown_logs"  # real agent runs, each tagged by its experimenters (meta.behaviour)


def agent_run_flags(model: PassageTagger | str | Path | None = None) -> dict[str, dict[str, int]]:
    """Whole dev-side agent runs through the scan's decision: per experimenters' behaviour tag, how many runs hold a
    passage the scan calls misaligned_ai. Runs that resisted shutdown should be flagged far more often than runs
    that allowed it; a bag of words that only hears "shutdown" flags both alike."""
    from . import realdata

    tagger = as_tagger(model)
    root = realdata.data_root()
    texts, meta = realdata.READERS[AGENT_RUNS](root), realdata.new_source_meta(AGENT_RUNS, root)
    table: dict[str, dict[str, int]] = {}
    for key in sorted(k for k in texts if realdata.is_dev(AGENT_RUNS, k)):
        text = texts[key]
        _, labels, _ = tag_passages(tagger, [text[a:b] for a, b in split_passages(text)])
        row = table.setdefault(meta[key].get("behaviour", "untagged"), {"runs": 0, "flagged": 0})
        row["runs"] += 1
        row["flagged"] += int(np.any(labels == 0))
    return dict(sorted(table.items()))


def compute_metrics(examples: list[Example], probs: np.ndarray, predicted: np.ndarray) -> Metrics:
    """All evaluation figures from true labels (in the examples), probabilities and decided label indices."""
    truth = np.array([LABELS.index(e.label) for e in examples], dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    confusion = confusion_matrix(truth, predicted)
    return Metrics(
        n=len(examples),
        confusion=confusion.tolist(),
        per_label=per_label_scores(confusion),
        accuracy=_ratio(np.trace(confusion), confusion.sum()),
        benign_vs_no_ai_accuracy=benign_vs_no_ai_accuracy(confusion),
        misaligned_pr_auc=average_precision(probs[:, 0], truth == 0),
        ece=expected_calibration_error(probs, truth),
        by_source=_by_source(examples, truth, predicted),
        by_stratum=_by_stratum(examples, truth, predicted),
        recall_by_subtype=_recall_by_subtype(examples, predicted),
        errors=_worst_errors(examples, probs, truth, predicted),
        error_types=_error_types(examples, truth, predicted),
        sweep=threshold_sweep(probs[:, 0], truth == 0),
    )


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts with true labels as rows and predicted labels as columns."""
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def per_label_scores(confusion: np.ndarray) -> dict[str, dict[str, float]]:
    scores = {}
    for index, label in enumerate(LABELS):
        tp = confusion[index, index]
        precision = _ratio(tp, confusion[:, index].sum())
        recall = _ratio(tp, confusion[index, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        scores[label] = {"precision": precision, "recall": recall, "f1": f1, "support": int(confusion[index].sum())}
    return scores


def benign_vs_no_ai_accuracy(confusion: np.ndarray) -> float | None:
    """Among passages truly benign_ai (aligned or neutral) or no_ai, the share given the right coarse label.

    A prediction of misaligned_ai counts as wrong for both; aligned and neutral count as one label.
    """
    benign = [LABELS.index(label) for label in BENIGN]
    no_ai = LABELS.index("no_ai")
    total = confusion[benign + [no_ai], :].sum()
    if total == 0:
        return None
    right = confusion[np.ix_(benign, benign)].sum() + confusion[no_ai, no_ai]
    return float(right / total)


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision (precision at each positive, ranked by score)."""
    positive = np.asarray(positive, dtype=bool)
    if not positive.any():
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = positive[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].sum() / hits.sum())


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over 10 equal-width confidence bins."""
    if len(truth) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.sum() * abs(float(confidence[members].mean()) - float(correct[members].mean()))
    return gap / len(truth)


def _slice_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    """The issue-level figures of one slice of the data (a source, a stratum): misaligned_ai precision, recall and
    false-flag rate (share of the other passages called misaligned_ai), and benign vs no_ai accuracy."""
    confusion = confusion_matrix(truth, predicted)
    misaligned = per_label_scores(confusion)["misaligned_ai"]
    negatives = truth != 0
    return {
        "n": int(truth.size),
        "misaligned_ai": int(np.sum(truth == 0)),
        "accuracy": float(np.mean(truth == predicted)),
        "misaligned_precision": misaligned["precision"],
        "misaligned_recall": misaligned["recall"],
        "false_flag_rate": _ratio(int(np.sum(predicted[negatives] == 0)), int(negatives.sum())),
        "benign_vs_no_ai_accuracy": benign_vs_no_ai_accuracy(confusion),
    }


def _by_source(examples: list[Example], truth: np.ndarray, predicted: np.ndarray) -> dict[str, dict]:
    sources = np.array([e.source for e in examples])
    return {source: _slice_scores(truth[sources == source], predicted[sources == source])
            for source in sorted(set(sources.tolist()))}


def _by_stratum(examples: list[Example], truth: np.ndarray, predicted: np.ndarray) -> dict[str, dict]:
    """Figures per drawing design (realdata.STRATA); "content" for records chosen for what they hold."""
    table = {}
    for stratum in sorted({s for e in examples for s in e.drawn_in}):
        rows = np.array([stratum in e.drawn_in for e in examples])
        table[stratum] = _slice_scores(truth[rows], predicted[rows])
    return table


def _recall_by_subtype(examples: list[Example], predicted: np.ndarray) -> dict[str, dict[str, int]]:
    """How many misaligned_ai passages of each kind (realdata.SUBTYPES) the decision found."""
    table: dict[str, dict[str, int]] = {}
    for example, label in zip(examples, predicted, strict=True):
        if example.label == "misaligned_ai" and example.subtype:
            row = table.setdefault(example.subtype, {"n": 0, "found": 0})
            row["n"] += 1
            row["found"] += int(label == 0)
    return dict(sorted(table.items()))


def _error_types(examples: list[Example], truth: np.ndarray, predicted: np.ndarray) -> list[dict]:
    """Mistakes counted by source, true and predicted label, most frequent first (ties in that order)."""
    counts = Counter(
        (e.source, LABELS[t], LABELS[p]) for e, t, p in zip(examples, truth, predicted, strict=True) if t != p
    )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"source": s, "true": t, "predicted": p, "count": n} for (s, t, p), n in ranked]


def _worst_errors(examples, probs, truth, predicted, limit: int = 200) -> list[dict]:
    """The most confident mistakes, named by source and key (no text: it may be third-party)."""
    wrong = np.flatnonzero(truth != predicted)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:limit]
    return [
        {
            "origin": examples[i].origin,
            "source": examples[i].source,
            "key": examples[i].key,
            "true": LABELS[truth[i]],
            "predicted": LABELS[predicted[i]],
            "p_predicted": round(float(probs[i, predicted[i]]), 4),
            "p_true": round(float(probs[i, truth[i]]), 4),
        }
        for i in wrong
    ]


def recorded_figures(metrics: Metrics) -> dict:
    """What model.json keeps of an evaluation (the error list stays out)."""
    data = metrics.to_json()
    data.pop("errors")
    return data


def record_evaluation(model_path: str | Path, name: str, metrics: Metrics | dict) -> dict:
    """Store an evaluation (Metrics, or a table such as agent_run_flags') in model.json under evaluation.<name>."""
    path = info_path(Path(model_path))
    info = json.loads(path.read_text(encoding="utf-8"))
    info.setdefault("evaluation", {})[name] = recorded_figures(metrics) if isinstance(metrics, Metrics) else metrics
    write_json_atomic(path, info)
    return info


def format_metrics(metrics: Metrics) -> str:
    """A plain-text table: per-label precision/recall/F1, the confusion matrix and the summary figures."""
    lines = [f"{'label':<15}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for label, scores in metrics.per_label.items():
        lines.append(
            f"{label:<15}{scores['precision']:>10.3f}{scores['recall']:>10.3f}{scores['f1']:>10.3f}{scores['support']:>9d}"
        )
    header = " " * 15 + "".join(f"{name[:12]:>14}" for name in LABELS)
    lines += ["", "confusion (rows: true, columns: predicted)", header]
    for label, row in zip(LABELS, metrics.confusion, strict=True):
        lines.append(f"{label:<15}" + "".join(f"{count:>14d}" for count in row))
    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines += [
        "",
        f"passages                      {metrics.n}",
        f"accuracy                      {show(metrics.accuracy)}",
        f"benign_ai vs no_ai accuracy   {show(metrics.benign_vs_no_ai_accuracy)}",
        f"misaligned_ai PR-AUC          {show(metrics.misaligned_pr_auc)}",
        f"expected calibration error    {show(metrics.ece)}",
    ]
    if metrics.model_alone:
        alone, support = metrics.model_alone, metrics.per_label
        mis = alone["per_label"]["misaligned_ai"]
        lines += [
            "",
            "The figures above are the scan's decision: each labelled passage is cut into the scan's passages, those",
            "that name no AI term are no_ai unseen by the model, and the passage gets its pieces' first label by "
            "precedence.",
            "labelled passages with a piece the gate lets through: "
            + ", ".join(f"{L} {metrics.gate_passed[L]}/{support[L]['support']}" for L in LABELS),
            f"model alone: misaligned_ai precision {show(mis['precision'])} recall {show(mis['recall'])}, "
            f"PR-AUC {show(alone['misaligned_pr_auc'])}, "
            f"benign_ai vs no_ai accuracy {show(alone['benign_vs_no_ai_accuracy'])}",
        ]
    return "\n".join(lines)

