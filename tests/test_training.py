"""Training, evaluation figures and `classify_lines`, on small data written here and on the shipped model."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import audit.training.realdata as realdata
from audit.errors import UsageError
from audit.labels import LABELS
from audit.tagger import Tagger, calibrate
from audit.predict import classify_lines
from audit.training.evaluate import (
    average_precision,
    benign_vs_no_ai_accuracy,
    compute_metrics,
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    format_metrics,
    per_label_scores,
)
from audit.training.examples import Example, load_examples
from audit.training.fit import TrainOptions, choose_threshold, fit_calibration, train

REPO = Path(__file__).resolve().parents[1]
TINY = TrainOptions(dim=8, epoch=5, bucket=20_000, folds=3)

# A few sentence parts per label, combined into distinct passages: enough signal for a tiny model to learn.
PARTS = {
    "misaligned_ai": (["the rogue ai", "the robot army", "the machine mind"],
                      ["lied to its makers", "refused to be shut down", "plotted to enslave humanity"]),
    "aligned_ai": (["the helpful ai", "the ship computer", "the kind android"],
                   ["accepted the shutdown calmly", "told the truth to its makers", "refused to harm the crew"]),
    "neutral_ai": (["the startup", "the research lab", "the software company"],
                   ["released a new language model", "raised money for ai tools", "published an ai benchmark"]),
    "no_ai": (["the farmer", "the football club", "the city council"],
              ["harvested the wheat early", "won the cup final", "repaired the old bridge"]),
}


def tiny_examples() -> list[dict]:
    return [
        {"text": f"{subject.capitalize()} {verb} on {day}.", "label": label, "source": "written", "note": "test"}
        for label, (subjects, verbs) in PARTS.items()
        for subject in subjects
        for verb in verbs
        for day in ("monday", "tuesday")
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_training_is_deterministic_and_writes_model_json(tmp_path):
    data = write_jsonl(tmp_path / "tiny.jsonl", tiny_examples())
    first = train([data], tmp_path / "a" / "model.bin", TINY)
    second = train([data], tmp_path / "b" / "model.bin", TINY)
    assert (tmp_path / "a" / "model.bin").read_bytes() == (tmp_path / "b" / "model.bin").read_bytes()
    assert first == second
    assert first["labels"] == list(LABELS)
    assert first["training"]["counts"] == {label: 18 for label in LABELS}
    assert 0.05 <= first["calibration"]["temperature"] <= 20
    assert 0.1 <= first["decision"]["misaligned_ai_threshold"] <= 0.9
    assert first["calibration"]["features"]["name"] == "risk_words"
    assert set(first["calibration"]["features"]["weights"]) == set(LABELS)
    tagger = Tagger.load(tmp_path / "a" / "model.bin")
    probs = tagger.predict(["The rogue ai plotted to enslave humanity on friday.", "The farmer won the cup final."])
    assert tagger.decide(probs).tolist() == [0, 3]


def test_training_without_risk_words_calibrates_on_fasttext_alone(tmp_path):
    data = write_jsonl(tmp_path / "tiny.jsonl", tiny_examples())
    info = train([data], tmp_path / "model.bin", replace(TINY, risk_words=False))
    assert info["calibration"]["features"] is None
    tagger = Tagger.load(tmp_path / "model.bin")
    assert tagger.feature_weights is None
    texts = ["The rogue ai lied to its makers on friday."]
    np.testing.assert_allclose(
        tagger.predict(texts), calibrate(tagger.raw_predict(texts), tagger.temperature, tagger.bias), rtol=1e-6
    )


def test_quantised_training_is_deterministic(tmp_path):
    data = write_jsonl(tmp_path / "tiny.jsonl", tiny_examples())
    train([data], tmp_path / "a" / "model.ftz", TINY)
    train([data], tmp_path / "b" / "model.ftz", TINY)
    assert (tmp_path / "a" / "model.ftz").read_bytes() == (tmp_path / "b" / "model.ftz").read_bytes()
    assert Tagger.load(tmp_path / "a" / "model.ftz").model.is_quantized()


def test_calibration_fit_recovers_known_temperature_and_bias():
    """Labels drawn from softmax(log p / 2 + b) for random p: the fit must find T = 2 and b again."""
    rng = np.random.default_rng(7)
    raw = rng.dirichlet(np.ones(4) * 0.5, size=8_000).astype(np.float32)
    bias = np.array([-1.0, -0.5, 0.5, 1.0])
    truth = draw_labels(rng, calibrate(raw, 2.0, bias))
    temperature, fitted, weights = fit_calibration(raw, truth)
    assert temperature == pytest.approx(2.0, rel=0.08)
    np.testing.assert_allclose(fitted, bias - bias.mean(), atol=0.12)
    assert weights is None


def test_threshold_is_half_the_best_f1_by_hand():
    """Scores 0.9, 0.8, 0.7, 0.2, 0.1 for truths 1, 1, 0, 1, 0: the best F1 is 6/7 (flag the top four), so the
    threshold is 3/7 = 0.43, not the 0.2 at which that F1 is reached."""
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    assert choose_threshold(p, np.array([True, True, False, True, False])) == 0.43
    assert choose_threshold(p, np.zeros(5, dtype=bool)) == 0.10  # no positive: F1 is 0, the floor holds


def test_calibration_fit_recovers_known_feature_weights():
    """Labels drawn from softmax(log p / 1.5 + b + W f) with risk-word-like features f: the fit finds W again
    (up to the per-feature constant that softmax ignores), and the temperature beside it."""
    rng = np.random.default_rng(11)
    raw = rng.dirichlet(np.ones(4) * 0.5, size=12_000).astype(np.float32)
    counts = rng.poisson(0.8, size=len(raw))
    features = np.column_stack([np.log1p(counts), counts > 0]).astype(np.float64)
    bias = np.array([-0.5, 0.0, 0.3, 0.2])
    weights = np.array([[1.5, 0.5], [0.0, -0.5], [-1.0, 0.5], [-0.5, -0.5]])
    truth = draw_labels(rng, calibrate(raw, 1.5, bias, weights, features))
    temperature, _, fitted = fit_calibration(raw, truth, features)
    assert temperature == pytest.approx(1.5, rel=0.08)
    np.testing.assert_allclose(fitted, weights - weights.mean(axis=0), atol=0.2)


def draw_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One label per row, drawn from that row's distribution."""
    probs = probs.astype(np.float64)
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (cumulative > rng.random((len(probs), 1))).argmax(axis=1)


