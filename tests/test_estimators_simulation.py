"""Do the prevalence intervals mean what they say? Simulated corpora with a known truth, classifiers with known
error rates measured on labelled evaluation sets of known size.

Pass criteria (issue 5): in every setting the 95% interval covers the true share in at least 93% of the
replicates (>= 200 each), and the unclipped point estimate is unbiased: its mean over the replicates is within
5% of the truth or 3.5 Monte Carlo standard errors of it, whichever is larger. The truth is the realised share in
the simulated corpus (what the contract promises), not the generating probability.
"""

from __future__ import annotations

import numpy as np
import pytest

from audit.estimators import (
    ErrorRates,
    cluster_robust_ratio,
    probabilistic_count,
    rogan_gladen,
    document_bunching,
)

REPLICATES = 200
COVERAGE = 0.93
DRAWS = 4000
PREVALENCES = (1e-4, 1e-3, 1e-2, 5e-2)
# (sensitivity, false-positive rate, evaluation positives, evaluation negatives)
CLASSIFIERS = {
    "good": (0.80, 0.001, 300, 3000),
    "weak": (0.60, 0.005, 150, 1500),
    "sharp": (0.95, 0.0002, 500, 10000),
}


def _evaluations(rng: np.random.Generator, classifier: tuple) -> list[ErrorRates]:
    """One labelled evaluation per replicate: its counts are random, like a real evaluation set's."""
    s, f, n_pos, n_neg = classifier
    tp = rng.binomial(n_pos, s, REPLICATES)
    fp = rng.binomial(n_neg, f, REPLICATES)
    return [ErrorRates(tp=int(a), fn=int(n_pos - a), fp=int(b), tn=int(n_neg - b)) for a, b in zip(tp, fp, strict=True)]


def _check(estimates: list, truth: np.ndarray, prevalence: float) -> None:
    lo = np.array([e.ci95[0] for e in estimates])
    hi = np.array([e.ci95[1] for e in estimates])
    coverage = float(np.mean((lo <= truth) & (truth <= hi)))
    assert coverage >= COVERAGE, f"95% interval covered the truth in {coverage:.1%} of {len(truth)} replicates"
    assert all(e.estimate is None or e.estimate >= 0 for e in estimates), "a negative prevalence was reported"
    raw = np.array([e.details["estimate_unclipped"] for e in estimates])
    bias = raw.mean() - truth.mean()
    tolerance = max(0.05 * prevalence, 3.5 * raw.std(ddof=1) / np.sqrt(len(raw)))
    assert abs(bias) <= tolerance, (
        f"mean estimate {raw.mean():.3g} vs truth {truth.mean():.3g} (tolerance {tolerance:.3g})"
    )


@pytest.mark.parametrize("prevalence", PREVALENCES)
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_passage_level_adjusted_count_covers_the_truth(name: str, prevalence: float) -> None:
    """Every item classified (passages): Rogan-Gladen with evaluation uncertainty."""
    rng = np.random.default_rng([7, int(prevalence * 1e6), len(name)])
    s, f, _, _ = CLASSIFIERS[name]
    n = 200_000
    positives = rng.binomial(n, prevalence, REPLICATES)
    flagged = rng.binomial(positives, s) + rng.binomial(n - positives, f)
    estimates = [
        rogan_gladen(int(k), n, rates, draws=DRAWS)
        for k, rates in zip(flagged, _evaluations(rng, CLASSIFIERS[name]), strict=True)
    ]
    _check(estimates, positives / n, prevalence)


@pytest.mark.parametrize("prevalence", PREVALENCES)
def test_positives_the_passage_gate_stops_are_added_back(prevalence: float) -> None:
    """The passage gate lets 90% of positive passages and 30% of negative ones reach the model; the rest are
    no_ai unseen. The evaluation measures the gate's recall as it measures the model's rates (random counts),
    and the estimate divides by it."""
    rng = np.random.default_rng([13, int(prevalence * 1e6)])
    s, f, n_pos, n_neg = CLASSIFIERS["good"]
    recall, negatives_passed, n = 0.9, 0.3, 200_000
    positives = rng.binomial(n, prevalence, REPLICATES)
    reached = rng.binomial(positives, recall)
    seen_negatives = rng.binomial(n - positives, negatives_passed)
    flagged = rng.binomial(reached, s) + rng.binomial(seen_negatives, f)
    evaluations = []
    for rates in _evaluations(rng, (s, f, n_pos, n_neg)):
        passed = rng.binomial(n_pos, recall)
        tp = rng.binomial(passed, s)
        evaluations.append(
            ErrorRates(tp=int(tp), fn=int(passed - tp), fp=rates.fp, tn=rates.tn, gate_missed=int(n_pos - passed))
        )
    estimates = [
        rogan_gladen(int(k), int(r + g), rates, population=n, draws=DRAWS)
        for k, r, g, rates in zip(flagged, reached, seen_negatives, evaluations, strict=True)
    ]
    _check(estimates, positives / n, prevalence)


