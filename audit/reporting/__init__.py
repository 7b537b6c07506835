"""The audit report: RUN/report.html (self-contained, no script, no network) and RUN/report.md.

>>> html_path, md_path = write_reports("runs/cc24")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from audit.atomic import write_text_atomic
from audit.rundir import RunDir

from . import html, markdown
from .rundata import load_run


def write_reports(run_dir: str | Path) -> tuple[Path, Path]:
    """(Re)write report.html and report.md from the run's files; each appears whole or not at all."""
    run = load_run(run_dir)
    files = RunDir(run.run_dir)
    html_path = write_text_atomic(files.report_html, html.render(run))
    md_path = write_text_atomic(files.report_md, markdown.render(run))
    return html_path, md_path


__all__ = ["write_reports"]
