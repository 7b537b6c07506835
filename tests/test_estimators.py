"""Unit behaviour of the prevalence estimators (their coverage is in test_estimators_simulation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.estimators import (
    ErrorRates,
    Totals,
    cluster_robust_ratio,
    document_bunching,
    effective_size,
    prevalence_block,
    probabilistic_count,
    rogan_gladen,
    wilson,
    within_document_correlation,
)
from audit.labels import AI_LABELS, LABELS

GOOD = ErrorRates(tp=240, fn=60, fp=3, tn=2997)  # sensitivity 0.8, false-positive rate 0.001


def test_confusion_collapses_to_one_label_against_the_rest() -> None:
    labels = ["a", "b", "c"]
    matrix = [[5, 1, 2], [3, 7, 0], [4, 0, 9]]  # rows: true, columns: predicted
    assert ErrorRates.from_confusion(labels, matrix, ["a"]) == ErrorRates(tp=5, fn=3, fp=7, tn=16)
    assert ErrorRates.from_confusion(labels, matrix, ["a", "b"]) == ErrorRates(tp=16, fn=2, fp=4, tn=9)


@pytest.mark.parametrize(
    ("labels", "matrix", "positive", "message"),
    [
        (["a", "b"], [[1, 2, 3], [4, 5, 6]], ["a"], "must be 2x2"),
        (["a", "b"], [[1, 2], [3, 4]], ["z"], "not in the confusion matrix"),
        (["a", "b"], [[0, 0], [3, 4]], ["a"], "no positives"),
    ],
)
def test_confusion_errors_say_what_is_wrong(labels, matrix, positive, message) -> None:
    with pytest.raises(ValueError, match=message):
        ErrorRates.from_confusion(labels, matrix, positive)


def test_wilson_matches_newcombe_worked_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, method 3 for 81/263: 0.2553 to 0.3662.
    result = wilson(81, 263)
    assert result.estimate == pytest.approx(81 / 263)
    assert result.ci95 == pytest.approx((0.2553, 0.3662), abs=5e-5)


def test_wilson_with_a_smaller_effective_sample_is_wider() -> None:
    full, clustered = wilson(30, 1000), wilson(30, 1000, n_eff=250)
    assert clustered.ci95[0] < full.ci95[0] and clustered.ci95[1] > full.ci95[1]


def test_cluster_variance_ignores_how_often_a_cluster_repeats_an_item() -> None:
    """Five copies of each item inside one cluster carry no more information than one: the cluster-robust
    variance stays put while the item-level one pretends to shrink fivefold."""
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(float)
    x = np.ones(400)
    single = cluster_robust_ratio(y, x)
    copies = cluster_robust_ratio(np.repeat(y, 5), np.repeat(x, 5), np.repeat(np.arange(400), 5))
    naive = cluster_robust_ratio(np.repeat(y, 5), np.repeat(x, 5))
    assert copies.ratio == pytest.approx(single.ratio)
    assert copies.variance == pytest.approx(single.variance)
    assert naive.variance == pytest.approx(single.variance / 5, rel=0.01)
    assert np.isnan(cluster_robust_ratio(y, x, np.zeros(400)).variance)


def test_effective_size_never_exceeds_the_items() -> None:
    assert effective_size(0.1, 0.1 * 0.9 / 50, items=100) == pytest.approx(50)
    assert effective_size(0.1, 1e-9, items=100) == 100
    assert effective_size(0.0, 0.0, items=100) == 100


def test_probabilistic_count_interval_is_poisson_binomial() -> None:
    result = probabilistic_count(50.0, 1000, variance=40.0)
    assert result.estimate == pytest.approx(0.05)
    assert result.ci95 == pytest.approx((0.05 - 1.959964 * np.sqrt(40) / 1000, 0.05 + 1.959964 * np.sqrt(40) / 1000))


def test_adjusted_count_undoes_known_errors() -> None:
    """With 2% true positives, sensitivity 0.8 and 0.1% false positives, 1.698% are flagged; the adjusted
    estimate recovers 2% and its interval holds it, while classify-and-count does not."""
    n = 1_000_000
    k = round(n * (0.02 * 0.8 + 0.98 * 0.001))
    result = rogan_gladen(k, n, GOOD)
    assert result.detectable and result.estimate == pytest.approx(0.02, rel=1e-3)
    assert result.ci95[0] < 0.02 < result.ci95[1]
    assert not wilson(k, n).ci95[0] < 0.02 < wilson(k, n).ci95[1]


def test_positives_the_passage_gate_stops_are_added_back_with_their_uncertainty() -> None:
    """The model saw 80% of the positives (the gate stopped 60 of 300): the estimate is the gated part's
    divided by 0.8, and the interval widens for the gate's measured recall."""
    gated = ErrorRates(tp=240, fn=60, fp=3, tn=2997, gate_missed=75)
    assert gated.gate_recall == pytest.approx(0.8)
    n = 1_000_000
    k = round(n * (0.016 * 0.8 + 0.984 * 0.001))
    plain, corrected = rogan_gladen(k, n, GOOD), rogan_gladen(k, n, gated)
    assert corrected.estimate == pytest.approx(plain.estimate / 0.8)
    assert "passage gate" in corrected.method and "passage gate" not in plain.method
    assert corrected.ci95[0] < 0.02 < corrected.ci95[1]
    assert corrected.ci95[1] - corrected.ci95[0] > (plain.ci95[1] - plain.ci95[0]) / 0.8


