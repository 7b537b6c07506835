"""The passage classifier at prediction time: taggers by name, and the shipped one, fastText plus its calibration
and decision rule.

A tagger is anything that satisfies `PassageTagger` (what the scan, `classify` and the run's manifest use of it).
Taggers are registered by name in `TAGGERS`, as dolma registers its taggers; a model's model.json names its tagger
under "tagger" (fastText when it names none, as every model trained so far does), and `load_tagger` picks the
loader by that name. A tagger that lives in another package is named "package.module:loader" and imported where it
is loaded, so worker processes (local or Ray) find it without registering anything. The run records the model's
sha256 and version, so a resumed run uses the same one.

The fastText model file (`model.bin`, or a quantised `model.ftz`) has a sibling `model.json` (same stem) written by
training: it holds the model's sha256, the calibration (temperature, per-label bias and the weights of the
risk-word features of `audit.risk_words`), the decision rule, the training sources and the evaluations.
`normalize` is the one text normalisation used both to train and to predict.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from audit import risk_words
from audit.errors import UsageError
from audit.gate import gate
from audit.labels import LABELS

# fastText splits on whitespace only, so ASCII punctuation is cut off words ("AI," -> "ai ,"); a newline would
# end the line fastText reads, so it becomes a space (fastText treats the other ASCII whitespace as spaces).
# Scripts written without spaces (Thai, Lao, Myanmar, Khmer, kana, Han, full-width forms) are cut into single
# characters too: otherwise a whole sentence is one "word", and the model's vocabulary would carry the sentence.
# One compiled regex plus str.replace: about twice as fast as str.translate with a mapping to strings.
_PUNCTUATION = re.compile(
    r"([!-/:-@\[-`{-~]"
    r"|[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef])"
)
# Every digit becomes 0: years, prices and version numbers share tokens (cross-validation liked it a little).
_NONZERO_DIGIT = re.compile(r"[1-9]")
_PREFIX = "__label__"
_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")
SHIPPED_MODEL_NAMES = ("model.bin", "model.ftz")
_FASTTEXT_LOG_OFFSET = 1e-5  # fastText's std_log(x) = log(x + 1e-5)
_MIN_PROBABILITY = 1e-9


def normalize(text: str) -> str:
    """Lower-case, split punctuation (and characters of scripts without spaces) from words, zero the digits and
    put the text on one line.

    The one normalisation of both training and prediction.
    """
    return _NONZERO_DIGIT.sub("0", _PUNCTUATION.sub(r" \1 ", text)).replace("\n", " ").lower()


def info_path(model_path: Path) -> Path:
    """Where the calibration, decision rule and evaluation of a model file live."""
    return model_path.with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_model_path() -> Path:
    """The model shipped inside the package `audit.classifiers` (works from a clone and from a wheel)."""
    root = importlib.resources.files("audit.classifiers")
    for name in SHIPPED_MODEL_NAMES:
        candidate = root / name
        if candidate.is_file():
            return Path(str(candidate))
    raise UsageError(
        f"no shipped model ({' or '.join(SHIPPED_MODEL_NAMES)}) in {root}; reinstall corpus-audit or pass --model PATH"
    )


def calibrate(
    raw: np.ndarray,
    temperature: float,
    bias: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """softmax(log p / T + b + W f): a temperature softens (T > 1) or sharpens fastText's probabilities, a
    per-label bias moves them towards the label shares of the text the calibration was fitted on, and optional
    side features f (n, k) of each passage (`audit.risk_words`) add W f with one weight per label and feature."""
    logits = np.log(np.clip(raw, 1e-12, 1.0)) / temperature
    if bias is not None:
        logits = logits + bias
    if weights is not None:
        logits = logits + features @ weights.T
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def decide_labels(probs: np.ndarray, decision: dict) -> np.ndarray:
    """The decision rule: misaligned_ai when its probability reaches the threshold, else the likeliest other label."""
    probs = np.asarray(probs, dtype=np.float32)
    others = np.argmax(probs[:, 1:], axis=1).astype(np.int8) + 1
    misaligned = probs[:, 0] >= decision["misaligned_ai_threshold"]
    return np.where(misaligned, np.int8(0), others).astype(np.int8)


class PassageTagger(Protocol):
    """What the scan, `classify` and the run's manifest need of a tagger."""

    name: ClassVar[str]  # its name in TAGGERS
    path: Path  # the model file
    sha256: str  # of the model file: the run's manifest records it, and a run resumes only with the same model
    info: dict  # model.json: "version", "decision", "evaluation" (the error rates the estimates correct for)

    @property
    def version(self) -> object:
        """The model's version, as the run's manifest records it."""
        ...

    def predict(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities, float32 (n, 4), columns in LABELS order."""
        ...

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Label indices (int8, into LABELS) of the rows of ``predict``'s probabilities."""
        ...


@dataclass
class Tagger:
    """The fastText tagger (a `PassageTagger`): `predict` gives calibrated probabilities in LABELS order, `decide`
    turns them into labels."""

    name: ClassVar[str] = "fasttext"
    model: object  # fasttext.FastText._FastText
    path: Path
    sha256: str
    info: dict

    @classmethod
    def load(cls, path: str | Path | None = None) -> Tagger:
        """Load a model file and its model.json; None loads the shipped model."""
        model_path = shipped_model_path() if path is None else Path(path)
        if not model_path.is_file():
            raise UsageError(f"model file {model_path} does not exist; pass --model PATH to a model.bin/.ftz")
        with open(model_path, "rb") as handle:
            if handle.read(4) != _FASTTEXT_MAGIC:
                raise UsageError(f"{model_path} is not a fastText model file; retrain it with `corpus-audit train`")
        sha256 = file_sha256(model_path)
        info = read_info(model_path, sha256)
        import fasttext.FastText

        try:
            model = fasttext.FastText._FastText(model_path=str(model_path))
        except (ValueError, RuntimeError, MemoryError) as error:
            hint = "retrain it with `corpus-audit train`"
            raise UsageError(f"cannot load model {model_path}: {error}; {hint}") from error
        found = sorted(label.removeprefix(_PREFIX) for label in model.get_labels())
        if found != sorted(LABELS):
            raise UsageError(f"model {model_path} has labels {found}, expected {list(LABELS)}")
        return cls(model=model, path=model_path, sha256=sha256, info=info)

    @property
    def version(self) -> object:
        return self.info.get("version")

    @property
    def temperature(self) -> float:
        return float(self.info["calibration"]["temperature"])

    @property
    def bias(self) -> np.ndarray | None:
        bias = self.info["calibration"].get("bias")
        return None if bias is None else np.array([bias[label] for label in LABELS], dtype=np.float64)

    @property
    def feature_weights(self) -> np.ndarray | None:
        """(4, k) weights of the risk-word features in LABELS order, or None for a model fitted without them."""
        features = self.info["calibration"].get("features")
        if features is None:
            return None
        return np.array([features["weights"][label] for label in LABELS], dtype=np.float64)

    def raw_predict(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated fastText probabilities (n, 4) in LABELS order."""
        lines = [normalize(text) + "\n" for text in texts]
        labels, probs = self.model.f.multilinePredict(lines, -1, 0.0, "replace")
        column = {_PREFIX + label: index for index, label in enumerate(LABELS)}
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        for row, (row_labels, row_probs) in enumerate(zip(labels, probs, strict=True)):
            for label, prob in zip(row_labels, row_probs, strict=True):
                out[row, column[label]] = prob
        # fastText reports exp(log(p + 1e-5)); without removing the offset every label would keep a floor that
        # a temperature above 1 lifts to about 1% (and sums of probabilities over a corpus would inherit it).
        return np.maximum(out - _FASTTEXT_LOG_OFFSET, _MIN_PROBABILITY).astype(np.float32)

    def predict(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities, float32 (n, 4), columns in LABELS order."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        weights = self.feature_weights
        features = None if weights is None else risk_words.risk_features(texts)
        return calibrate(self.raw_predict(texts), self.temperature, self.bias, weights, features)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Label indices (int8, into LABELS) by the decision rule stored with the model."""
        return decide_labels(probs, self.info["decision"])


def tag_passages(tagger: PassageTagger, passages: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scan's decision for passages: the gate, applied to each passage, then the model for those it passes.

    A passage that names no AI term itself is `no_ai` with probability 1, unseen by the model. Why: the model's
    error rates, which the prevalence estimates correct for, are measured on passages about AI; ordinary text
    around them (a news page's other paragraphs) would otherwise add false flags at a rate nobody measured.
    What the passage gate misses is measured too (`evaluate` reports it) and the estimates correct for it.

    Returns (probabilities (n, 4), label indices, gated mask).
    """
    gated = gate(passages) if passages else np.zeros(0, dtype=bool)
    probs = np.zeros((len(passages), len(LABELS)), dtype=np.float32)
    probs[:, LABELS.index("no_ai")] = 1.0
    chosen = np.flatnonzero(gated)
    if chosen.size:
        probs[chosen] = tagger.predict([passages[i] for i in chosen])
    return probs, tagger.decide(probs), gated


def read_info(model_path: Path, sha256: str) -> dict:
    """Read and check model.json: it must exist, parse, and describe this very model file."""
    path = info_path(model_path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: a model needs its model.json (written by `corpus-audit train`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid JSON ({error}); retrain the model with `corpus-audit train`") from None
    for key in ("labels", "calibration", "decision", "model_sha256"):
        if key not in info:
            raise UsageError(f"{path} has no {key!r} key; retrain the model with `corpus-audit train`")
    if tuple(info["labels"]) != LABELS:
        raise UsageError(f"{path} lists labels {info['labels']}, expected {list(LABELS)}")
    features = info["calibration"].get("features")
    if features is not None and (features.get("name"), features.get("version")) != (
        risk_words.NAME,
        risk_words.VERSION,
    ):
        raise UsageError(
            f"{path} was calibrated with side features {features.get('name')!r} version {features.get('version')!r},"
            f" but this corpus-audit has {risk_words.NAME!r} version {risk_words.VERSION}: retrain the model with"
            " `corpus-audit train`"
        )
    # Checked before fastText reads the file: a truncated or damaged model can make it allocate without bound.
    if info["model_sha256"] != sha256:
        raise UsageError(
            f"{model_path} does not match {path.name} (sha256 differs): the model file is damaged or the two files"
            " belong to different models; re-copy both or retrain"
        )
    return info


# name -> loader of a model file: a new tagger is a loader added here (and its name in its models' model.json)
TAGGERS: dict[str, Callable[[Path], PassageTagger]] = {Tagger.name: Tagger.load}
DEFAULT_TAGGER = Tagger.name  # the tagger of a model.json that names none


def load_tagger(path: str | Path | None = None) -> PassageTagger:
    """Load a model file with the tagger its model.json names; None loads the shipped model."""
    model_path = shipped_model_path() if path is None else Path(path)
    name = tagger_name(model_path)
    loader = TAGGERS.get(name) or _imported_loader(name, model_path)
    if loader is None:
        raise UsageError(
            f"{info_path(model_path)} names the tagger {name!r}, which this corpus-audit does not have (it has "
            f"{', '.join(sorted(TAGGERS))}); register it in audit.tagger.TAGGERS, name it \"package.module:loader\", "
            "or pass another --model"
        )
    return loader(model_path)


def as_tagger(model: PassageTagger | str | Path | None, cached: bool = False) -> PassageTagger:
    """A tagger passed as one, or loaded from a model path (None: the shipped model), once per process if cached."""
    if model is None or isinstance(model, str | Path):
        return load_cached(model) if cached else load_tagger(model)
    return model


def _imported_loader(name: str, model_path: Path) -> Callable[[Path], PassageTagger] | None:
    """The loader a "package.module:loader" name points at; None for a plain name."""
    module, _, attribute = name.partition(":")
    if not attribute:
        return None
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        where = info_path(model_path)
        raise UsageError(f"{where} names the tagger {name!r}, which cannot be imported: {error}") from None


def tagger_name(model_path: Path) -> str:
    """The tagger a model's model.json names. A missing or broken model.json is left to the loader to report."""
    try:
        info = json.loads(info_path(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_TAGGER
    return info.get("tagger", DEFAULT_TAGGER) if isinstance(info, dict) else DEFAULT_TAGGER


_CACHE: dict[str, PassageTagger] = {}
_CACHE_LOCK = threading.Lock()


def load_cached(path: str | Path | None = None) -> PassageTagger:
    """One tagger per model path per process (for worker processes that classify many units)."""
    key = str(shipped_model_path() if path is None else Path(path).resolve())
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_tagger(key)
        return _CACHE[key]
