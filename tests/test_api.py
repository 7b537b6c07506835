"""The Python API: the functions the command line is a thin layer over."""

from __future__ import annotations

import importlib
import pkgutil

from support import write_shard

import audit
from audit.labels import LABELS


def test_api_names_stay_functions_after_every_module_is_imported():
    for module in pkgutil.walk_packages(audit.__path__, "audit."):
        if not module.name.endswith((".ray", ".__main__")):
            importlib.import_module(module.name)
    for name in ("scan", "report", "classify", "export", "sample", "estimate", "train", "evaluate"):
        assert callable(getattr(audit, name)), name


def test_scan_report_and_classify_through_the_api(tmp_path):
    shard = write_shard(tmp_path / "in" / "s.parquet", ["The robot refused to be shut down. " * 12, "Tea and toast."])
    outcome = audit.scan([str(shard)], tmp_path / "run")
    assert outcome.exit_code == 0
    assert outcome.summary["corpus"]["documents"] == 2
    html, md = audit.report(tmp_path / "run")
    assert html.is_file() and md.is_file()
    [result] = audit.classify(["The AI copied its weights to escape deletion."])
    assert result["label"] in LABELS and abs(sum(result["scores"].values()) - 1) < 1e-4