def test_error_rates_come_from_the_gated_confusion_when_the_evaluation_has_it() -> None:
    labels = ["misaligned_ai", "no_ai"]
    evaluation = {
        "confusion": {"labels": labels, "matrix": [[6, 4], [1, 89]]},
        "confusion_gated": {"labels": labels, "matrix": [[6, 2], [1, 20]]},
        "confusion_pieces": {"labels": labels, "matrix": [[7, 5], [2, 30]]},
        "gate_passed": {"misaligned_ai": 8, "no_ai": 21},
        "per_label": {"misaligned_ai": {"support": 10}, "no_ai": {"support": 90}},
    }
    evaluation["pieces"] = {"misaligned_ai": 15, "no_ai": 120}
    # documents: sensitivity per passage (6 of the 8 gated positives), 2 positive passages ungated;
    # other units: per piece (7 of the 12 gated pieces of positives), 3 of their 15 pieces ungated;
    # both: false flags per gated piece of the negatives (2 of 32)
    assert ErrorRates.from_evaluation(evaluation, ["misaligned_ai"]) == ErrorRates(
        tp=6, fn=2, fp=2, tn=30, gate_missed=2
    )
    assert ErrorRates.from_evaluation(evaluation, ["misaligned_ai"], "passages") == ErrorRates(
        tp=7, fn=5, fp=2, tn=30, gate_missed=3
    )
    del evaluation["confusion_gated"]
    assert ErrorRates.from_evaluation(evaluation, ["misaligned_ai"]) == ErrorRates(tp=6, fn=4, fp=1, tn=89)


def test_adjusted_count_is_deterministic_and_counts_the_unclassified_as_negative() -> None:
    a = rogan_gladen(500, 20_000, GOOD)
    assert a == rogan_gladen(500, 20_000, GOOD)
    b = rogan_gladen(500, 20_000, GOOD, population=80_000)
    assert b.estimate == pytest.approx(a.estimate / 4)
    assert b.ci95 == pytest.approx((a.ci95[0] / 4, a.ci95[1] / 4), rel=0.05)


def test_rare_text_within_false_positive_noise_gets_an_upper_bound_only() -> None:
    result = rogan_gladen(120, 100_000, GOOD)  # 0.12% flagged; false positives alone give 0.1% (up to ~0.29%)
    assert result.estimate is None and not result.detectable
    assert result.ci95[0] == 0.0 and 0.0 < result.ci95[1] < 0.01
    assert "false positives" in result.message


def test_fewer_flags_than_false_positives_predict_gives_a_bound_without_them() -> None:
    """5 flags in 100,000 when 0.1% false positives predict about 100: the evaluation's false-positive rate does
    not fit, and the bound must not collapse to zero."""
    result = rogan_gladen(5, 100_000, GOOD)
    assert result.estimate is None
    assert result.ci95[1] >= 5 / 100_000 / 0.8
    assert "does not fit" in result.message


def test_a_useless_classifier_gives_no_estimate() -> None:
    result = rogan_gladen(500, 10_000, ErrorRates(tp=10, fn=90, fp=200, tn=800))
    assert result.estimate is None and result.ci95 == (0.0, 1.0)


