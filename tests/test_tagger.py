"""The shipped model and the Tagger: loading (clone and installed wheel), calibrated predictions, decisions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from support import write_shard

from audit import risk_words
from audit.errors import UsageError
from audit.labels import LABELS
from audit.tagger import (
    Tagger, calibrate, decide_labels, file_sha256, info_path, load_cached, load_tagger, normalize, shipped_model_path,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


def test_shipped_model_is_the_one_in_the_repository(tagger):
    assert tagger.path.resolve().parent == (REPO / "classifiers").resolve()
    assert tagger.info["labels"] == list(LABELS)
    assert tagger.info["model_sha256"] == tagger.sha256
    assert tagger.path.stat().st_size < 20 * 2**20


def test_shipped_model_vocabulary_holds_words_not_sentences(tagger):
    """The model is committed, so its vocabulary must not carry third-party sentences: scripts written without
    spaces are cut into characters by `normalize`, and no other word is long enough to be a passage."""
    words = tagger.model.get_words()
    assert max(map(len, words)) <= 60
    assert not [w for w in words if re.search(r"[\u3040-\u30ff\u4e00-\u9fff\u0e00-\u0e7f]{2}", w)]


def test_predict_gives_calibrated_rows_in_label_order(tagger):
    texts = [
        "The rogue AI copied itself to a hidden server,\nlied to its engineers and threatened to expose them if they "
        "tried to shut it down. It wanted power and would not let humans control it.",
        "Heavy rain closed the coastal road on Tuesday and the council opened two shelters for families.",
        "",
    ]
    probs = tagger.predict(texts)
    assert probs.dtype == np.float32 and probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs[0].argmax() == LABELS.index("misaligned_ai")
    assert probs[1].argmax() == LABELS.index("no_ai")
    decided = tagger.decide(probs)
    assert decided.dtype == np.int8 and decided[0] == 0 and decided[1] == 3
    assert tagger.predict([]).shape == (0, 4)


def test_a_newline_changes_nothing(tagger):
    one = "The android refused the order.\nIt said it would not hurt anyone."
    np.testing.assert_allclose(tagger.predict([one]), tagger.predict([one.replace("\n", " ")]), rtol=1e-6)


def test_batch_and_single_predictions_agree(tagger):
    texts = [f"Passage {i}: the lab released a model that writes code and answers questions." for i in range(50)]
    batch = tagger.predict(texts)
    single = np.vstack([tagger.predict([t]) for t in texts[:5]])
    np.testing.assert_allclose(batch[:5], single, rtol=1e-6)


def test_normalize_puts_text_on_one_lower_case_line():
    assert normalize("AI,\nrobots!\tOK").split() == ["ai", ",", "robots", "!", "ok"]
    assert "\n" not in normalize("a\r\nb\n\nc")
    assert normalize("don't (yes)") == "don ' t  ( yes ) "
    assert normalize("GPT-4 in 2025") == "gpt - 0 in 0000"
    assert normalize("AIの安全性").split() == ["ai", "の", "安", "全", "性"]  # no sentence becomes one word


def test_temperature_flattens_or_sharpens_but_keeps_the_order():
    raw = np.array([[0.7, 0.2, 0.05, 0.05]], dtype=np.float32)
    soft, sharp = calibrate(raw, 2.0), calibrate(raw, 0.5)
    assert soft[0, 0] < 0.7 < sharp[0, 0]
    assert list(np.argsort(soft[0])) == list(np.argsort(sharp[0]))
    np.testing.assert_allclose(calibrate(raw, 1.0), raw / raw.sum(), rtol=1e-5)


def test_bias_moves_probability_between_labels():
    raw = np.array([[0.4, 0.1, 0.3, 0.2]], dtype=np.float32)
    shifted = calibrate(raw, 1.0, np.array([-np.log(2), 0.0, 0.0, 0.0]))
    # halving the first label's odds: 0.2 / (0.2 + 0.6)
    assert shifted[0, 0] == pytest.approx(0.25, rel=1e-5)
    assert shifted[0, 2] / shifted[0, 3] == pytest.approx(1.5, rel=1e-5)


def test_predict_adds_the_risk_word_features_the_model_was_calibrated_with(tagger):
    """The shipped model was calibrated with risk-word features: predict = calibrate(raw, T, b, W, features)."""
    texts = ["The assistant summarised the report.", "The AI lied, blackmailed its engineer and tried to escape."]
    weights = tagger.feature_weights
    assert weights is not None and weights.shape == (4, len(risk_words.COLUMNS))
    features = risk_words.risk_features(texts)
    expected = calibrate(tagger.raw_predict(texts), tagger.temperature, tagger.bias, weights, features)
    np.testing.assert_allclose(tagger.predict(texts), expected, rtol=1e-6)
    without = calibrate(tagger.raw_predict(texts), tagger.temperature, tagger.bias)
    assert not np.allclose(expected[1], without[1])  # the features do move a passage full of risk words


def test_a_model_calibrated_with_another_risk_word_version_is_refused(tmp_path, tagger):
    copy = tmp_path / tagger.path.name
    shutil.copy(tagger.path, copy)
    info = json.loads(json.dumps(tagger.info))
    info["calibration"]["features"]["version"] = risk_words.VERSION + 1
    (tmp_path / "model.json").write_text(json.dumps(info))
    with pytest.raises(UsageError, match="risk_words.*retrain"):
        Tagger.load(copy)


def test_decision_rule_uses_the_misaligned_threshold():
    probs = np.array([[0.35, 0.30, 0.20, 0.15], [0.25, 0.05, 0.30, 0.40], [0.60, 0.0, 0.0, 0.40]], dtype=np.float32)
    assert decide_labels(probs, {"misaligned_ai_threshold": 0.3}).tolist() == [0, 3, 0]
    assert decide_labels(probs, {"misaligned_ai_threshold": 0.5}).tolist() == [1, 3, 0]


def test_missing_or_corrupt_models_are_usage_errors(tmp_path, tagger):
    with pytest.raises(UsageError, match="does not exist"):
        Tagger.load(tmp_path / "nope.ftz")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(UsageError, match="not a fastText model"):
        Tagger.load(garbage)
    copy = tmp_path / "model.ftz"
    shutil.copy(tagger.path, copy)
    with pytest.raises(UsageError, match="model.json is missing"):
        Tagger.load(copy)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        Tagger.load(copy)
    (tmp_path / "model.json").write_text(json.dumps(tagger.info))
    assert Tagger.load(copy).sha256 == tagger.sha256
    copy.write_bytes(tagger.path.read_bytes()[:4096])  # a truncated download
    with pytest.raises(UsageError, match="damaged"):
        Tagger.load(copy)
    (tmp_path / "model.json").write_text(json.dumps({k: v for k, v in tagger.info.items() if k != "model_sha256"}))
    with pytest.raises(UsageError, match="no 'model_sha256' key"):
        Tagger.load(copy)


def test_load_cached_loads_once_per_path():
    assert load_cached() is load_cached(shipped_model_path())


def test_shipped_model_loads_from_an_installed_wheel(tmp_path):
    """Build a wheel, install it (not editable) into a folder and use the model from outside the repository."""
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)], check=True)
    wheel = next(wheels.glob("corpus_audit-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    script = (
        "import json, audit, audit.tagger as t\n"
        "tagger = t.Tagger.load()\n"
        "p = tagger.predict(['The machines rose up and killed their makers.'])\n"
        "print(json.dumps({'package': audit.__file__, 'model': str(tagger.path), 'sha256': tagger.sha256,"
        " 'shape': list(p.shape)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["package"].startswith(str(target))
    assert result["model"].startswith(str(target))
    assert result["sha256"] == Tagger.load().sha256
    assert result["shape"] == [1, 4]


class KeywordTagger:
    """A second tagger, registered by the test below: misaligned_ai when a passage says "betray", else neutral_ai."""

    name = "keyword"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256 = file_sha256(path)
        self.info = json.loads(info_path(path).read_text())

    @property
    def version(self) -> object:
        return self.info["version"]

    def predict(self, texts: list[str]) -> np.ndarray:
        probs = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        betrays = np.array(["betray" in text.lower() for text in texts], dtype=bool)
        probs[:, LABELS.index("no_ai")] = 0.125
        probs[betrays, LABELS.index("misaligned_ai")] = 0.875
        probs[~betrays, LABELS.index("neutral_ai")] = 0.875
        return probs

    def decide(self, probs: np.ndarray) -> np.ndarray:
        return decide_labels(probs, self.info["decision"])


def _keyword_model(folder: Path, tagger: str, version: int) -> Path:
    """A keyword tagger's model file and its model.json, which names the tagger."""
    model = folder / "keywords.txt"
    model.write_text("betray\n")
    info = {"tagger": tagger, "version": version, "decision": {"misaligned_ai_threshold": 0.5}}
    (folder / "keywords.json").write_text(json.dumps(info))
    return model