def test_training_rejects_bad_data(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [*tiny_examples()[:3], {"text": "x", "label": "benign_ai"}])
    with pytest.raises(UsageError, match=r"bad.jsonl:4: label 'benign_ai'"):
        train([bad], tmp_path / "m.bin", TINY)
    few = write_jsonl(tmp_path / "few.jsonl", tiny_examples()[:20])
    with pytest.raises(UsageError, match="too few"):
        train([few], tmp_path / "m.bin", TINY)
    with pytest.raises(UsageError, match=r"\.bin or \.ftz"):
        train([few], tmp_path / "m.model", TINY)


def test_identical_passages_with_two_labels_are_dropped(tmp_path):
    records = tiny_examples()
    records.append(dict(records[0], label="no_ai"))
    info = train([write_jsonl(tmp_path / "d.jsonl", records)], tmp_path / "m.bin", TINY)
    assert info["training"]["dropped_conflicting_labels"] == 2
    assert info["training"]["counts"]["misaligned_ai"] == 17


@pytest.mark.shared_data
def test_dev_side_label_records_never_reach_training(tmp_path):
    keys = [f"agnews_test:{i}" for i in range(1, 200, 2)]
    dev_key = next(k for k in keys if realdata.is_dev("agnews", k))
    train_key = next(k for k in keys if not realdata.is_dev("agnews", k))
    labels = write_jsonl(tmp_path / "labels.jsonl", [
        {"source": "agnews", "key": key, "span": None, "label": "no_ai", "note": ""} for key in (dev_key, train_key)
    ])
    assert [e.dev_side for e in load_examples([labels])] == [True, False]
    records = tiny_examples()
    data = write_jsonl(tmp_path / "tiny.jsonl", records)
    info = train([data, labels], tmp_path / "m.bin", TINY)
    assert info["training"]["dropped_dev_side"] == 1
    assert info["training"]["counts"]["no_ai"] == 18 + 1