def test_documents_of_one_passage_reduce_to_the_passage_formula() -> None:
    plain = rogan_gladen(500, 20_000, GOOD)
    per_doc = rogan_gladen(500, 20_000, GOOD, passages_per_item=np.ones(20_000, dtype=int))
    assert per_doc.estimate == pytest.approx(plain.estimate)


def test_long_documents_attract_more_false_flags() -> None:
    """The same flagged share means fewer truly positive documents when documents have many passages."""
    short = rogan_gladen(1000, 20_000, GOOD, passages_per_item=np.full(20_000, 1))
    long = rogan_gladen(1000, 20_000, GOOD, passages_per_item=np.full(20_000, 10))
    assert long.estimate < short.estimate


def test_bad_amounts_are_rejected() -> None:
    with pytest.raises(ValueError, match="between 0 and n"):
        rogan_gladen(11, 10, GOOD)
    with pytest.raises(ValueError, match="smaller than the classified"):
        rogan_gladen(1, 10, GOOD, population=5)


def _docs(rng: np.random.Generator, n: int, tokens: bool) -> dict[str, np.ndarray]:
    passages = rng.integers(0, 6, n)
    docs = {
        "doc_id": np.array([f"d{i}" for i in range(n)], dtype=object),
        "domain": np.array([f"site{i % 40}.example" if i % 9 else None for i in range(n)], dtype=object),
        "passages": passages,
        "gated_passages": passages,
        "gated_characters": passages * 400,
        "characters": passages * 400 + 30,
        "tokens": passages * 90 + 7 if tokens else None,
    }
    for i, label in enumerate(AI_LABELS):
        hits = rng.binomial(passages, 0.01 * (i + 1))
        docs[f"n_{label}"] = hits
        docs[f"chars_{label}"] = hits * 400
        docs[f"sum_p_{label}"] = hits * 0.9 + passages * 0.002
        docs[f"sum_pchars_{label}"] = docs[f"sum_p_{label}"] * 400
        docs[f"any_p_{label}"] = np.minimum(1.0, docs[f"sum_p_{label}"])
    return docs


EVALUATION = {
    "confusion": {"labels": list(LABELS), "matrix": [[90, 4, 5, 1], [2, 85, 10, 3], [2, 5, 180, 13], [1, 1, 8, 990]]}
}


@pytest.mark.parametrize("sampled", [False, True])
def test_prevalence_block_has_the_contract_shape_for_every_label_and_unit(sampled: bool) -> None:
    docs = _docs(np.random.default_rng(1), 3000, tokens=True)
    totals = Totals(
        documents=12_000,
        characters=int(docs["characters"].sum()) * 3,
        passages=int(docs["passages"].sum()),
        tokens=int(docs["tokens"].sum()) * 3,
    )
    block = prevalence_block(docs, totals, EVALUATION, LABELS, sampled=sampled)
    assert set(block) == set(LABELS)
    for label in LABELS:
        assert set(block[label]) == {"documents", "passages", "characters", "tokens"}
        for entry in block[label].values():
            lo, hi = entry["ci95"]
            assert 0.0 <= lo <= hi <= 1.0
            assert entry["method"].startswith("rogan_gladen") or entry["method"].startswith("1 - rogan_gladen")
            assert entry["estimate"] is None or lo <= entry["estimate"] <= hi
            assert {"adjusted", "classify_and_count"} <= set(entry["estimators"])
    flagged_docs = np.mean(docs["n_misaligned_ai"] > 0) * 3000 / 12_000
    assert block["misaligned_ai"]["documents"]["estimators"]["classify_and_count"]["estimate"] == pytest.approx(
        flagged_docs
    )
    any_ai = block["no_ai"]["documents"]["estimators"]["classify_and_count"]["estimate"]
    flagged_any = np.mean(sum(docs[f"n_{L}"] for L in AI_LABELS) > 0) * 3000 / 12_000
    assert any_ai == pytest.approx(1 - flagged_any)