@pytest.mark.parametrize("prevalence", PREVALENCES)
def test_document_level_adjusted_count_with_gate_covers_the_truth(prevalence: float) -> None:
    """Documents: the gate passes 30% of them (all positives among those); a document is flagged when any of
    its passages is, so false flags grow with its passage count; a positive document holds one positive passage."""
    rng = np.random.default_rng([11, int(prevalence * 1e6)])
    s, f, n_pos, n_neg = CLASSIFIERS["good"]
    documents, gated = 100_000, 30_000
    passages = 1 + rng.poisson(2.5, gated)
    flags, truth = np.empty(REPLICATES), np.empty(REPLICATES)
    for i in range(REPLICATES):
        positive = rng.random(gated) < prevalence * documents / gated
        false_flag = rng.random(gated) < 1.0 - (1.0 - f) ** (passages - positive)
        flags[i] = np.sum(false_flag | (positive & (rng.random(gated) < s)))
        truth[i] = positive.sum() / documents
    estimates = [
        rogan_gladen(k, gated, rates, population=documents, passages_per_item=passages, draws=DRAWS)
        for k, rates in zip(flags, _evaluations(rng, (s, f, n_pos, n_neg)), strict=True)
    ]
    _check(estimates, truth, prevalence)


@pytest.mark.parametrize("prevalence", (1e-3, 1e-2, 5e-2))
def test_document_level_with_bunched_false_flags_covers_the_truth(prevalence: float) -> None:
    """Real false flags bunch in some documents: here each document has its own false-positive propensity
    (beta-distributed around f, intra-document correlation 0.2) and documents are long, so treating passages
    as independent would count far too many falsely flagged documents. The correlation is estimated from the
    flagged counts, as the summary does."""
    rng = np.random.default_rng([19, int(prevalence * 1e6)])
    s, f, n_pos, n_neg = CLASSIFIERS["weak"]
    documents, gated, rho = 50_000, 20_000, 0.2
    passages = 1 + rng.poisson(15, gated)
    c = 1 / rho - 1
    evaluations = _evaluations(rng, (s, f, n_pos, n_neg))
    flags, truth, bunching = np.empty(REPLICATES), np.empty(REPLICATES), []
    for i, rates in enumerate(evaluations):
        positive = rng.random(gated) < prevalence * documents / gated
        false_flags = rng.binomial(passages - positive, rng.beta(f * c, (1 - f) * c, gated))
        found = positive & (rng.random(gated) < s)
        flags[i] = np.sum((false_flags > 0) | found)
        truth[i] = positive.sum() / documents
        bunching.append(document_bunching(false_flags + found, passages, rates))
    estimates = [
        rogan_gladen(k, gated, rates, population=documents, passages_per_item=passages, bunching=b, draws=DRAWS)
        for k, rates, b in zip(flags, evaluations, bunching, strict=True)
    ]
    _check(estimates, truth, prevalence)


@pytest.mark.parametrize("prevalence", (1e-3, 1e-2, 5e-2))
def test_hash_sample_of_documents_covers_the_corpus_passage_share(prevalence: float) -> None:
    """--sample-rate 0.1 over one fixed corpus whose positive passages bunch up: a positive document holds about
    half positive passages. Only the sample varies. Taking documents as clusters must cover the whole corpus's
    passage share (treating passages as independent does not: about 87% at 5%)."""
    rng = np.random.default_rng([13, int(prevalence * 1e6)])
    s, f, n_pos, n_neg = CLASSIFIERS["good"]
    documents = 40_000
    passages = 1 + rng.poisson(4, documents)
    positives = np.where(rng.random(documents) < 2 * prevalence, rng.binomial(passages, 0.5), 0)
    truth = np.full(REPLICATES, positives.sum() / passages.sum())
    estimates = []
    for rates in _evaluations(rng, (s, f, n_pos, n_neg)):
        sampled = rng.random(documents) < 0.1
        m, pos = passages[sampled], positives[sampled]
        flagged = rng.binomial(pos, s) + rng.binomial(m - pos, f)
        ratio = cluster_robust_ratio(flagged, m)
        estimates.append(
            rogan_gladen(
                flagged.sum(), m.sum(), rates, rate_variance=ratio.variance, finite_population=False, draws=DRAWS
            )
        )
    _check(estimates, truth, prevalence)


@pytest.mark.parametrize("prevalence", PREVALENCES)
def test_probabilistic_count_covers_the_truth_when_calibrated(prevalence: float) -> None:
    """Calibrated probabilities (each item's label is drawn from its own probability): the mean probability
    and its Poisson-binomial interval hold. (Under prior shift they would not; hence not the headline.)"""
    rng = np.random.default_rng([17, int(prevalence * 1e6)])
    n = 50_000
    hits = np.empty(REPLICATES)
    sums = np.empty(REPLICATES)
    for i in range(REPLICATES):
        probs = np.where(rng.random(n) < prevalence, rng.beta(8, 2, n), rng.beta(0.02, 200, n))
        hits[i] = np.sum(rng.random(n) < probs)
        sums[i] = probs.sum()
    estimates = [probabilistic_count(p, n) for p in sums]
    lo = np.array([e.ci95[0] for e in estimates])
    hi = np.array([e.ci95[1] for e in estimates])
    truth = hits / n
    assert np.mean((lo <= truth) & (truth <= hi)) >= COVERAGE
    assert abs(np.mean(sums / n) - truth.mean()) <= max(
        0.05 * truth.mean(), 3.5 * truth.std(ddof=1) / np.sqrt(REPLICATES)
    )
