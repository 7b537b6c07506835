"""The built wheel holds every module and data file of the source tree, and setuptools builds it without a warning.

(`make wheel-check`, run by .ci/run, installs that wheel into a fresh virtual environment and runs it.)
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

from support import REPO

# source folder -> package inside the wheel (pyproject.toml's package-dir), and the data files each ships
PACKAGES = {"audit": "audit", "audit/executors": "audit/executors", "audit/reporting": "audit/reporting",
            "audit/training": "audit/training", "classifiers": "audit/classifiers", "corpora": "audit/corpora",
            "reports": "audit/report_assets"}
DATA = {"classifiers/data": ("*.jsonl",), "classifiers/labels": ("*.jsonl",), "corpora/sample": ("*.jsonl",),
        "classifiers": ("model.*", "*.md"), "corpora": ("*.md",), "reports": ("*.css", "*.md")}


def _expected() -> set[str]:
    names = {f"{PACKAGES[src]}/{p.name}" for src in PACKAGES for p in (REPO / src).glob("*.py")}
    for folder, patterns in DATA.items():
        package = PACKAGES.get(folder) or PACKAGES[folder.split("/")[0]] + "/" + folder.split("/", 1)[1]
        names |= {f"{package}/{p.name}" for pattern in patterns for p in (REPO / folder).glob(pattern)}
    return names


def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    (wheel,) = tmp_path.glob("corpus_audit-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = _expected()
    assert "audit/executors/local.py" in expected and "audit/classifiers/data/noai_news.jsonl" in expected
    assert {"audit/classifiers/README.md", "audit/report_assets/style.css", "audit/training/fit.py"} <= expected
    assert expected - shipped == set()
