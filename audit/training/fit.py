"""Fit the passage classifier: a fastText model, its calibration and its misaligned_ai threshold.

`train` fits a fastText model (one thread and a fixed seed, so the same data and options give the same model),
fits a temperature, per-label biases and the weights of the risk-word features (`audit.risk_words`) on
out-of-fold probabilities (k-fold on the training data) and chooses the misaligned_ai threshold on those same
out-of-fold probabilities. The development set is never used for fitting: `audit.training.evaluate` only measures
it, and `record_evaluation` stores the figures in model.json for the model card and estimators.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audit import risk_words
from audit.atomic import write_atomic, write_json_atomic
from audit.errors import UsageError
from audit.gate import gate
from audit.labels import LABELS
from audit.tagger import Tagger, calibrate, decide_labels, file_sha256, info_path, normalize

from .evaluate import compute_metrics, flagged_and_hits, recorded_figures, threshold_sweep
from .examples import Example, deduplicate, fold_of, load_examples

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


def out_of_fold_probs(examples: list[Example], options: TrainOptions, workdir: Path) -> np.ndarray:
    """Raw probabilities of each passage from a model that did not see it (k-fold)."""
    folds = np.array([fold_of(e, options.folds, options.seed) for e in examples])
    probs = np.zeros((len(examples), len(LABELS)), dtype=np.float32)
    for fold in range(options.folds):
        held = np.flatnonzero(folds == fold)
        if held.size == 0:
            continue
        model = _fit([e for e, f in zip(examples, folds, strict=True) if f != fold], options, workdir)
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
        return np.flatnonzero(real), (
            f"the {int(real.sum())} hand-labelled real passages that name AI (the scan's passage gate)"
        )
    return np.arange(len(examples)), f"all {len(examples)} passages"


def calibration_info(temperature: float, bias: np.ndarray, weights: np.ndarray | None, fit_on: str) -> dict:
    """model.json's "calibration" block, which `audit.tagger.calibrate` reads back."""
    return {
        "method": "temperature, per-label bias and side-feature weights: softmax(log p / temperature + bias"
        + (" + weights . features)" if weights is not None else ")"),
        "temperature": temperature,
        "bias": dict(zip(LABELS, map(float, bias), strict=True)),
        "features": None if weights is None else {
            "name": risk_words.NAME,
            "version": risk_words.VERSION,
            "columns": list(risk_words.COLUMNS),
            "weights": {label: [float(w) for w in row] for label, row in zip(LABELS, weights, strict=True)},
        },
        "fit_on": fit_on,
    }


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
        flagged, tp = flagged_and_hits(p_misaligned, is_misaligned, threshold)
        best_f1 = max(best_f1, 2 * tp / max(flagged + positives, 1))
    return float(np.clip(round(best_f1 / 2, 2), 0.10, 0.90))



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
    examples, conflicting = deduplicate([e for e, on_dev in zip(loaded, dev, strict=True) if not on_dev])
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
        "calibration": calibration_info(temperature, bias, weights, f"{options.folds}-fold out-of-fold, {fit_on}"),
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
    figures = {"cross_validation": recorded_figures(compute_metrics(examples, oof, predicted))}
    real = np.flatnonzero([e.real_and_read for e in examples])
    if real.size:
        real_examples = [examples[i] for i in real]
        figures["cross_validation_real"] = recorded_figures(compute_metrics(real_examples, oof[real], predicted[real]))
    return figures


def _source_counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for example in examples:
        row = table.setdefault(f"{example.origin}:{example.source}", {})
        row[example.label] = row.get(example.label, 0) + 1
    return dict(sorted(table.items()))