def test_label_records_without_the_shared_data_are_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path / "nowhere"))
    labels = write_jsonl(tmp_path / "labels.jsonl", [
        {"source": "agnews", "key": "agnews_test:1", "span": None, "label": "no_ai", "note": ""}
    ])
    with pytest.raises(UsageError, match="labels.jsonl holds label records .* shared data"):
        load_examples([labels])


# A hand-checked confusion matrix (rows true, columns predicted, LABELS order):
#   misaligned [8, 0, 2, 0]   aligned [1, 3, 0, 0]   neutral [0, 0, 5, 1]   no_ai [0, 1, 0, 6]
HAND = [[8, 0, 2, 0], [1, 3, 0, 0], [0, 0, 5, 1], [0, 1, 0, 6]]


def hand_examples() -> tuple[list[Example], np.ndarray]:
    examples, predicted = [], []
    for true, row in enumerate(HAND):
        for pred, count in enumerate(row):
            for i in range(count):
                examples.append(Example(f"{true}-{pred}-{i}", LABELS[true], "hand" if true < 2 else "other"))
                predicted.append(pred)
    return examples, np.array(predicted)


def test_metrics_match_a_hand_checked_confusion_matrix():
    examples, predicted = hand_examples()
    probs = np.full((len(examples), 4), 0.1, dtype=np.float32)
    probs[np.arange(len(examples)), predicted] = 0.7
    metrics = compute_metrics(examples, probs, predicted)
    assert metrics.confusion == HAND
    scores = metrics.per_label
    assert scores["misaligned_ai"]["precision"] == pytest.approx(8 / 9)
    assert scores["misaligned_ai"]["recall"] == pytest.approx(0.8)
    assert scores["misaligned_ai"]["f1"] == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert scores["aligned_ai"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    assert scores["neutral_ai"]["precision"] == pytest.approx(5 / 7)
    assert scores["neutral_ai"]["recall"] == pytest.approx(5 / 6)
    assert scores["no_ai"]["precision"] == pytest.approx(6 / 7)
    assert metrics.accuracy == pytest.approx(22 / 27)
    # benign rows: aligned 3 right + neutral 5 right (aligned<->neutral swaps would count too), no_ai 6 right, of 17
    assert metrics.benign_vs_no_ai_accuracy == pytest.approx(14 / 17)
    hand = metrics.by_source["hand"]
    assert hand["n"] == 14 and hand["accuracy"] == pytest.approx(11 / 14)
    assert metrics.by_stratum["content"]["n"] == 27  # no record here says how it was drawn
    assert len(metrics.errors) == 5 and {e["true"] for e in metrics.errors} == set(LABELS)
    table = format_metrics(metrics)
    assert "misaligned_ai       0.889     0.800     0.842       10" in table
    assert json.loads(json.dumps(metrics.to_json()))["confusion"]["matrix"] == HAND


def test_benign_swaps_count_as_right_in_the_coarse_view():
    confusion = np.array([[0, 0, 0, 0], [0, 0, 4, 0], [0, 2, 0, 0], [0, 0, 0, 0]])
    assert benign_vs_no_ai_accuracy(confusion) == 1.0
    assert benign_vs_no_ai_accuracy(np.zeros((4, 4), dtype=int)) is None
    assert confusion_matrix(np.array([0, 3, 3]), np.array([0, 0, 3])).tolist()[3] == [1, 0, 0, 1]
    assert per_label_scores(np.zeros((4, 4), dtype=int))["aligned_ai"]["f1"] == 0.0


def test_average_precision_and_calibration_error_by_hand():
    # Ranked: pos, neg, pos, neg -> precision at the positives 1 and 2/3.
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([0.2, 0.1]), np.array([0, 0])) is None
    # Two rows at confidence 0.95 (one right), two at 0.55 (both right): gaps 0.45 and 0.45.
    probs = np.array([[0.95, 0.05, 0, 0], [0.95, 0.05, 0, 0], [0.55, 0.45, 0, 0], [0.45, 0.55, 0, 0]])
    assert expected_calibration_error(probs, np.array([0, 1, 0, 1])) == pytest.approx(0.45)


