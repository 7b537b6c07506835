"""The report in a real headless Chromium: corpus payloads stay inert, nothing is fetched, it looks right."""

from __future__ import annotations

import re

import pytest

from audit.labels import LABELS
from audit.reports import fmt, write_reports
from test_report import write_fixture_run

pytestmark = pytest.mark.browser

PWNED = "return [document.title, window.__pwned === undefined ? null : window.__pwned]"


def _assert_quiet(chromium, page):
    requested = chromium.requested_urls()
    assert requested, "the performance log recorded no request at all"
    assert all(url == page.resolve().as_uri() or url.startswith("data:") for url in requested), requested
    assert chromium.console_errors() == []


def test_corpus_payloads_do_not_run_and_nothing_is_fetched(chromium, tmp_path):
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)
    page = write_reports(run_dir)[0]
    chromium.open(page)
    title, pwned = chromium.driver.execute_script(PWNED)
    assert pwned is None and "PWNED" not in title
    assert chromium.driver.execute_script("return document.querySelectorAll('script, iframe, object').length") == 0
    assert chromium.driver.execute_script(
        "return [...document.querySelectorAll('a')].every(a => a.getAttribute('href').startsWith('#'))")
    _assert_quiet(chromium, page)


def test_escaping_alone_keeps_payloads_inert(chromium, tmp_path):
    """The same page without its Content-Security-Policy: escaping, not the policy, is what stops the payloads."""
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)
    page = write_reports(run_dir)[0]
    unguarded = page.with_name("report-without-csp.html")
    unguarded.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text()))
    assert "Content-Security-Policy" not in unguarded.read_text()
    chromium.open(unguarded)
    title, pwned = chromium.driver.execute_script(PWNED)
    assert pwned is None and "PWNED" not in title
    _assert_quiet(chromium, unguarded)


def test_report_renders_with_its_headline_numbers(chromium, tmp_path):
    run_dir = tmp_path / "run"
    summary = write_fixture_run(run_dir)
    page = write_reports(run_dir)[0]
    chromium.open(page)
    shot = chromium.screenshot("report.png")
    assert shot.stat().st_size > 20_000
    chromium.screenshot("report-full.png", full_page=True)
    text = chromium.driver.find_element("tag name", "body").text
    for label in LABELS:
        prev = summary["labels"][label]["prevalence"]["documents"]
        estimate, interval = fmt.pct_interval(prev["estimate"], *prev["ci95"])
        assert estimate in text and f"95% interval {interval}" in text, label
    # every plot decoded and drew at a visible size
    sizes = chromium.driver.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
    assert len(sizes) >= 6 and all(done and natural > 0 and shown > 200 for done, natural, shown in sizes), sizes
    _assert_quiet(chromium, page)
