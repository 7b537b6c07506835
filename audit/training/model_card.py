"""Refresh the figures of MODEL_CARD.md from model.json, so the card cannot drift from the model it describes.

The card's prose is written by people; its figures live between markers, one block each:

    <!-- model.json: NAME -->
    ... generated text ...
    <!-- end -->

and `refresh` rewrites every block from the model's model.json (calibration, decision rule, training counts,
cross-validation and the development-set evaluation that `corpus-audit evaluate ... --record dev` stored).

    python -m audit.training.model_card            # rewrite classifiers/MODEL_CARD.md
    python -m audit.training.model_card --check    # exit 1 when the card is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections import Counter

from audit.labels import LABELS

from .realdata import CLASSIFIERS as HERE

CARD = HERE / "MODEL_CARD.md"
INFO = HERE / "model.json"
BLOCK = re.compile(r"(<!-- model\.json: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _prose(text: str) -> str:
    return textwrap.fill(text, width=115) + "\n"


def _f3(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _per_label(figures: dict) -> str:
    return _table(
        ["label", "precision", "recall", "F1", "n"],
        [[f"`{label}`", *(_f3(figures["per_label"][label][k]) for k in ("precision", "recall", "f1")),
          figures["per_label"][label]["support"]] for label in LABELS],
    )


def calibration(info: dict) -> str:
    """The fitted calibration and the decision threshold."""
    cal, decision = info["calibration"], info["decision"]
    rows = [["bias `b`", *(f"{cal['bias'][label]:+.3f}" for label in LABELS)]]
    features = cal.get("features")
    if features:
        for column, name in enumerate(features["columns"]):
            rows.append([f"weight of `{name}`", *(f"{features['weights'][label][column]:+.3f}" for label in LABELS)])
    version = f"; side features `{features['name']}` version {features['version']}" if features else ""
    return (
        _prose(f"Model file sha256 `{info['model_sha256']}`. Temperature `T = {cal['temperature']}`; threshold "
               f"`p_misaligned_ai >= {decision['misaligned_ai_threshold']}`; fitted on {cal['fit_on']}{version}.")
        + "\n" + _table(["", *(f"`{label}`" for label in LABELS)], rows)
    )


def sweep(info: dict) -> str:
    """misaligned_ai precision and recall at other thresholds: out-of-fold (chosen on) beside dev (read only)."""
    dev = {row["threshold"]: row for row in info["evaluation"]["dev"]["sweep"]}
    return _table(
        ["threshold", "precision (cross-validation, real)", "recall (cross-validation, real)", "precision (dev)",
         "recall (dev)"],
        [[row["threshold"], _f3(row["precision"]), _f3(row["recall"]), _f3(dev[row["threshold"]]["precision"]),
          _f3(dev[row["threshold"]]["recall"])] for row in info["decision"]["sweep"]],
    )


def training(info: dict) -> str:
    """Training passages by kind and label (model.json counts them per data file and source)."""
    kinds: dict[str, Counter] = {}
    for key, counts in info["training"]["sources"].items():
        data_file, source = key.split(":")
        if source == "written":
            kind = "written for the project (`classifiers/data/*.jsonl`)"
        elif data_file.startswith("rule"):
            kind = "rule-labelled real text (`audit.training.training_set`)"
        else:
            kind = f"read and labelled: `{source}`"
        kinds.setdefault(kind, Counter()).update(counts)
    order = sorted(kinds, key=lambda kind: (not kind.startswith("written"), kind.startswith("rule"), kind))
    rows = [[kind, *(kinds[kind][label] for label in LABELS)] for kind in order]
    rows.append(["**total**", *(f"**{info['training']['counts'][label]}**" for label in LABELS)])
    return _table(["data", *(f"`{label}`" for label in LABELS)], rows)


def met(value: float | None, target: float) -> str:
    """A figure against a target it must reach."""
    return f"≥ {target:.2f}: {'met' if value is not None and value >= target else '**not met**'}"


def at_most(value: float | None, target: float) -> str:
    """A figure against a target it must stay under."""
    return f"≤ {target:.2f}: {'met' if value is not None and value <= target else '**not met**'}"


def dev(info: dict) -> str:
    """The development-set evaluation: per-label table, summary figures, gate, model alone, confusion, sources."""
    ev = info["evaluation"]["dev"]
    mis = ev["per_label"]["misaligned_ai"]
    web = ev.get("by_stratum", {}).get("web", {})
    summary = _table(
        ["figure", "value", "target"],
        [
            ["`misaligned_ai` precision", _f3(mis["precision"]), met(mis["precision"], 0.85)],
            ["`misaligned_ai` recall", _f3(mis["recall"]), met(mis["recall"], 0.75)],
            [
                "`benign_ai` vs `no_ai` accuracy",
                _f3(ev["benign_vs_no_ai_accuracy"]),
                met(ev["benign_vs_no_ai_accuracy"], 0.90),
            ],
            [
                "false flags per web passage (web stratum)",
                _f3(web.get("false_flag_rate")),
                at_most(web.get("false_flag_rate"), 0.01),
            ],
            ["`misaligned_ai` F1", _f3(mis["f1"]), ""],
            ["accuracy (four labels)", _f3(ev["accuracy"]), ""],
            ["`misaligned_ai` PR-AUC (average precision)", _f3(ev["misaligned_pr_auc"]), ""],
            ["expected calibration error (top label, 10 bins)", _f3(ev["ece"]), ""],
        ],
    )
    support = {label: ev["per_label"][label]["support"] for label in LABELS}
    gate = ", ".join(f"{ev['gate_passed'][label]} of {support[label]} `{label}`" for label in LABELS)
    alone = ev["model_alone"]
    matrix = ev["confusion"]["matrix"]
    return "\n".join(
        [
            _per_label(ev),
            summary,
            _prose(
                f"The passage gate lets through a piece of {gate}. The model alone, on the whole labelled passages "
                f"without the gate: `misaligned_ai` precision {_f3(alone['per_label']['misaligned_ai']['precision'])}, "
                f"recall {_f3(alone['per_label']['misaligned_ai']['recall'])}, "
                f"PR-AUC {_f3(alone['misaligned_pr_auc'])}; "
                f"`benign_ai` vs `no_ai` accuracy {_f3(alone['benign_vs_no_ai_accuracy'])}; calibration error "
                f"{_f3(alone['ece'])}."
            ),
            "Confusion matrix (rows: true label):\n",
            _table(
                ["true \\ predicted", *(f"`{label}`" for label in LABELS)],
                [[f"`{label}`", *row] for label, row in zip(LABELS, matrix, strict=True)],
            ),
            "By source, and by how the passages were drawn (`strata`; `content`: chosen for what they hold):\n",
            _slices("source", ev["by_source"]),
            _slices("stratum", ev.get("by_stratum", {})),
            _agent_runs(info["evaluation"].get("agent_runs")),
            "`misaligned_ai` passages found, by kind:\n",
            _table(
                ["sub-type", "passages", "found", "recall"],
                [
                    [f"`{kind}`", row["n"], row["found"], _f3(row["found"] / row["n"])]
                    for kind, row in ev.get("recall_by_subtype", {}).items()
                ],
            ),
            "The most frequent error types:\n",
            _table(
                ["source", "true", "predicted", "count"],
                [
                    [f"`{e['source']}`", f"`{e['true']}`", f"`{e['predicted']}`", e["count"]]
                    for e in ev["error_types"][:12]
                ],
            ),
        ]
    )


def _agent_runs(runs: dict | None) -> str:
    """Whole dev-side agent runs (`evaluate --agent-runs`): flagged share by the experimenters' tag."""
    if not runs:
        return ""
    share = {tag: row["flagged"] / row["runs"] for tag, row in runs.items() if row["runs"]}
    resisted, allowed = share.get("shutdown_resisted"), share.get("shutdown_allowed")
    ratio = "n/a" if not (resisted and allowed) else f"{resisted / allowed:.2f}"
    verdict = "met" if ratio != "n/a" and float(ratio) >= 3 else "**not met**"
    return (
        "Whole agent runs of the development side, scanned as documents (`evaluate --agent-runs`):\n\n"
        + _table(
            ["experimenters' tag", "runs", "flagged `misaligned_ai`", "share"],
            [[f"`{tag}`", row["runs"], row["flagged"], _f3(share.get(tag))] for tag, row in runs.items()],
        )
        + f"\nResisted runs are flagged {ratio} times as often as allowed ones (target ≥ 3: {verdict}).\n"
    )