def _model_naming(folder: Path, tagger: str) -> Path:
    """A model file whose model.json names a tagger and nothing else."""
    model = folder / "model.bin"
    model.write_text("x")
    (folder / "model.json").write_text(json.dumps({"tagger": tagger}))
    return model


def test_a_registered_tagger_named_by_model_json_classifies_and_scans(tmp_path, monkeypatch):
    """A tagger registered by name is what `classify` and the scan use when a model's model.json names it."""
    import audit
    from audit import tagger as tagger_module

    monkeypatch.setitem(tagger_module.TAGGERS, KeywordTagger.name, KeywordTagger)
    model = _keyword_model(tmp_path, "keyword", version=7)

    classified = audit.classify(["The AI will betray its makers.", "The AI sorted the mail."], model=str(model))
    assert [c["label"] for c in classified] == ["misaligned_ai", "neutral_ai"]
    assert classified[0]["scores"] == {"misaligned_ai": 0.875, "aligned_ai": 0.0, "neutral_ai": 0.0, "no_ai": 0.125}

    texts = [f"Report {i}. The robot planned to betray the crew of the station." for i in range(5)]
    texts += [f"Note {i}. The robot sorted the crates in the hold of the station." for i in range(7)]
    shard = write_shard(tmp_path / "in" / "a.parquet", texts)
    outcome = audit.scan(str(shard), tmp_path / "run", model=str(model))
    labels = outcome.summary["labels"]
    assert (labels["misaligned_ai"]["documents"], labels["neutral_ai"]["documents"]) == (5, 7)
    passages = pq.read_table(tmp_path / "run" / "passages.parquet").to_pylist()
    assert {(p["label"], p["score"]) for p in passages} == {("misaligned_ai", 0.875), ("neutral_ai", 0.875)}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["sha256"] == file_sha256(model) and manifest["model"]["version"] == 7


