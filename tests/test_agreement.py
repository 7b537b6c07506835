"""Several labellers, their agreement (Cohen's kappa) and the settled labels `estimate` uses; partial labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit import auditloop
from audit.agreement import ADJUDICATOR, cohen_kappa, settled_labels
from audit.errors import UsageError
from audit.labelserver import Session, interleaved, open_session
from test_auditloop import planted_run


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agreement")
    planted_run(root)
    auditloop.sample(root, 120, root / "audit.jsonl", seed=1, target="both")
    return root


def test_cohen_kappa_matches_a_worked_example() -> None:
    # 50 rows: both say misaligned on 20, both no_ai on 15, they differ on 15 (10 one way, 5 the other).
    first = ["misaligned_ai"] * 20 + ["no_ai"] * 15 + ["misaligned_ai"] * 10 + ["no_ai"] * 5
    second = ["misaligned_ai"] * 20 + ["no_ai"] * 15 + ["no_ai"] * 10 + ["misaligned_ai"] * 5
    # observed 0.7; chance (30*25 + 20*25) / 2500 = 0.5; kappa (0.7 - 0.5) / 0.5 = 0.4
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["no_ai"] * 5, ["no_ai"] * 5) is None and cohen_kappa([], []) is None


def _session(run: Path, labeller: str, labels: Path) -> Session:
    return open_session(run, 120, labels, labeller)


def test_two_labellers_agreement_settling_and_the_adjudicator(planted: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    ann = _session(planted, "ann", labels)
    order = interleaved(ann.plan["rows"])
    for i in order[:10]:
        ann.answer(i, "no_ai")
    bo = _session(planted, "bo", labels)  # a second labeller starts at the beginning of the same sample
    assert bo.state()["item"]["row"] == order[0] and ann.state()["item"]["row"] == order[10]
    for n, i in enumerate(order[:10]):
        bo.answer(i, "misaligned_ai" if n < 3 else "no_ai")
    ann.answer(order[10], "neutral_ai")  # answered by one labeller only: settled by that answer

    settled, report = settled_labels(labels, ann.plan)
    assert [settled[i] for i in order[:11]] == [None] * 3 + ["no_ai"] * 7 + ["neutral_ai"]
    assert report["disputed_rows"] == 3 and report["settled_rows"] == 8
    (pair,) = report["pairs"]
    assert pair["labellers"] == ["ann", "bo"] and pair["rows"] == 10 and pair["agreement"] == pytest.approx(0.7)
    assert pair["kappa"] == pytest.approx(0.0)  # ann said no_ai throughout: all agreement is chance

    judge = _session(planted, ADJUDICATOR, labels)
    assert judge.state()["total"] == 3 and judge.state()["item"]["row"] == order[0]  # only the disputed rows
    for i in order[:3]:
        judge.answer(i, "misaligned_ai")
    assert judge.state()["item"] is None
    settled, report = settled_labels(labels, ann.plan)
    assert [settled[i] for i in order[:3]] == ["misaligned_ai"] * 3 and report["disputed_rows"] == 0

    result = auditloop.estimate(planted, labels)
    assert result["labelled"] == 11
    assert result["agreement"]["answers_by_labeller"] == {ADJUDICATOR: 3, "ann": 11, "bo": 10}


def test_resume_undo_and_skip(planted: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    first = _session(planted, "ann", labels)
    order = interleaved(first.plan["rows"])
    first.answer(order[0], "no_ai")
    first.skip(order[1])
    first.answer(order[2], "aligned_ai")
    state = _session(planted, "ann", labels).state()  # a new `label` resumes at the first unanswered item
    assert state["answered"] == 2 and state["item"]["row"] == order[1]
    state = first.undo()
    assert state["item"]["row"] == order[2] and state["answered"] == 1
    assert [json.loads(line)["label"] for line in labels.read_text().splitlines()] == ["no_ai"]
    assert first.model(order[2]) is None and first.model(order[0])["model_label"]  # the model only after an answer


def test_estimate_from_the_labels_so_far_keeps_its_intervals(planted: Path, tmp_path: Path) -> None:
    """Half the sample labelled in the interleaved order: every stratum has labels and an interval that is
    wider than, and holds, the estimate from the full sample labelled the same way."""
    plan = json.loads((planted / "audit_sample.json").read_text())
    order = interleaved(plan["rows"])
    rows = [json.loads(line) for line in (planted / "audit.jsonl").read_text().splitlines()]
    for row in rows:
        row["label"] = row["model_label"]
    full, half = tmp_path / "full.jsonl", tmp_path / "half.jsonl"
    full.write_text("".join(json.dumps(r) + "\n" for r in rows))
    half.write_text("".join(json.dumps(rows[i]) + "\n" for i in order[:len(order) // 2]))
    whole = auditloop.estimate(planted, full)["labels"]["misaligned_ai"]["passages"]
    part = auditloop.estimate(planted, half)
    assert part["labelled"] == len(order) // 2 and all(s["labelled"] > 0 for s in part["strata"])
    entry = part["labels"]["misaligned_ai"]["passages"]
    assert entry["estimate"] is not None
    assert entry["ci95"][1] - entry["ci95"][0] > whole["ci95"][1] - whole["ci95"][0]


def test_one_labeller_answering_a_row_twice_names_both_lines(planted: Path, tmp_path: Path) -> None:
    plan = json.loads((planted / "audit_sample.json").read_text())
    row = plan["rows"][0]
    line = json.dumps({"doc_id": row["doc_id"], "passage_index": row["passage_index"], "label": "no_ai",
                       "labeller": "ann"})
    labels = tmp_path / "labels.jsonl"
    labels.write_text(line + "\n" + line.replace("ann", "bo") + "\n" + line + "\n")
    with pytest.raises(UsageError, match=r"line 3: .* labelled twice by 'ann' \(also on line 1\)"):
        settled_labels(labels, plan)
    with pytest.raises(UsageError, match="labelled twice"):
        open_session(planted, 120, labels, "ann")  # the server refuses the file before writing to it