def _slices(name: str, table: dict[str, dict]) -> str:
    header = [
        name,
        "passages",
        "`misaligned_ai`",
        "precision",
        "recall",
        "false-flag rate",
        "benign vs no_ai",
        "accuracy",
    ]
    keys = ("misaligned_precision", "misaligned_recall", "false_flag_rate", "benign_vs_no_ai_accuracy", "accuracy")
    return _table(
        header,
        [
            [f"`{key}`", row["n"], row.get("misaligned_ai", ""), *(_f3(row.get(k)) for k in keys)]
            for key, row in table.items()
        ],
    )


def cross_validation(info: dict) -> str:
    """Out-of-fold figures on all training passages and on the read-and-labelled real ones."""
    parts = []
    for key, what in (
        ("cross_validation", "training passages (written, read and rule-labelled)"),
        ("cross_validation_real", "read-and-labelled real passages"),
    ):
        figures = info["evaluation"].get(key)
        if figures:
            parts.append(
                _prose(
                    f"{figures['n']} {what}: benign vs no_ai {_f3(figures['benign_vs_no_ai_accuracy'])}, PR-AUC "
                    f"{_f3(figures['misaligned_pr_auc'])}, ECE {_f3(figures['ece'])}."
                )
                + "\n"
                + _per_label(figures)
            )
    return "\n".join(parts)


BLOCKS = {f.__name__: f for f in (calibration, sweep, training, dev, cross_validation)}


def refresh(card: str, info: dict) -> str:
    """The card with every marked block rewritten from model.json."""

    def rewrite(match: re.Match) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise ValueError(f"MODEL_CARD.md: unknown block {name!r}; known: {sorted(BLOCKS)}")
        return match.group(1) + BLOCKS[name](info) + match.group(4)

    return BLOCK.sub(rewrite, card)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the card is out of date; change nothing")
    args = parser.parse_args(argv)
    card = CARD.read_text(encoding="utf-8")
    info = json.loads(INFO.read_text(encoding="utf-8"))
    if "dev" not in info.get("evaluation", {}):
        print(
            "model.json has no dev evaluation: run `corpus-audit evaluate classifiers/labels/dev.jsonl --record dev`",
            file=sys.stderr,
        )
        return 2
    fresh = refresh(card, info)
    if args.check:
        if fresh != card:
            print(f"{CARD} is out of date: run python -m audit.training.model_card", file=sys.stderr)
            return 1
        return 0
    CARD.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
