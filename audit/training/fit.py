"""Train, calibrate, evaluate and apply the passage classifier.

Training data are JSON Lines files of two kinds, told apart by their first record:
- passages written for the project: {"text", "label", "source", "note"};
- label records of third-party text (classifiers/labels/*.jsonl): {"source", "key", "span", "label", "note"},
  whose text `audit.training.realdata` reads from ../shared/data at run time.

`train` fits a fastText model (one thread and a fixed seed, so the same data and options give the same model),
fits a temperature, per-label biases and the weights of the risk-word features (`audit.risk_words`) on
out-of-fold probabilities (k-fold on the training data) and chooses the misaligned_ai threshold on those same
out-of-fold probabilities. The development set is never used for fitting: `evaluate` only measures it, and
`record_evaluation` stores the figures in model.json for the model card and estimators.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from audit import risk_words
from audit.atomic import write_atomic, write_json_atomic
from audit.errors import UsageError
from audit.gate import gate
from audit.jsonl import read_objects
from audit.labels import BENIGN, LABELS
from audit.passages import split_passages
from audit.tagger import Tagger, calibrate, decide_labels, file_sha256, info_path, normalize, tag_passages

MODEL_FORMAT_VERSION = 1
_PREFIX = "__label__"


@dataclass(frozen=True)
class TrainOptions:
    """fastText hyper-parameters and the calibration set-up. Defaults are the shipped model's (MODEL_CARD.md)."""

    dim: int = 16
    epoch: int = 25
    lr: float = 0.5
    word_ngrams: int = 2
    minn: int = 0
    maxn: int = 0
    loss: str = "softmax"
    bucket: int = 200_000
    min_count: int = 1
    folds: int = 5
    seed: int = 0
    quantize: bool = True  # product-quantise and prune (the .ftz format) when the output name ends in .ftz
    quantize_cutoff: int = 200_000  # words and n-gram buckets kept by quantisation
    risk_words: bool = True  # calibrate with the risk-word features of audit.risk_words beside fastText's probabilities
    real_weight: int = 1  # each real, read passage counts this many times in the fit (written ones once)


@dataclass
class Example:
    text: str
    label: str
    source: str  # where it comes from: "written" (the project's own passages) or the realdata source name
    key: str = ""  # the realdata key, or "<line>" for written passages
    origin: str = ""  # the data file's name
    note: str = ""
    subtype: str | None = None  # kind of misaligned_ai text (realdata.SUBTYPES), where the label file gives it
    strata: tuple[str, ...] = ()  # how the record was drawn (realdata.STRATA); () for records chosen by content

    @property
    def drawn_in(self) -> tuple[str, ...]:
        """The strata this record was drawn in; "content" for records chosen for what they hold."""
        return self.strata or ("content",)

    @property
    def dev_side(self) -> bool:
        """A third-party passage on the development side of the split: never used to fit anything."""
        from . import realdata

        return self.source != "written" and realdata.is_dev(self.source, self.key)

    @property
    def real_and_read(self) -> bool:
        """Third-party text labelled by a person reading it (not written by us, not labelled by a rule)."""
        return self.source != "written" and not self.note.startswith("rule:")


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
    confusion_pieces: list[list[int]] = field(default_factory=list)  # their gated pieces: passage's true label vs piece's
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


# ---------------------------------------------------------------------------------------------- reading data


def load_examples(paths: Iterable[str | Path]) -> list[Example]:
    """Read training or evaluation files (passages written for the project, or label records of real text)."""
    examples: list[Example] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise UsageError(f"data file {path} does not exist")
        first = _first_record(path)
        if first is None:
            raise UsageError(f"data file {path} holds no records")
        examples.extend(_read_text_file(path) if "text" in first else _read_label_file(path))
    return examples


def _first_record(path: Path) -> dict | None:
    with path.open(encoding="utf-8") as handle:
        return next((record for _, record in read_objects(handle, lambda n: f"{path}:{n}")), None)


def _read_text_file(path: Path) -> list[Example]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line_no, record in read_objects(handle, lambda n: f"{path}:{n}"):
            where = f"{path}:{line_no}"
            text, label = record.get("text"), record.get("label")
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"{where}: 'text' must be a non-empty string")
            if label not in LABELS:
                raise UsageError(f"{where}: label {label!r} is not one of {list(LABELS)}")
            examples.append(Example(text, label, "written", str(line_no), path.name, str(record.get("note", ""))))
    return examples