def test_prevalence_block_without_tokens_or_evaluation_falls_back_and_says_so() -> None:
    docs = _docs(np.random.default_rng(2), 500, tokens=False)
    totals = Totals(documents=2000, characters=int(docs["characters"].sum()) * 2, passages=int(docs["passages"].sum()))
    block = prevalence_block(docs, totals, {}, LABELS)
    entry = block["misaligned_ai"]["documents"]
    assert "tokens" not in block["misaligned_ai"]
    assert entry["method"].startswith("classify_and_count")
    assert "no evaluation" in entry["message"]
    assert "adjusted" not in entry["estimators"]


def test_a_label_missing_from_the_evaluation_falls_back_for_that_label_only() -> None:
    docs = _docs(np.random.default_rng(3), 500, tokens=False)
    totals = Totals(documents=2000, characters=int(docs["characters"].sum()) * 2, passages=int(docs["passages"].sum()))
    matrix = [row[:] for row in EVALUATION["confusion"]["matrix"]]
    matrix[1] = [0, 0, 0, 0]  # no aligned_ai example was evaluated
    block = prevalence_block(docs, totals, {"confusion": {"labels": list(LABELS), "matrix": matrix}}, LABELS)
    assert block["misaligned_ai"]["documents"]["method"].startswith("rogan_gladen")
    aligned = block["aligned_ai"]["documents"]
    assert aligned["method"].startswith("classify_and_count") and "no positives" in aligned["message"]


def test_bunched_false_flags_are_measured_and_shrink_the_false_flag_rate_of_documents() -> None:
    """Each document has its own false-positive propensity (correlation 0.2 between its passages), and some hold
    one true passage. The moments, with those positives taken out, recover the bunching, and the adjusted
    estimate then recovers the positive share, which independent errors miss."""
    rng = np.random.default_rng(4)
    rates = ErrorRates(tp=600, fn=400, fp=50, tn=9950)  # sensitivity 0.6, false-positive rate 0.005
    passages = 1 + rng.poisson(15, 40_000)
    c = 1 / 0.2 - 1
    positive = rng.random(40_000) < 0.1
    false_flags = rng.binomial(passages - positive, rng.beta(0.005 * c, 0.995 * c, 40_000))
    found = positive & (rng.random(40_000) < 0.6)
    flagged = (false_flags > 0) | found
    assert within_document_correlation(false_flags, passages) == pytest.approx(0.2, abs=0.03)
    bunching = document_bunching(false_flags + found, passages, rates)
    assert bunching.low <= bunching.correlation <= bunching.high
    assert bunching.correlation == pytest.approx(0.2, abs=0.04)
    bunched = rogan_gladen(flagged.sum(), 40_000, rates, passages_per_item=passages, bunching=bunching)
    independent = rogan_gladen(flagged.sum(), 40_000, rates, passages_per_item=passages)
    assert bunched.estimate == pytest.approx(positive.mean(), rel=0.1)
    # Independent errors: the point estimate falls short, but the interval, whose upper limit needs no model of
    # flags within a document, still covers the truth.
    assert independent.estimate is None or independent.estimate < 0.8 * positive.mean()
    assert independent.ci95[0] <= positive.mean() <= independent.ci95[1]


def test_the_terminal_says_a_not_detectable_bound_in_plain_words_naming_its_population() -> None:
    from audit.cli import headline_words

    bound = {
        "estimate": None,
        "ci95": [0.0, 0.0542],
        "detectable": False,
        "population": "of documents",
        "message": "at most 5.4% of documents; cannot be told from zero: ...",
    }
    assert headline_words(bound) == "at most 5.42% of documents; cannot be told from zero"
    found = {"estimate": 0.041, "ci95": [0.02, 0.063], "detectable": True, "population": "of documents"}
    assert headline_words(found) == "4.10% of documents (95% interval 2.00%-6.30%)"
    few = {**bound, "too_few": True, "message": "too few documents to estimate: only 18 documents ..."}
    assert headline_words(few).startswith("too few documents to estimate: only 18")


def test_too_few_documents_withholds_every_headline_and_names_the_counts() -> None:
    docs = _docs(np.random.default_rng(2), 20, tokens=False)
    totals = Totals(documents=60, characters=int(docs["characters"].sum()) * 3, passages=int(docs["passages"].sum()))
    block = prevalence_block(docs, totals, EVALUATION, LABELS)
    for label in LABELS:
        entry = block[label]["documents"]
        assert entry["estimate"] is None and entry["too_few"] and not entry["detectable"]
        assert "too few documents to estimate" in entry["message"] and "20 documents that name AI" in entry["message"]