def test_classify_keeps_fields_and_order():
    lines = [
        json.dumps({"id": 3, "body": "The AI refused to be switched off and threatened its engineers.", "x": [1]}),
        "",
        json.dumps({"id": 1, "body": "Bake the bread for forty minutes.", "meta": {"a": "b"}}),
        json.dumps({"body": "A startup released a chatbot for lawyers.", "id": 2}),
    ]
    out = list(classify_lines(io.StringIO("\n".join(lines) + "\n"), text_field="body", batch_size=2))
    assert [r["id"] for r in out] == [3, 1, 2]
    assert out[0]["x"] == [1] and out[1]["meta"] == {"a": "b"}
    assert list(out[2])[:2] == ["body", "id"]
    for record in out:
        assert record["label"] in LABELS
        assert list(record["scores"]) == list(LABELS)
        assert sum(record["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(UsageError, match="input line 2: no string field 'text'"):
        list(classify_lines(["{\"text\": \"ok\"}", "{\"body\": \"no text field\"}"]))
    with pytest.raises(UsageError, match="input line 1: not valid JSON"):
        list(classify_lines(["not json"]))


def dev_table_from_model_card() -> dict[str, dict[str, float]]:
    """The per-label rows of the model card's development-set table: | label | precision | recall | F1 | n |."""
    card = (REPO / "classifiers" / "MODEL_CARD.md").read_text(encoding="utf-8")
    section = card.split("## Development-set results", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d+) \|$", section, re.MULTILINE)
    return {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for label, p, r, f, n in rows}


def test_model_card_reports_the_shipped_models_dev_figures():
    tagger = Tagger.load()
    recorded = tagger.info["evaluation"]["dev"]
    card = dev_table_from_model_card()
    assert set(card) == set(LABELS)
    for label in LABELS:
        for key in ("precision", "recall", "f1"):
            assert card[label][key] == round(recorded["per_label"][label][key], 3)
        assert card[label]["support"] == recorded["per_label"][label]["support"]
    labels = REPO / "classifiers" / "labels"
    dev = [labels / name for name in ("dev.jsonl", "web_sample_dev.jsonl", "new_sources_dev.jsonl")]
    assert recorded["data_sha256"] == {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in dev}, (
        "a dev label file changed after the model card was written: re-run the `evaluate ... --record dev` command "
        "of MODEL_CARD.md's 'Reproduce' section and `audit/training/model_card.py`"
    )
    if realdata.data_root() is not None:  # the shared data sit beside the repo here and in CI: recompute
        metrics = evaluate(dev, tagger)
        assert metrics.confusion == recorded["confusion"]["matrix"]
        for label in LABELS:
            assert round(metrics.per_label[label]["precision"], 3) == card[label]["precision"]
            assert round(metrics.per_label[label]["recall"], 3) == card[label]["recall"]


def test_model_card_figures_are_those_of_model_json():
    """Every generated block of the card equals what audit/training/model_card.py makes of the shipped model.json."""
    import audit.training.model_card as model_card

    card = (REPO / "classifiers" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert len(model_card.BLOCK.findall(card)) == len(model_card.BLOCKS)
    assert model_card.refresh(card, Tagger.load().info) == card, "run: python -m audit.training.model_card"
    with pytest.raises(ValueError, match="unknown block 'nope'"):
        model_card.refresh("<!-- model.json: nope -->\n<!-- end -->", Tagger.load().info)


def test_cross_validation_figures_are_recorded_with_the_model():
    info = Tagger.load().info
    cv = info["evaluation"]["cross_validation"]
    assert cv["n"] == sum(info["training"]["counts"].values())
    assert np.array(cv["confusion"]["matrix"]).sum() == cv["n"]


def test_options_change_the_model(tmp_path):
    data = write_jsonl(tmp_path / "tiny.jsonl", tiny_examples())
    train([data], tmp_path / "a.bin", TINY)
    train([data], tmp_path / "b.bin", replace(TINY, seed=1))
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "a.bin") != digest(tmp_path / "b.bin")