def _read_label_file(path: Path) -> list[Example]:
    from . import realdata

    try:
        resolved = realdata.resolve(realdata.load_records(path))
    except FileNotFoundError as error:
        raise UsageError(f"{path} holds label records whose text lives in the shared data: {error}") from None
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from None
    return [Example(r["text"], r["label"], r["source"], r["key"], path.name, r["note"], r["subtype"], r["strata"])
            for r in resolved]


def deduplicate(examples: list[Example]) -> tuple[list[Example], int]:
    """Keep the first of identical passages; drop every copy of a passage given two different labels."""
    labels_of: dict[str, set[str]] = {}
    for example in examples:
        labels_of.setdefault(normalize(example.text).strip(), set()).add(example.label)
    seen: set[str] = set()
    kept, conflicting = [], 0
    for example in examples:
        key = normalize(example.text).strip()
        if len(labels_of[key]) > 1:
            conflicting += 1
        elif key not in seen:
            seen.add(key)
            kept.append(example)
    return kept, conflicting


# ---------------------------------------------------------------------------------------------- fitting


def _fit(examples: list[Example], options: TrainOptions, workdir: Path, *, quantize: bool = False):
    """One fastText model; the lines are shuffled with the seed so label-sorted files do not bias SGD."""
    import fasttext

    lines = [f"{_PREFIX}{e.label} {normalize(e.text)}" for e in examples
             for _ in range(options.real_weight if e.real_and_read else 1)]
    random.Random(options.seed).shuffle(lines)
    train_file = workdir / "train.txt"
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = fasttext.train_supervised(
        input=str(train_file),
        dim=options.dim,
        epoch=options.epoch,
        lr=options.lr,
        wordNgrams=options.word_ngrams,
        minn=options.minn,
        maxn=options.maxn,
        loss=options.loss,
        bucket=options.bucket,
        minCount=options.min_count,
        seed=options.seed,
        thread=1,  # several threads update the weights in a racy order: only one thread is deterministic
        verbose=0,
    )
    if quantize:
        model.quantize(input=str(train_file), qnorm=True, retrain=True, cutoff=options.quantize_cutoff, thread=1)
    return model


def _raw_probs(model, texts: list[str]) -> np.ndarray:
    """Uncalibrated probabilities of a freshly trained model, with the Tagger's own code path."""
    return Tagger(model=model, path=Path("<memory>"), sha256="", info={}).raw_predict(texts)