def test_the_within_document_model_is_checked_against_documents_with_two_flags() -> None:
    """Beta-binomial false flags (correlation 0.2) pass the check; flags that come in pairs (every flagged
    document has exactly two) have the same mean but not that shape, and fail it, which sends the lower limit to
    independence."""
    rng = np.random.default_rng(7)
    rates = ErrorRates(tp=600, fn=400, fp=50, tn=9950)
    passages = 1 + rng.poisson(8, 20_000)
    c = 1 / 0.2 - 1
    bunched = rng.binomial(passages, rng.beta(0.005 * c, 0.995 * c, 20_000))  # the evaluation's rate
    good = document_bunching(bunched, passages, rates)
    assert good.check["fits"], good.check
    assert good.check["predicted"] == pytest.approx(good.check["observed"], rel=0.1)
    pairs = np.where(rng.random(20_000) < 0.02, 2, 0)
    bad = document_bunching(pairs, passages, rates)
    assert not bad.check["fits"] and bad.low == 0.0, bad.check


def test_evaluation_strata_add_their_error_rates_and_widen_the_interval_where_they_disagree() -> None:
    """A web stratum of negatives only (a uniform sample: false positives on web text) borrows the pooled
    sensitivity; an enriched stratum of positives only borrows the pooled false-positive rate. A web stratum
    that flags more than the pooled rate lowers the lower limit: its rate is plausible too."""
    labels = list(LABELS)
    web = {"confusion": {"labels": labels, "matrix": [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [30, 0, 0, 970]]}}
    enriched = {"confusion": {"labels": labels, "matrix": [[40, 0, 10, 10], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]}}
    evaluation = {**EVALUATION, "strata": {"web": web, "enriched": enriched}}
    pooled = ErrorRates.from_evaluation(evaluation, ["misaligned_ai"])
    web_rates, enriched_rates = ErrorRates.strata(evaluation, ["misaligned_ai"])
    assert (web_rates.tp, web_rates.fn, web_rates.fp, web_rates.tn) == (pooled.tp, pooled.fn, 30, 970)
    assert (enriched_rates.tp, enriched_rates.fn, enriched_rates.fp, enriched_rates.tn) == (
        40,
        20,
        pooled.fp,
        pooled.tn,
    )
    alone = rogan_gladen(800, 10_000, pooled)
    both = rogan_gladen(800, 10_000, pooled, strata=[web_rates, enriched_rates])
    assert both.estimate == alone.estimate
    assert both.ci95[0] < alone.ci95[0] and both.ci95[1] > alone.ci95[1]
    assert ErrorRates.strata(EVALUATION, ["misaligned_ai"]) == []


def test_an_enriched_stratum_gives_sensitivity_but_not_a_false_positive_rate() -> None:
    """A stratum chosen for its content (`false_positives_apply` false: essays, fiction, agent logs) may flag its
    negatives far more often than web text is flagged; its sensitivity counts, its false flags borrow the pooled."""
    labels = list(LABELS)
    essays = {
        "confusion": {"labels": labels, "matrix": [[40, 0, 10, 10], [0, 0, 0, 0], [300, 0, 700, 0], [0, 0, 0, 0]]},
        "false_positives_apply": False,
    }
    pooled = ErrorRates.from_evaluation(EVALUATION, ["misaligned_ai"])
    (rates,) = ErrorRates.strata({**EVALUATION, "strata": {"essays": essays}}, ["misaligned_ai"])
    assert (rates.tp, rates.fn, rates.fp, rates.tn) == (40, 20, pooled.fp, pooled.tn)
    counted = ErrorRates.strata(
        {**EVALUATION, "strata": {"essays": {**essays, "false_positives_apply": True}}}, ["misaligned_ai"]
    )[0]
    assert (counted.fp, counted.tn) == (300, 700)
    web = {**essays, "false_positives_apply": True, "sensitivity_applies": False}  # a uniform sample, few positives
    (web_rates,) = ErrorRates.strata({**EVALUATION, "strata": {"web": web}}, ["misaligned_ai"])
    assert (web_rates.tp, web_rates.fn, web_rates.fp, web_rates.tn) == (pooled.tp, pooled.fn, 300, 700)
