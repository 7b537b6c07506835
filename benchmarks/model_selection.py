"""Choose the classifier family on real text: out-of-fold misaligned_ai PR-AUC on real, read passages, and speed.

    .venv/bin/python benchmarks/model_selection.py classifiers/data/*.jsonl classifiers/labels/train_real.jsonl \\
        classifiers/labels/new_sources.jsonl /tmp/rule_no_ai.jsonl

Every candidate is fitted on the training side only (dev-side records are dropped, as `train` drops them), with
the same folds `train` uses (real passages grouped by document). The score is the PR-AUC of the raw
misaligned_ai probability on the held-out real, read passages (written and rule-labelled ones are fitted on but
not scored), so the written data count only where they help on real text. Speed is passages per second of the
candidate's predict on 5,000 held-out passages, one thread.

The linear candidate (logistic regression over hashed word and character n-grams) needs scikit-learn, which is
not a dependency of corpus-audit: `pip install scikit-learn` to include it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from audit.labels import LABELS
from audit.training.evaluate import average_precision
from audit.training.examples import Example, deduplicate, fold_of, load_examples
from audit.training.fit import TrainOptions, _fit, _raw_probs

Predictor = Callable[[list[str]], np.ndarray]
Fitter = Callable[[list[Example], Path], Predictor]


def fasttext_fitter(options: TrainOptions, written: bool = True) -> Fitter:
    def fit(examples: list[Example], workdir: Path) -> Predictor:
        kept = examples if written else [e for e in examples if e.source != "written"]
        model = _fit(kept, options, workdir)
        return lambda texts: _raw_probs(model, texts)
    return fit


def linear_fitter(examples: list[Example], workdir: Path, written: bool = True) -> Predictor:
    """Logistic regression (stochastic gradient descent) over hashed word 1-2-grams and character 3-5-grams."""
    from linear_tagger import fit_linear  # this script's folder is on sys.path

    return fit_linear(examples if written else [e for e in examples if e.source != "written"]).raw_predict


def out_of_fold(fitter: Fitter, examples: list[Example], folds: int, workdir: Path) -> tuple[np.ndarray, float]:
    """Held-out probabilities for every example, and the last fold's predict speed (passages/s)."""
    fold = np.array([fold_of(e, folds, 0) for e in examples])
    probs = np.zeros((len(examples), len(LABELS)), dtype=np.float32)
    speed = 0.0
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        predict = fitter([e for e, f in zip(examples, fold, strict=True) if f != k], workdir)
        texts = [examples[i].text for i in held]
        start = time.perf_counter()
        probs[held] = predict(texts)
        speed = len(texts) / (time.perf_counter() - start)
    return probs, speed


def candidates(base: TrainOptions, with_linear: bool) -> dict[str, Fitter]:
    chosen = {
        "fasttext word 1-2 (shipped)": fasttext_fitter(base),
        "fasttext word 1-2, real text only": fasttext_fitter(base, written=False),
        "fasttext word 1-2, real x3": fasttext_fitter(replace(base, real_weight=3)),
        "fasttext word 1-2, real x6": fasttext_fitter(replace(base, real_weight=6)),
        "fasttext word 1-2, real text only, 50 epochs": fasttext_fitter(replace(base, epoch=50), written=False),
        "fasttext word 1-2, real text only, dim 32, lr 0.2": fasttext_fitter(
            replace(base, dim=32, lr=0.2), written=False
        ),
        "fasttext word 1-3, real text only": fasttext_fitter(replace(base, word_ngrams=3), written=False),
        "fasttext char 3-5 + word 1-2": fasttext_fitter(replace(base, minn=3, maxn=5)),
        "fasttext char 3-5 + word 1-2, real x3": fasttext_fitter(replace(base, minn=3, maxn=5, real_weight=3)),
    }
    if with_linear:
        chosen["linear word 1-2 + char 3-5 (scikit-learn)"] = linear_fitter
        chosen["linear word 1-2 + char 3-5, real text only"] = lambda examples, workdir: linear_fitter(
            examples, workdir, False
        )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", help="run only candidates whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args()
    try:
        import sklearn  # noqa: F401

        with_linear = True
    except ImportError:
        with_linear = False
        print("scikit-learn not installed: the linear candidate is skipped", file=sys.stderr)
    examples, _ = deduplicate([e for e in load_examples(args.data) if not e.dev_side])
    real = np.array([e.real_and_read for e in examples])
    positive = np.array([e.label == "misaligned_ai" for e in examples])
    print(f"{len(examples)} training-side passages, {real.sum()} real and read ({positive[real].sum()} misaligned_ai)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fitter in candidates(TrainOptions(), with_linear).items():
            if args.only and args.only not in name:
                continue
            start = time.perf_counter()
            probs, speed = out_of_fold(fitter, examples, args.folds, Path(tmp))
            row = {
                "candidate": name,
                "oof_pr_auc_real": average_precision(probs[real, 0], positive[real]),
                "passages_per_s": speed,
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            print(
                f"{name:48s} PR-AUC {row['oof_pr_auc_real']:.3f}  {speed:10,.0f} passages/s  ({row['seconds']:.0f} s)",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