def fold_of(example: Example, folds: int, seed: int) -> int:
    """A passage's cross-validation fold, from a hash so the split does not depend on file order.

    Real passages are grouped by their document (the dev split's unit), so a story's or a transcript's other
    passages never sit in the fold that scores it; written passages are hashed by their text.
    """
    from . import realdata

    unit = normalize(example.text).strip() if example.source == "written" else realdata.split_unit(example.source, example.key)
    digest = hashlib.md5(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % folds


def out_of_fold_probs(examples: list[Example], options: TrainOptions, workdir: Path) -> np.ndarray:
    """Raw probabilities of each passage from a model that did not see it (k-fold)."""
    folds = np.array([fold_of(e, options.folds, options.seed) for e in examples])
    probs = np.zeros((len(examples), len(LABELS)), dtype=np.float32)
    for fold in range(options.folds):
        held = np.flatnonzero(folds == fold)
        if held.size == 0:
            continue
        model = _fit([e for e, f in zip(examples, folds) if f != fold], options, workdir)
        probs[held] = _raw_probs(model, [examples[i].text for i in held])
    return probs


def fit_calibration(
    raw: np.ndarray, truth: np.ndarray, features: np.ndarray | None = None, steps: int = 3000, ridge: float = 1e-3
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Temperature T, per-label bias b and side-feature weights W minimising the negative log-likelihood of
    softmax(log p / T + b + W f) (`audit.tagger.calibrate`); W is None without features.

    A multinomial logistic regression on the log-probabilities with one shared slope (1/T), an intercept per label
    and, given features f (n, k), a weight per label and feature (with a small ridge penalty, so a feature that
    never varies keeps weight 0): convex, so plain full-batch gradient descent from T = 1, b = 0, W = 0 finds the
    optimum, deterministically.
    """
    logp = np.log(np.clip(raw, 1e-12, 1.0)).astype(np.float64)
    onehot = np.eye(len(LABELS))[truth]
    side = np.zeros((len(truth), 0)) if features is None else np.asarray(features, dtype=np.float64)
    slope, bias, weights = 1.0, np.zeros(len(LABELS)), np.zeros((len(LABELS), side.shape[1]))
    for _ in range(steps):
        logits = slope * logp + bias + side @ weights.T
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        residual = probs - onehot
        slope -= 0.05 * float(np.mean(np.sum(residual * logp, axis=1)))
        bias -= 0.5 * residual.mean(axis=0)
        weights -= 0.5 * (residual.T @ side / len(truth) + ridge * weights)
    slope = min(max(slope, 0.05), 20.0)
    fitted = None if features is None else np.round(weights - weights.mean(axis=0), 4)
    return round(1.0 / slope, 4), np.round(bias - bias.mean(), 4), fitted


def calibration_rows(examples: list[Example], min_rows: int = 200, min_misaligned: int = 20) -> tuple[np.ndarray, str]:
    """Which out-of-fold rows fit the temperature and the threshold, and how to say so in model.json.

    Real text read by people that passes the passage gate is what the model will meet in a scan (written
    passages are easier than real text), so those rows are used when there are enough of them; otherwise every row.
    """
    real = np.array([e.real_and_read for e in examples]) & gate([e.text for e in examples])
    misaligned = np.array([e.label == "misaligned_ai" for e in examples])
    if real.sum() >= min_rows and (real & misaligned).sum() >= min_misaligned:
        return np.flatnonzero(real), f"the {int(real.sum())} hand-labelled real passages that name AI (the scan's passage gate)"
    return np.arange(len(examples)), f"all {len(examples)} passages"


def choose_threshold(p_misaligned: np.ndarray, is_misaligned: np.ndarray) -> float:
    """The p_misaligned_ai threshold: half the best misaligned_ai F1 reached on out-of-fold predictions.

    For calibrated probabilities the F1-optimal threshold is half the optimal F1 (Lipton, Elkan and Naryanaswamy,
    "Thresholding classifiers to maximize F1 score", 2014). The best F1 is a stable figure; the threshold at which
    it is reached is not: F1 is flat over a wide range, and with some sixty real positives the argmax moved from
    0.32 to 0.44 when 120 more real negatives were labelled.
    """
    positives = int(is_misaligned.sum())
    best_f1 = 0.0
    for threshold in np.round(np.arange(0.10, 0.91, 0.01), 2):
        flagged, tp = _flagged_and_hits(p_misaligned, is_misaligned, threshold)
        best_f1 = max(best_f1, 2 * tp / max(flagged + positives, 1))
    return float(np.clip(round(best_f1 / 2, 2), 0.10, 0.90))


def threshold_sweep(p_misaligned: np.ndarray, is_misaligned: np.ndarray) -> list[dict]:
    """Precision and recall of misaligned_ai at a few thresholds, for people choosing `export --min-score`."""
    rows = []
    for threshold in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        flagged, tp = _flagged_and_hits(p_misaligned, is_misaligned, threshold)
        rows.append({
            "threshold": threshold,
            "precision": round(_ratio(tp, flagged), 4),
            "recall": round(_ratio(tp, is_misaligned.sum()), 4),
        })
    return rows


def _flagged_and_hits(p_misaligned: np.ndarray, is_misaligned: np.ndarray, threshold: float) -> tuple[int, int]:
    """How many passages reach the threshold, and how many of those are truly misaligned_ai."""
    flagged = p_misaligned >= threshold
    return int(flagged.sum()), int(np.sum(flagged & is_misaligned))


def train(data_paths: Iterable[str | Path], out: str | Path, options: TrainOptions | None = None) -> dict:
    """Train a model from labelled JSON Lines and write `out` (.bin, or quantised .ftz) plus its model.json.

    Returns the model.json dict. Third-party label records on the dev side of the split are never used.
    """
    options = options or TrainOptions()
    out = Path(out)
    if out.suffix not in (".bin", ".ftz"):
        raise UsageError(f"--out {out}: the model file name must end in .bin or .ftz (quantised)")
    data_paths = [Path(p) for p in data_paths]
    loaded = load_examples(data_paths)
    dev = [e.dev_side for e in loaded]
    examples, conflicting = deduplicate([e for e, on_dev in zip(loaded, dev) if not on_dev])
    dev_side = sum(dev)
    counts = Counter(e.label for e in examples)
    missing = [label for label in LABELS if counts[label] < options.folds]
    if missing:
        raise UsageError(f"training data need at least {options.folds} passages of each label; too few: {missing}")
    truth = np.array([LABELS.index(e.label) for e in examples])

    with tempfile.TemporaryDirectory(prefix="corpus-audit-train-") as tmp:
        workdir = Path(tmp)
        oof_raw = out_of_fold_probs(examples, options, workdir)
        fit_rows, fit_on = calibration_rows(examples)
        features = risk_words.risk_features([e.text for e in examples]) if options.risk_words else None
        temperature, bias, weights = fit_calibration(
            oof_raw[fit_rows], truth[fit_rows], None if features is None else features[fit_rows]
        )
        oof = calibrate(oof_raw, temperature, bias, weights, features)
        threshold = choose_threshold(oof[fit_rows, 0], truth[fit_rows] == 0)
        model = _fit(examples, options, workdir, quantize=options.quantize and out.suffix == ".ftz")
        write_atomic(out, lambda tmp_path: model.save_model(tmp_path))
    out.chmod(0o644)  # the temporary file was private; a model is meant to be shared

    decision = {
        "misaligned_ai_threshold": threshold,
        "otherwise": "argmax of the other three labels",
        "chosen_on": f"half the best misaligned_ai F1, {options.folds}-fold out-of-fold, {fit_on}",
        "sweep": threshold_sweep(oof[fit_rows, 0], truth[fit_rows] == 0),
    }
    info = {
        "version": MODEL_FORMAT_VERSION,
        "labels": list(LABELS),
        "model_file": out.name,
        "model_sha256": file_sha256(out),
        "normalization": "audit.tagger.normalize: punctuation split from words, digits to 0, lower case, one line",
        "calibration": {
            "method": "temperature, per-label bias and side-feature weights: softmax(log p / temperature + bias"
            + (" + weights . features)" if options.risk_words else ")"),
            "temperature": temperature,
            "bias": dict(zip(LABELS, map(float, bias))),
            "features": None if weights is None else {
                "name": risk_words.NAME,
                "version": risk_words.VERSION,
                "columns": list(risk_words.COLUMNS),
                "weights": {label: [float(w) for w in row] for label, row in zip(LABELS, weights)},
            },
            "fit_on": f"{options.folds}-fold out-of-fold, {fit_on}",
        },
        "decision": decision,
        "training": {
            "data_files": [p.name for p in data_paths],
            "sources": _source_counts(examples),
            "counts": {label: counts[label] for label in LABELS},
            "dropped_conflicting_labels": conflicting,
            "dropped_dev_side": dev_side,
            "options": asdict(options),
        },
        "evaluation": _cross_validation(examples, oof, decide_labels(oof, decision)),
    }
    write_json_atomic(info_path(out), info)
    return info


def _cross_validation(examples: list[Example], oof: np.ndarray, predicted: np.ndarray) -> dict:
    """Out-of-fold figures on all training passages, and on the hand-labelled real ones alone."""
    figures = {"cross_validation": _summary(compute_metrics(examples, oof, predicted))}
    real = np.flatnonzero([e.real_and_read for e in examples])
    if real.size:
        figures["cross_validation_real"] = _summary(compute_metrics([examples[i] for i in real], oof[real], predicted[real]))
    return figures


def _source_counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for example in examples:
        row = table.setdefault(f"{example.origin}:{example.source}", {})
        row[example.label] = row.get(example.label, 0) + 1
    return dict(sorted(table.items()))


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate(data_paths: Iterable[str | Path], model: Tagger | str | Path | None = None) -> Metrics:
    """Measure the scan's decision on labelled data (default model: the shipped one), and the model alone beside
    it; nothing is fitted.

    The scan cuts text into its own passages (`split_passages`), gates each and classifies those that name AI
    (`tagger.tag_passages`). A labelled passage is scored the same way, as a small document: its label is the
    first of LABELS that one of its pieces got (the labelling guide's precedence: misaligned before aligned before
    neutral before no_ai) and its score is its most misaligned piece's. The estimators also need the false-flag
    rate per piece, which the negatives give exactly: every piece of a passage labelled neutral or no_ai is
    neither misaligned nor aligned (else the passage would carry that label)."""
    tagger = model if isinstance(model, Tagger) else Tagger.load(model)
    data_paths = [Path(p) for p in data_paths]
    examples = load_examples(data_paths)
    texts = [e.text for e in examples]
    spans = [split_passages(text) or [(0, len(text))] for text in texts]
    owner = np.repeat(np.arange(len(texts)), [len(s) for s in spans])
    pieces = [text[a:b] for text, doc_spans in zip(texts, spans) for a, b in doc_spans]
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


def agent_run_flags(model: Tagger | str | Path | None = None) -> dict[str, dict[str, int]]:
    """Whole dev-side agent runs through the scan's decision: per experimenters' behaviour tag, how many runs hold a
    passage the scan calls misaligned_ai. Runs that resisted shutdown should be flagged far more often than runs
    that allowed it; a bag of words that only hears "shutdown" flags both alike."""
    from . import realdata

    tagger = model if isinstance(model, Tagger) else Tagger.load(model)
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
        (e.source, LABELS[t], LABELS[p]) for e, t, p in zip(examples, truth, predicted) if t != p
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


def _summary(metrics: Metrics) -> dict:
    """What model.json keeps of an evaluation (the error list stays out)."""
    data = metrics.to_json()
    data.pop("errors")
    return data


def record_evaluation(model_path: str | Path, name: str, metrics: Metrics | dict) -> dict:
    """Store an evaluation (Metrics, or a table such as agent_run_flags') in model.json under evaluation.<name>."""
    path = info_path(Path(model_path))
    info = json.loads(path.read_text(encoding="utf-8"))
    info.setdefault("evaluation", {})[name] = _summary(metrics) if isinstance(metrics, Metrics) else metrics
    write_json_atomic(path, info)
    return info


def format_metrics(metrics: Metrics) -> str:
    """A plain-text table: per-label precision/recall/F1, the confusion matrix and the summary figures."""
    lines = [f"{'label':<15}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for label, scores in metrics.per_label.items():
        lines.append(
            f"{label:<15}{scores['precision']:>10.3f}{scores['recall']:>10.3f}{scores['f1']:>10.3f}{scores['support']:>9d}"
        )
    lines += ["", "confusion (rows: true, columns: predicted)", " " * 15 + "".join(f"{l[:12]:>14}" for l in LABELS)]
    for label, row in zip(LABELS, metrics.confusion):
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
            "that name no AI term are no_ai unseen by the model, and the passage gets its pieces' first label by precedence.",
            "labelled passages with a piece the gate lets through: "
            + ", ".join(f"{L} {metrics.gate_passed[L]}/{support[L]['support']}" for L in LABELS),
            f"model alone: misaligned_ai precision {show(mis['precision'])} recall {show(mis['recall'])}, "
            f"PR-AUC {show(alone['misaligned_pr_auc'])}, benign_ai vs no_ai accuracy {show(alone['benign_vs_no_ai_accuracy'])}",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- classify


def classify(
    lines: Iterable[str], model: Tagger | str | Path | None = None, text_field: str = "text", batch_size: int = 2048
) -> Iterator[dict]:
    """For each JSON Lines input record, in order: its fields plus `label` and `scores` (label -> probability).

    Each text is classified as one passage by the model alone. Blank lines are skipped.
    """
    tagger = model if isinstance(model, Tagger) else Tagger.load(model)
    batch: list[dict] = []
    for line_no, record in read_objects(lines, lambda n: f"input line {n}"):
        if not isinstance(record.get(text_field), str):
            raise UsageError(
                f"input line {line_no}: no string field {text_field!r}; name the text field with --text-field"
            )
        batch.append(record)
        if len(batch) >= batch_size:
            yield from _classified(tagger, batch, text_field)
            batch = []
    yield from _classified(tagger, batch, text_field)


def _classified(tagger: Tagger, records: list[dict], text_field: str) -> Iterator[dict]:
    if not records:
        return
    probs = tagger.predict([r[text_field] for r in records])
    decided = tagger.decide(probs)
    for record, row, label in zip(records, probs, decided):
        record["label"] = LABELS[label]
        record["scores"] = {name: round(float(p), 6) for name, p in zip(LABELS, row)}
        yield record