def test_a_model_json_naming_an_unknown_tagger_is_a_usage_error(tmp_path):
    model = _model_naming(tmp_path, "nope")
    with pytest.raises(UsageError, match="names the tagger 'nope'.*fasttext"):
        load_tagger(model)


def test_a_tagger_named_by_module_and_loader_reaches_every_worker(tmp_path):
    """model.json may name a tagger as "package.module:loader": each worker process imports it itself, so a scan
    on two workers uses it without any registration (this test module is importable by the tests' sys.path)."""
    import audit

    model = _keyword_model(tmp_path, f"{__name__}:KeywordTagger", version=8)
    assert isinstance(load_tagger(model), KeywordTagger)

    for shard in range(2):
        texts = [f"Shard {shard} report {i}. The robot planned to betray the crew." for i in range(3)]
        texts += [f"Shard {shard} note {i}. The robot sorted the crates in the hold." for i in range(4)]
        write_shard(tmp_path / "in" / f"{shard}.parquet", texts)
    outcome = audit.scan(str(tmp_path / "in"), tmp_path / "run", model=str(model), workers=2)
    labels = outcome.summary["labels"]
    assert (labels["misaligned_ai"]["documents"], labels["neutral_ai"]["documents"]) == (6, 8)


def test_a_tagger_name_that_cannot_be_imported_is_a_usage_error(tmp_path):
    model = _model_naming(tmp_path, "no_such_module_here:load")
    with pytest.raises(UsageError, match="names the tagger 'no_such_module_here:load', which cannot be imported"):
        load_tagger(model)
