"""Prevalence estimators with 95% intervals.

A count of classifier hits is not a prevalence: false positives swamp rare text and misses hide it. Each function
here turns what a scan measured into an estimate of the true share, with an interval and the name of its method,
so the summary can show them side by side. All functions are pure (numbers in, `Estimate` out) and deterministic:
the Monte Carlo parts use a fixed seed.

Vocabulary used throughout:
- an *item* is a document or a passage; an *amount* is a count of items, characters or tokens;
- the *classified* part is what the model saw (passages of gate-passed documents); the *population* is everything
  the estimate is about (all documents of the corpus, or of the `--sample-rate` sample standing in for it);
- `rate` is the flagged share of the classified amount; `prevalence` is the true share of the population.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from math import lgamma

import numpy as np

Z95 = 1.959963984540054  # the 97.5% point of the standard normal
DRAWS = 20_000
SEED = 20_260_127
BOOTSTRAP_BLOCKS = 1_000


@dataclass(frozen=True)
class Estimate:
    """One estimate of a prevalence. `estimate` is None when the data cannot tell the share apart from zero
    (`detectable` False); `ci95` is then [0, upper bound]."""

    estimate: float | None
    ci95: tuple[float, float]
    method: str
    detectable: bool = True
    clipped: bool = False
    message: str | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["ci95"] = [float(self.ci95[0]), float(self.ci95[1])]
        if not out["message"]:
            del out["message"]
        return out

    def complement(self, method: str) -> Estimate:
        """The estimate of 1 - share (used for `no_ai`, the complement of "any AI label")."""
        lo, hi = self.ci95
        return Estimate(
            estimate=None if self.estimate is None else 1.0 - self.estimate,
            ci95=(1.0 - hi, 1.0 - lo),
            method=method,
            detectable=self.detectable,
            clipped=self.clipped,
            message=self.message
            and f"any AI label: {self.message}" + ("" if self.detectable else "; for no_ai that is a lower bound"),
            details=self.details,
        )


@dataclass(frozen=True)
class ErrorRates:
    """The classifier's confusion for one label (or a set of labels) against the rest, as counts on its labelled
    evaluation set. Counts, not rates, because their uncertainty is what the adjusted estimate must carry."""

    tp: int
    fn: int
    fp: int
    tn: int
    gate_missed: int = 0  # positives the passage gate kept from the model (tp and fn count those it let through)

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn)

    @property
    def gate_recall(self) -> float:
        """Share of positives that reach the model at all; the estimates divide by it."""
        return (self.tp + self.fn) / (self.tp + self.fn + self.gate_missed)

    @property
    def false_positive_rate(self) -> float:
        return self.fp / (self.fp + self.tn)

    @classmethod
    def from_confusion(
        cls, labels: Sequence[str], matrix: Sequence[Sequence[int]], positive: Iterable[str], partial: bool = False
    ) -> ErrorRates:
        """Collapse a square confusion matrix (rows: true label, columns: predicted label) to positive-vs-rest.
        `partial` allows a matrix without positives or without negatives (a stratum may hold only one side)."""
        m = np.asarray(matrix, dtype=np.int64)
        if m.ndim != 2 or m.shape != (len(labels), len(labels)):
            raise ValueError(
                f"confusion matrix must be {len(labels)}x{len(labels)} for labels {list(labels)}, got shape {m.shape}"
            )
        wanted = set(positive)
        unknown = wanted - set(labels)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not in the confusion matrix labels {list(labels)}")
        pos = np.array([lab in wanted for lab in labels])
        tp = int(m[np.ix_(pos, pos)].sum())
        fn = int(m[np.ix_(pos, ~pos)].sum())
        fp = int(m[np.ix_(~pos, pos)].sum())
        tn = int(m[np.ix_(~pos, ~pos)].sum())
        if not partial and (tp + fn == 0 or fp + tn == 0):
            raise ValueError(
                f"the evaluation set has no {'positives' if tp + fn == 0 else 'negatives'} for {sorted(wanted)}"
            )
        return cls(tp=tp, fn=fn, fp=fp, tn=tn)

    @classmethod
    def strata(cls, evaluation: Mapping, positive: Sequence[str], unit: str = "documents") -> list[ErrorRates]:
        """Error rates per labelled stratum of the evaluation (`evaluation["strata"]`: stratum name -> an evaluation
        of the same shape, each from a recorded sampling design, e.g. a uniform sample of gated web passages and
        enriched strata). A stratum that holds only negatives gives a false-positive rate and borrows the pooled
        sensitivity; one with only positives gives a sensitivity and borrows the pooled false-positive rate. Empty
        when the evaluation records no strata (then the pooled rates stand alone)."""
        pooled = cls.from_evaluation(evaluation, positive, unit)
        out = []
        for stratum in (evaluation.get("strata") or {}).values():
            found = cls.from_evaluation(stratum, positive, unit, partial=True)
            # An enriched stratum (chosen for its content) says how often positives are found, not how often a
            # corpus's text is falsely flagged; a uniform web sample says the opposite (its few positives say little
            # about sensitivity). The evaluation marks which rates each stratum stands for.
            has_positives = found.tp + found.fn > 0 and stratum.get("sensitivity_applies", True)
            has_negatives = found.fp + found.tn > 0 and stratum.get("false_positives_apply", True)
            if has_positives or has_negatives:
                out.append(
                    cls(
                        tp=found.tp if has_positives else pooled.tp,
                        fn=found.fn if has_positives else pooled.fn,
                        fp=found.fp if has_negatives else pooled.fp,
                        tn=found.tn if has_negatives else pooled.tn,
                        gate_missed=found.gate_missed if has_positives else pooled.gate_missed,
                    )
                )
        return out

    @classmethod
    def from_evaluation(
        cls, evaluation: Mapping, positive: Sequence[str], unit: str = "documents", partial: bool = False
    ) -> ErrorRates:
        """From a model's recorded evaluation (`training.evaluate`), for one estimation unit.

        With the passage gate's figures in it, false positives are counted per gated piece of the negative
        passages (the scan's passage, which is what can be falsely flagged). A positive document holds a
        labelled-size positive passage, so for documents sensitivity and gate recall are per labelled passage
        (flagged when any piece is); for passages, characters and tokens they are per piece of the positive
        passages. Without those figures the plain confusion stands for the whole decision."""
        gated = evaluation.get("confusion_gated")
        if not gated:
            confusion = evaluation["confusion"]
            return cls.from_confusion(confusion["labels"], confusion["matrix"], positive, partial)
        pieces = evaluation["confusion_pieces"]
        per_piece = cls.from_confusion(pieces["labels"], pieces["matrix"], positive, partial)
        if unit == "documents":
            found = cls.from_confusion(gated["labels"], gated["matrix"], positive, partial)
            support, passed = evaluation["per_label"], evaluation["gate_passed"]
            missed = sum(int(support[label]["support"]) - int(passed[label]) for label in positive)
        else:
            found = per_piece
            missed = sum(int(evaluation["pieces"][label]) for label in positive) - (per_piece.tp + per_piece.fn)
        return cls(tp=found.tp, fn=found.fn, fp=per_piece.fp, tn=per_piece.tn, gate_missed=missed)


@dataclass(frozen=True)
class Ratio:
    """A ratio of totals with its cluster-robust (linearisation) variance."""

    ratio: float
    variance: float
    clusters: int


def cluster_robust_ratio(values: np.ndarray, amounts: np.ndarray, clusters: np.ndarray | None = None) -> Ratio:
    """Ratio estimator sum(values) / sum(amounts) over items, with the Taylor-linearisation variance taken over
    clusters (documents, domains or shards): items of one cluster may share errors (near-duplicates, one site's
    boilerplate), so the cluster, not the item, is the independent unit. Without `clusters`, each item is its own."""
    y = np.asarray(values, dtype=np.float64)
    x = np.asarray(amounts, dtype=np.float64)
    total = x.sum()
    if total <= 0:
        raise ValueError("cluster_robust_ratio needs a positive total amount")
    r = float(y.sum() / total)
    if clusters is not None:
        _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
        y = np.bincount(inverse, weights=y)
        x = np.bincount(inverse, weights=x)
    g = len(y)
    if g < 2:
        return Ratio(ratio=r, variance=float("nan"), clusters=g)
    resid = y - r * x
    var = g / (g - 1) * float(np.dot(resid, resid)) / total**2
    return Ratio(ratio=r, variance=var, clusters=g)


def effective_size(rate: float, variance: float | None, items: float) -> float:
    """How many independent items a measured rate is worth (Korn-Graubard effective sample size): the binomial
    sample size with the same variance, never more than the items behind it (a small or zero measured variance
    must not make an interval falsely tight)."""
    if variance is None or not np.isfinite(variance) or variance <= 0 or rate <= 0 or rate >= 1:
        return float(items)
    return float(min(items, rate * (1 - rate) / variance))


def wilson(k: float, n: float, n_eff: float | None = None) -> Estimate:
    """Classify-and-count: the flagged share with a Wilson interval. Sampling error only; classifier errors are
    ignored, so it is biased whenever the classifier errs. `n_eff` shrinks the sample for clustering."""
    if n <= 0:
        raise ValueError("wilson needs n > 0")
    p = k / n
    m = n if n_eff is None else n_eff
    denom = 1 + Z95**2 / m
    centre = (p + Z95**2 / (2 * m)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / m + Z95**2 / (4 * m * m)) / denom
    return Estimate(
        estimate=float(p),
        ci95=(0.0 if k <= 0 else max(0.0, float(centre - half)), 1.0 if k >= n else min(1.0, float(centre + half))),
        method="classify_and_count (Wilson interval; sampling error only, classifier errors ignored)",
        details={"flagged": float(k), "total": float(n), "effective_n": float(m)},
    )


def probabilistic_count(sum_p: float, n: float, variance: float | None = None, weight: float = 1.0) -> Estimate:
    """Probabilistic count: the mean calibrated probability. Unbiased only if the probabilities are calibrated on
    this corpus; calibration measured on a balanced evaluation set overstates rare labels (prior shift).

    The interval is normal on the count, with the Poisson-binomial variance sum p(1-p) of the true count given
    calibrated probabilities. Without `variance`, sum p x `weight` is used (`weight`: the average amount per item,
    e.g. characters per passage): an upper bound of it when items weigh alike, exact in the limit of small p."""
    if n <= 0:
        raise ValueError("probabilistic_count needs n > 0")
    if variance is None:
        variance = sum_p * weight
    half = Z95 * np.sqrt(max(variance, 0.0))
    return Estimate(
        estimate=float(sum_p / n),
        ci95=(max(0.0, float((sum_p - half) / n)), min(1.0, float((sum_p + half) / n))),
        method="probabilistic_count (mean calibrated probability; Poisson-binomial interval; assumes calibration)",
        details={"sum_p": float(sum_p), "total": float(n), "variance": float(variance)},
    )


def _document_moments(flags: np.ndarray, passages: np.ndarray) -> np.ndarray:
    """Per document: 1, x, m, x(x-1), m(m-1), (m-1)(m-2), m-1 for x flagged of m passages (rows of sums)."""
    x = np.asarray(flags, dtype=np.float64)
    m = np.asarray(passages, dtype=np.float64)
    return np.stack([np.ones_like(x), x, m, x * (x - 1), m * (m - 1), (m - 1) * (m - 2), m - 1])


def _correlation_from_moments(sums: np.ndarray, positive_share: float, sensitivity: float) -> np.ndarray:
    one, x, m, xx, mm, m2, m1 = sums / np.where(sums[0] > 0, sums[0], 1.0)  # a bootstrap draw may weigh nothing
    found = positive_share * sensitivity
    rate = (x - found) / np.maximum(m - positive_share, 1e-12)
    pairs = (1 - positive_share) * mm + positive_share * m2
    both_false = (xx - 2 * found * m1 * rate) / np.maximum(pairs, 1e-12)  # E[p_d^2] of a negative passage
    ok = (rate > 0) & (rate < 1) & (pairs > 0)
    rho = np.where(ok, (both_false - rate**2) / np.where(ok, rate * (1 - rate), 1.0), 0.0)
    return np.clip(rho, 0.0, 0.99)


def within_document_correlation(
    flags: np.ndarray, passages: np.ndarray, positive_share: float = 0.0, sensitivity: float = 0.0
) -> float:
    """How strongly false flags bunch within documents: the intra-document correlation rho of a beta-binomial
    model of each document's count of flagged passages (0 = independent passages; clipped to [0, 0.99]), by the
    method of moments. False flags bunch in AI-heavy documents, and ignoring that overstates how many documents
    get one. A share `positive_share` of the documents is taken to hold one true passage, found with
    `sensitivity`; its flags are taken out of the moments, else they would pass for weaker bunching."""
    sums = _document_moments(flags, passages).sum(axis=1)
    return float(_correlation_from_moments(sums, positive_share, sensitivity))


@dataclass(frozen=True)
class Bunching:
    """Within-document correlation of false flags: the point value and a 95% bootstrap range, and the check of
    the fitted model (`check`: observed and predicted share of documents with two flags or more, and whether
    they agree; when they do not, `low` is 0, independence, the most falsely flagged documents)."""

    correlation: float
    low: float
    high: float
    check: dict = field(default_factory=dict)


_LGAMMA = np.vectorize(lgamma, otypes=[np.float64])


def _log_beta(x, y) -> np.ndarray:
    return _LGAMMA(x) + _LGAMMA(y) - _LGAMMA(np.add(x, y))


def _beta_binomial_tail(f: float, m: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """P(X >= 1) and P(X >= 2) for X flagged of m passages, each falsely flagged at rate f with within-document
    correlation rho (beta-binomial; binomial at rho 0)."""
    m = np.asarray(m, dtype=np.float64)
    f = min(max(f, 1e-9), 1 - 1e-9)
    if rho <= 0:
        zero, one = (1 - f) ** m, m * f * (1 - f) ** np.maximum(m - 1, 0)
    else:
        c = 1.0 / rho - 1.0
        a, b = f * c, (1 - f) * c
        zero = np.exp(_log_beta(a, m + b) - _log_beta(a, b))
        one = m * np.exp(_log_beta(1 + a, np.maximum(m - 1, 0) + b) - _log_beta(a, b))
    one = np.where(m >= 1, one, 0.0)
    return 1 - zero, np.clip(1 - zero - one, 0.0, 1.0)


def check_bunching(
    flags: np.ndarray, passages: np.ndarray, rho: float, positive_share: float, sensitivity: float
) -> dict:
    """Hold the fitted within-document model to what it was not fitted on: the moments fix the mean and the
    pairs of flags, so the share of documents with two flags or more is a fair test. A positive document holds
    one positive passage (flagged at `sensitivity`) among its m. Agreement: within 3 standard errors, or 10%."""
    x = np.asarray(flags, dtype=np.float64)
    m = np.asarray(passages, dtype=np.float64)
    sums = _document_moments(x, m).sum(axis=1)
    one, xs, ms = sums[:3] / max(sums[0], 1.0)
    rate = float((xs - positive_share * sensitivity) / max(ms - positive_share, 1e-12))
    counts, freq = np.unique(m, return_counts=True)
    _, neg_two = _beta_binomial_tail(rate, counts, rho)
    other_one, other_two = _beta_binomial_tail(rate, np.maximum(counts - 1, 0), rho)
    pos_two = sensitivity * other_one + (1 - sensitivity) * other_two
    predicted = float((((1 - positive_share) * neg_two + positive_share * pos_two) * freq).sum() / freq.sum())
    observed = float(np.mean(x >= 2))
    slack = max(3 * np.sqrt(max(predicted * (1 - predicted), 1e-12) / len(x)), 0.1 * predicted)
    return {
        "statistic": "share of classified documents with two flagged passages or more",
        "observed": observed,
        "predicted": predicted,
        "fits": bool(abs(observed - predicted) <= slack),
    }


def document_bunching(
    flags: np.ndarray, passages: np.ndarray, rates: ErrorRates, rounds: int = 8, resamples: int = 200, seed: int = SEED
) -> Bunching:
    """`within_document_correlation` with the share of positive documents it needs, found together with the
    adjusted estimate that depends on it (fixed-point rounds from "no positives"). The range: a Poisson
    bootstrap of the documents, at the fewest positives (none) for the low end and at the most the error rates
    allow (Clopper-Pearson lower sensitivity and false-positive rate) for the high end. The fitted model is
    checked (`check_bunching`); where it does not fit, the low end is independence."""
    flagged = np.array([float(np.mean(np.asarray(flags) > 0))])
    rng = np.random.default_rng(seed)
    # The documents' moments do not depend on the share or sensitivity: summed once, not once per round.
    moments = _document_moments(flags, passages)
    sums = moments.sum(axis=1)

    def fixed_point(s: float, f: float) -> tuple[float, float]:
        theta, rho = 0.0, 0.0
        for _ in range(rounds):
            rho = float(_correlation_from_moments(sums, theta, s))
            theta = float(
                np.clip(_adjusted_share(flagged, np.array([s]), np.array([f]), _exposure(passages, rho))[0], 0.0, 1.0)
            )
        return theta, rho

    theta, rho = fixed_point(rates.sensitivity, rates.false_positive_rate)
    check = check_bunching(flags, passages, rho, theta, rates.sensitivity)
    s_low = float(np.quantile(beta_draws(rng, rates.tp, rates.fn + 1, DRAWS), 0.025))
    f_low = float(np.quantile(beta_draws(rng, rates.fp, rates.tn + 1, DRAWS), 0.025))
    theta_high, _ = fixed_point(s_low, f_low)
    # Poisson bootstrap over blocks of documents (moments add up, so a block stands for its documents).
    blocks = rng.permutation(moments.shape[1]) % min(BOOTSTRAP_BLOCKS, moments.shape[1])
    block_sums = np.stack([np.bincount(blocks, weights=row) for row in moments])
    weighted = np.einsum("bk,qk->qb", rng.poisson(1.0, (resamples, block_sums.shape[1])), block_sums)
    low = float(np.quantile(_correlation_from_moments(weighted, 0.0, 0.0), 0.025))
    high = float(np.quantile(_correlation_from_moments(weighted, theta_high, s_low), 0.975))
    return Bunching(rho, min(low, rho) if check["fits"] else 0.0, max(high, rho), check)


@dataclass(frozen=True)
class _Exposure:
    """How many passages each classified document exposes to false positives: the distinct passage counts, the
    share of documents with each (for the false-flag rate), the share among documents with a passage (only those
    can hold a positive), and how strongly false flags bunch within a document."""

    counts: np.ndarray
    share: np.ndarray
    share_of_nonempty: np.ndarray
    correlation: float


def _exposure(passages_per_item: np.ndarray | None, correlation: float) -> _Exposure | None:
    if passages_per_item is None:
        return None
    m = np.asarray(passages_per_item, dtype=np.int64)
    if m.size == 0 or m.min() < 0 or m.max() < 1:
        raise ValueError("passages_per_item needs non-negative passage counts, at least one of them positive")
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must lie in [0, 1), got {correlation}")
    counts, freq = np.unique(m, return_counts=True)
    nonempty = np.where(counts > 0, freq, 0)
    return _Exposure(counts, freq / freq.sum(), nonempty / nonempty.sum(), correlation)


def _clean_probability(f: np.ndarray, m: np.ndarray, rho: float) -> np.ndarray:
    """P(no false flag among m passages), shape f.shape + m.shape, for false-positive rate f. Independent
    passages: (1-f)^m. Beta-binomial with correlation rho: prod over j < m of (1 - f c / (c + j)), c = 1/rho - 1
    (each clean passage makes the next one likelier clean); computed on a grid of f and interpolated."""
    if rho <= 0:
        return (1.0 - f[..., None]) ** m
    c = 1.0 / rho - 1.0
    grid = np.linspace(0.0, max(float(f.max()), 1e-12), 257)
    steps = np.log1p(-grid[:, None] * (c / (c + np.arange(int(m.max())))))
    table = np.exp(np.concatenate([np.zeros((len(grid), 1)), np.cumsum(steps, axis=1)], axis=1)[:, m])
    position = np.clip(f / grid[-1] * (len(grid) - 1), 0, len(grid) - 1)
    below = np.minimum(position.astype(np.int64), len(grid) - 2)
    weight = (position - below)[..., None]
    return table[below] * (1 - weight) + table[below + 1] * weight


def _flag_rates(s: np.ndarray, f: np.ndarray, exposure: _Exposure | None) -> tuple[np.ndarray, np.ndarray]:
    """P(flag | negative item) and P(flag | positive item). A passage: (f, s). A document of m passages, one of
    them positive: 1 - P(no false flag among m) and 1 - (1-s) P(no false flag among the other m-1); both averaged
    over the classified documents."""
    if exposure is None:
        return f, s
    negative = ((1.0 - _clean_probability(f, exposure.counts, exposure.correlation)) * exposure.share).sum(axis=-1)
    others = _clean_probability(f, np.maximum(exposure.counts - 1, 0), exposure.correlation)
    positive = ((1.0 - (1.0 - s[..., None]) * others) * exposure.share_of_nonempty).sum(axis=-1)
    return negative, positive


def _adjusted_share(r, s, f, exposure):
    """Rogan-Gladen on arrays: the true positive share of the classified part, given the flagged rate r,
    sensitivity s and false-positive rate f (1 where the classifier does not separate, the least informative)."""
    negative, positive = _flag_rates(s, f, exposure)
    gap = positive - negative
    return np.where(gap > 0, (r - negative) / np.where(gap > 0, gap, 1.0), 1.0)


def beta_draws(rng: np.random.Generator, a: float, b: float, draws: int) -> np.ndarray:
    """Beta draws that allow a zero parameter (a point mass at 0 or 1), as Clopper-Pearson limits need."""
    if a <= 0:
        return np.zeros(draws)
    if b <= 0:
        return np.ones(draws)
    return rng.beta(a, b, draws)


def _bound_only(hi: float, method: str, details: dict, message: str) -> Estimate:
    """No estimate, only the interval [0, hi] and the message saying why: the rate cannot be told from zero."""
    return Estimate(None, (0.0, hi), method, detectable=False, details=details, message=message)


def rogan_gladen(
    k: float,
    n: float,
    rates: ErrorRates,
    *,
    strata: Sequence[ErrorRates] = (),
    items: float | None = None,
    rate_variance: float | None = None,
    population: float | None = None,
    population_rel_se: float = 0.0,
    passages_per_item: np.ndarray | None = None,
    bunching: Bunching | None = None,
    finite_population: bool = True,
    names: tuple[str, str] = ("of the classified part", "of the population"),
    draws: int = DRAWS,
    seed: int = SEED,
) -> Estimate:
    """Misclassification-adjusted classify-and-count (Rogan-Gladen): of the classified amount `n`, `k` was flagged;
    the true positive amount is (k - f n) / (s - f) for sensitivity s and false-positive rate f. Amounts outside
    the classified part (`population` - `n`, e.g. documents the gate passed over) count as negatives.

    The point estimate uses the evaluation's pooled rates (`rates`). The interval does not rest on them alone,
    because a corpus unlike the evaluation set may have other error rates (transfer uncertainty):
    - its upper limit lets the false-positive rate be anything from zero up (every flag may be true; the flagged
      rate alone cannot rule that out) at the lowest plausible sensitivity and gate recall;
    - its lower limit takes the highest plausible false-flag rate and a sensitivity of one;
    - "plausible" spans the pooled rates and every stratum's (`strata`: error rates of the evaluation's labelled
      strata, each from a recorded sampling design), so where strata disagree the interval covers all of them.
    Each limit is a Monte Carlo quantile with the uncertain inputs drawn from their Clopper-Pearson confidence
    distributions (Beta(x, n-x+1) / Beta(x+1, n-x)) on the side that pushes it outward. The flagged rate counts
    `items` independent items, fewer when `rate_variance` (cluster-robust) says so. With `finite_population` (a
    full scan, the target being the share in this very corpus) only classification noise counts for the lower
    limit (the upper limit keeps the binomial). A population estimated from a sample adds a normal factor with
    `population_rel_se`.

    Documents (`passages_per_item`): the upper limit needs no model of flags within a document (with no false
    flags, a positive document is flagged at least as often as its one positive passage). The point estimate and
    the lower limit use the beta-binomial model of false flags within documents fitted on this corpus
    (`bunching`, see `document_bunching`), the lower limit at its least bunched end with many positive passages.

    When the flagged rate is within what false positives alone could produce under some plausible rate (not above
    the highest 97.5% false-flag limit, or the lower limit is zero), no estimate is given: `detectable` is False and
    `ci95` is [0, upper].
    `names` name the classified part and the population for the messages ("of documents that name AI", "of
    documents")."""
    if n <= 0:
        raise ValueError("rogan_gladen needs a positive classified amount n")
    if not 0 <= k <= n:
        raise ValueError(f"flagged amount k={k} must lie between 0 and n={n}")
    population = n if population is None else population
    if population < n:
        raise ValueError(f"population {population} is smaller than the classified amount {n}")
    items = n if items is None else items
    bunching = bunching or Bunching(0.0, 0.0, 0.0)
    exposure = _exposure(passages_per_item, bunching.correlation)
    exposure_low = _exposure(passages_per_item, bunching.low)  # least bunched: the most falsely flagged documents
    share = n / population
    rate = k / n
    s, f = rates.sensitivity, rates.false_positive_rate
    (theta,) = _adjusted_share(np.array([rate]), np.array([s]), np.array([f]), exposure)
    n_eff = effective_size(rate, rate_variance, items)
    (fp_point,), (s_point,) = _flag_rates(np.array([s]), np.array([f]), exposure)

    # The upper limit (no false flags) keeps the binomial: how many positives hide among the unflagged classified
    # items is the very thing it bounds, and few flags must not make that look certain.
    k_up, n_up = rate * n_eff, n_eff
    # The lower limit: with `finite_population` (the target is the share in this very corpus) only classification
    # noise counts, T s(1-s) + (n-T) f(1-f) at the evaluation's rates and the point estimate, not the binomial
    # n q(1-q).
    n_low = n_eff
    if finite_population and 0 < rate < 1:
        t = min(max(float(theta), 0.0), 1.0)
        noise = t * s_point * (1 - s_point) + (1 - t) * fp_point * (1 - fp_point)
        n_low = n_eff / min(1.0, max(noise, 1e-12) / (rate * (1 - rate)))
    k_low = rate * n_low
    rng = np.random.default_rng(seed)

    def lower(c: ErrorRates) -> float:
        """2.5% point with the most false flags c allows and every positive found (after the gate)."""
        r_d = beta_draws(rng, k_low, n_low - k_low + 1, draws)
        g_d = beta_draws(rng, c.tp + c.fn + 1, c.gate_missed, draws)
        f_d = beta_draws(rng, c.fp + 1, c.tn, draws)
        fp_d, _ = _flag_rates(np.ones(draws), f_d, exposure_low)
        theta_d = (r_d - fp_d) / np.maximum(1.0 - fp_d, 1e-12)
        pi_d = np.clip(theta_d, 0.0, 1.0) * share / np.maximum(g_d, 1e-12)
        pi_d *= 1.0 - population_rel_se * np.abs(rng.standard_normal(draws))
        return float(np.clip(np.quantile(pi_d, 0.025), 0.0, 1.0))

    def upper(c: ErrorRates) -> float:
        """97.5% point with no false flag at all, the positives found at c's lowest plausible sensitivity."""
        r_d = beta_draws(rng, k_up + 1, n_up - k_up, draws)
        s_d = beta_draws(rng, c.tp, c.fn + 1, draws)
        g_d = np.maximum(beta_draws(rng, c.tp + c.fn, c.gate_missed + 1, draws), 1e-12)
        theta_d = np.clip(r_d / np.maximum(s_d, 1e-12), 0.0, 1.0)
        # Positives the gate stopped: a count, which with few found varies far more than found x (1-g) / g.
        found = theta_d * items
        missed = rng.negative_binomial(found + 1.0, g_d)
        pi_d = theta_d * share * (found + missed) / np.maximum(found, 1e-12)
        pi_d *= 1.0 + population_rel_se * np.abs(rng.standard_normal(draws))
        return float(np.clip(np.quantile(pi_d, 0.975), 0.0, 1.0))

    def false_flag_limits(c: ErrorRates) -> tuple[float, float]:
        """Clopper-Pearson limits of the share of classified items c's false-positive rate would flag."""
        f_lo = float(np.quantile(beta_draws(rng, c.fp, c.tn + 1, draws), 0.025))
        f_hi = float(np.quantile(beta_draws(rng, c.fp + 1, c.tn, draws), 0.975))
        (lo_flag, hi_flag), _ = _flag_rates(np.array([s, s]), np.array([f_lo, f_hi]), exposure)
        return float(lo_flag), float(hi_flag)

    candidates = [rates, *strata]
    lo = min(lower(c) for c in candidates)
    hi = max(upper(c) for c in candidates)
    limits = [false_flag_limits(c) for c in candidates]
    fp_lower, fp_upper = min(a for a, _ in limits), max(b for _, b in limits)
    of_classified, of_population = names
    details = {
        "flagged": float(k),
        "classified": float(n),
        "population": float(population),
        "effective_n": [n_low, n_up],
        "sensitivity": s,
        "false_positive_rate": f,
        "flagged_rate": rate,
        "false_flag_rate_ci95": [fp_lower, fp_upper],
        "evaluation": asdict(rates),
        "strata": [asdict(c) for c in strata],
    }
    documents_note = ""
    if exposure is not None:
        details["false_flag_bunching"] = asdict(bunching)
        documents_note = (
            "; documents: a beta-binomial model of false flags within a document, fitted on this run "
            "and checked"
            + (
                ""
                if bunching.check.get("fits", True)
                else " (it did not fit: the lower limit assumes independent false flags)"
            )
        )
    method = (
        "rogan_gladen (misclassification-adjusted count at the evaluation's error rates; interval over every "
        "plausible error rate: upper limit with no false positives at the lowest plausible sensitivity, lower "
        "limit with the most false positives"
        + (", across the evaluation's strata" if strata else "")
        + ("; positives the passage gate stops added back" if rates.gate_missed else "")
        + documents_note
        + ")"
    )
    if s - f <= 0:
        return _bound_only(
            hi,
            method,
            details,
            f"at most {hi:.1%} {of_population}; cannot be told from zero: the classifier does "
            "not separate this label from the rest (sensitivity <= false-positive rate)",
        )
    gate_recall = rates.gate_recall
    raw = float(theta * share / gate_recall)
    details["estimate_unclipped"] = raw
    details["gate_recall"] = gate_recall
    if rate <= fp_upper or lo <= 0:
        # The flags could all be false, or all true: every plausible error rate has its say, so the bound is the
        # one no false positive would give. Fewer flags than false positives alone would give also means the
        # evaluation's negatives are harder than this corpus's.
        why = (
            "below the share false positives alone would flag at the evaluation's rate "
            f"({fp_lower:.1%} or more), so that rate does not fit this corpus"
            if rate < fp_lower
            else f"within what false positives alone could flag (up to {fp_upper:.1%})"
        )
        return _bound_only(
            hi,
            method,
            details,
            f"at most {hi:.1%} {of_population}; cannot be told from zero: {rate:.1%} {of_classified} "
            f"were flagged, {why}; the bound allows every false-positive rate from zero up",
        )
    est = min(max(raw, 0.0), share / gate_recall, 1.0)
    return Estimate(est, (min(lo, est), max(hi, est)), method, clipped=est != raw, details=details)


@dataclass(frozen=True)
class Totals:
    """Population amounts of one run, summed over its units: every document read (gate-passed or not), its
    characters, its passages and its tokens (None when the corpus has no token counts). With `--sample-rate`
    below 1 they count the documents of the hash sample, which stands for the corpus."""

    documents: int
    characters: int
    passages: int
    tokens: int | None = None


def _unit_inputs(docs: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, dict]:
    """Per-document flagged values and classified amounts for each unit, and the probabilistic sum over the
    corpus, for the union of the labels in `names` (one label, or all AI labels for the complement `no_ai`).
    Tokens of a passage are estimated from its characters at its document's token density."""

    def total(prefix: str) -> np.ndarray:
        return sum(np.asarray(docs[f"{prefix}_{L}"], dtype=np.float64) for L in names)

    n_flag, chars_flag, sum_pchars = total("n"), total("chars"), total("sum_pchars")
    passages = np.asarray(docs["gated_passages"], dtype=np.float64)
    characters = np.asarray(docs["gated_characters"], dtype=np.float64)
    out = {
        "documents": {
            "values": (n_flag > 0).astype(np.float64),
            "amounts": np.ones_like(passages),
            "passage_flags": n_flag,
        },
        "passages": {"values": n_flag, "amounts": passages, "sum_p": float(total("sum_p").sum())},
        "characters": {"values": chars_flag, "amounts": characters, "sum_p": float(sum_pchars.sum())},
    }
    if len(names) == 1:
        out["documents"]["sum_p"] = float(np.sum(docs[f"any_p_{names[0]}"]))
    tokens = np.asarray(docs["tokens"], dtype=np.float64) if docs.get("tokens") is not None else None
    if tokens is not None and np.isfinite(tokens).all():
        doc_chars = np.asarray(docs["characters"], dtype=np.float64)
        density = np.divide(tokens, doc_chars, out=np.zeros_like(tokens), where=doc_chars > 0)
        out["tokens"] = {
            "values": chars_flag * density,
            "amounts": characters * density,
            "sum_p": float((sum_pchars * density).sum()),
        }
    return out


# Each unit's population and classified part, as every sentence about a share names them.
POPULATION_NAMES = {
    "documents": ("of documents that name AI", "of documents"),
    "passages": ("of passages that name AI", "of the passages of documents that name AI"),
    "characters": ("of the characters of passages that name AI", "of characters"),
    "tokens": ("of the tokens of passages that name AI", "of tokens"),
}
MIN_DOCUMENTS = 30  # fewer classified documents than this: too few to estimate
MAX_WIDTH = 0.5  # an interval wider than this share of [0, 1] is no estimate either


def _unit_block(
    unit: str,
    inp: dict,
    population: float,
    rates: tuple[ErrorRates, list[ErrorRates]] | str,
    passages: np.ndarray,
    sampled: bool,
    population_rel_se: float,
) -> dict[str, Estimate]:
    """Every estimator for one unit; the adjusted one only when the model's error rates are known (`rates`: the
    pooled rates and the evaluation strata's, or else the reason why not, which classify-and-count then carries
    as its message).

    The document is the cluster: the hash sample takes or leaves each document whole, so it is the sampling
    unit, and one document's passages share their topic and style, so their flags go together."""
    values, amounts = inp["values"], inp["amounts"]
    k, n = float(values.sum()), float(amounts.sum())
    items = float(len(values)) if unit == "documents" else float(passages.sum())
    if n <= 0 or items <= 0:
        return {"classify_and_count": wilson(0.0, population)}
    ratio = cluster_robust_ratio(values, amounts)
    n_eff = effective_size(ratio.ratio, ratio.variance, items)
    raw = wilson(k, population, n_eff=n_eff * population / n)
    estimators = {"classify_and_count": replace(raw, message=rates) if isinstance(rates, str) else raw}
    if "sum_p" in inp:
        estimators["probabilistic"] = probabilistic_count(inp["sum_p"], population, weight=n / items)
    if not isinstance(rates, str):
        pooled, strata = rates
        estimators["adjusted"] = rogan_gladen(
            k,
            n,
            pooled,
            strata=strata,
            items=items,
            rate_variance=ratio.variance,
            population=population,
            population_rel_se=population_rel_se,
            finite_population=not sampled,
            passages_per_item=passages.astype(np.int64) if unit == "documents" else None,
            bunching=document_bunching(inp["passage_flags"], passages, pooled) if unit == "documents" else None,
            names=POPULATION_NAMES.get(unit, ("of the classified part", f"of {unit}")),
        )
    return estimators


HEADLINE_ORDER = ("adjusted", "classify_and_count")
NO_EVALUATION = (
    "the model ships no evaluation confusion matrix (model.json 'evaluation'), so classifier errors "
    "cannot be corrected: this is the raw flagged share"
)
NO_RATES = "the model's evaluation cannot give error rates for this label ({}), so this is the raw flagged share"


def prevalence_block(
    docs: Mapping[str, np.ndarray],
    totals: Totals,
    evaluation: Mapping,
    labels: Sequence[str],
    *,
    sampled: bool = False,
) -> dict[str, dict[str, dict]]:
    """The contract's `prevalence` dict for every label and unit.

    Inputs: the gate-passed documents' aggregates (docs.parquet columns as numpy arrays: `gated_passages` and
    `gated_characters` (what the model saw: passages that name AI themselves), `characters`, `tokens` (None when
    unknown), and per AI label L `n_L`, `chars_L`, `any_p_L`, `sum_p_L`, `sum_pchars_L`); the run's population
    `totals`; the model's evaluation as `training.evaluate` records it ({"confusion": {"labels": [...],
    "matrix": [[...]]}}, rows = true labels, columns = predicted, plus `confusion_gated`, `confusion_pieces`,
    `gate_passed`, `pieces` and `per_label` support when known, see `ErrorRates.from_evaluation`, and `strata`
    when the evaluation set records its sampling strata, see `ErrorRates.strata`; empty when the model has none);
    the label order, `no_ai` last. `sampled` is True for a `--sample-rate` below 1.

    Each unit gets the headline (the adjusted Rogan-Gladen estimate, see the README's "Reading the numbers"; the raw
    flagged share, with a message, when the model has no evaluation) as `estimate`/`ci95`/`method`/`detectable`
    (+ `message` when only an upper bound is known), and every estimator under `estimators`. `no_ai` is the
    complement of "any AI label". With fewer than MIN_DOCUMENTS classified documents, or an interval wider than
    MAX_WIDTH, the headline has no estimate and `too_few` is True. Passage labels exclude each other, so where the
    AI labels' estimates of a passage unit sum past 100%, they are scaled down to sum to it."""
    ai_labels = [L for L in labels if L != "no_ai"]
    passages = np.asarray(docs["gated_passages"], dtype=np.float64)
    populations = {
        "documents": totals.documents,
        "passages": totals.passages,
        "characters": totals.characters,
        "tokens": totals.tokens,
    }
    gated = len(passages)
    # With a sample, the share of documents the gate passed is itself estimated (binomial relative error).
    population_rel_se = (
        float(np.sqrt(max(totals.documents - gated, 0) / (max(gated, 1) * totals.documents)))
        if sampled and totals.documents
        else 0.0
    )

    def rates_for(names: Sequence[str], unit: str) -> tuple[ErrorRates, list[ErrorRates]] | str:
        if not evaluation.get("confusion"):
            return NO_EVALUATION
        try:
            return ErrorRates.from_evaluation(evaluation, names, unit), ErrorRates.strata(evaluation, names, unit)
        except ValueError as error:
            return NO_RATES.format(error)

    def block_for(names: Sequence[str]) -> dict[str, dict[str, Estimate]]:
        return {
            unit: _unit_block(
                unit, inp, float(populations[unit]), rates_for(names, unit), passages, sampled, population_rel_se
            )
            for unit, inp in _unit_inputs(docs, names).items()
            if populations.get(unit)
        }

    blocks = {L: block_for([L]) for L in ai_labels}
    for unit in ("passages", "characters", "tokens"):
        _keep_exclusive_shares_within_one([blocks[L][unit] for L in ai_labels if unit in blocks[L]], unit)
    result = {L: {unit: _present(unit, b, gated) for unit, b in blocks[L].items()} for L in ai_labels}
    if "no_ai" in labels:
        result["no_ai"] = {
            unit: _present(
                unit, {name: e.complement(f"1 - {e.method}, for any AI label") for name, e in b.items()}, gated
            )
            for unit, b in block_for(ai_labels).items()
        }
    return result


def _keep_exclusive_shares_within_one(blocks: list[dict[str, Estimate]], unit: str) -> None:
    """Each passage has one label, so the labels' true shares of one population sum to at most 100%; estimates
    made label by label may not. Where the headline estimates do, scale them down to sum to 100% (in place)."""
    heads = [b.get("adjusted") for b in blocks]
    total = sum(e.estimate for e in heads if e is not None and e.estimate is not None)
    if total <= 1.0:
        return
    for block, head in zip(blocks, heads, strict=True):
        if head is not None and head.estimate is not None:
            note = (
                f"scaled from {head.estimate:.1%} so that the exclusive labels' shares {POPULATION_NAMES[unit][1]} "
                "sum to 100%"
            )
            block["adjusted"] = replace(head, estimate=head.estimate / total, clipped=True, message=note)


def _present(unit: str, estimators: dict[str, Estimate], classified_documents: int) -> dict:
    """One unit's entry: the headline's fields at the top (the contract's keys), all estimators below. A headline
    resting on too few documents, or whose interval says next to nothing, keeps its interval but loses its
    estimate, and says so with the counts."""
    name = next(n for n in HEADLINE_ORDER if n in estimators)
    head = estimators[name]
    low, high = float(head.ci95[0]), float(head.ci95[1])
    out = {"estimate": head.estimate, "ci95": [low, high], "method": head.method, "detectable": head.detectable}
    if head.message:
        out["message"] = head.message
    population = POPULATION_NAMES.get(unit, ("", f"of {unit}"))[1]
    if classified_documents < MIN_DOCUMENTS or high - low > MAX_WIDTH:
        reason = (
            f"only {classified_documents:,} documents that name AI were classified (at least {MIN_DOCUMENTS} needed)"
            if classified_documents < MIN_DOCUMENTS
            else f"{classified_documents:,} documents that name AI were classified"
        )
        out.update(
            estimate=None,
            detectable=False,
            too_few=True,
            message=(
                f"too few documents to estimate: {reason}, and the 95% interval spans {low:.1%} to {high:.1%} "
                f"{population}"
            ),
        )
    out["population"] = population
    out["estimators"] = {n: e.as_dict() for n, e in estimators.items()}
    return out
