"""`corpus-audit demo` after the shipped model changed: the demo's own run directory is scanned afresh."""

from __future__ import annotations

import json
from pathlib import Path

from audit.demo import run_demo
from audit.tagger import load_cached


def test_the_demo_rescans_a_run_left_by_another_model(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = run_demo(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["model"]["sha256"] = "0" * 64  # as if the run came from the model before an upgrade
    (out / "manifest.json").write_text(json.dumps(manifest))

    again = run_demo(out)

    assert again.exit_code == 0 and again.scanned_units == first.scanned_units > 0
    assert json.loads((out / "manifest.json").read_text())["model"]["sha256"] == load_cached().sha256
    assert again.summary["labels"] == first.summary["labels"]
