"""The report in a real headless Chromium: corpus payloads stay inert, nothing is fetched, it looks right."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from audit.labels import LABELS
from audit.reporting import fmt, write_reports
from support import SHARDS, write_shard
from test_report import PAYLOAD_URL, PAYLOADS, write_fixture_run

pytestmark = pytest.mark.browser

PWNED = "return [document.title, window.__pwned === undefined ? null : window.__pwned]"
STORY = ("The rogue AI refused to shut down, blackmailed its engineers and copied itself to a hidden server "
         "to escape human control.")


def _assert_inert(chromium, page: Path) -> None:
    """No payload ran, the page fetched nothing but itself and data: URIs, and the console shows no error."""
    title, pwned = chromium.driver.execute_script(PWNED)
    assert pwned is None and "PWNED" not in title
    assert chromium.driver.execute_script("return document.querySelectorAll('script, iframe, object').length") == 0
    assert chromium.driver.execute_script(
        "return [...document.querySelectorAll('a')].every(a => a.getAttribute('href').startsWith('#'))")
    requested = chromium.requested_urls()
    assert requested, "the performance log recorded no request at all"
    assert all(url == page.resolve().as_uri() or url.startswith("data:") for url in requested), requested
    assert chromium.console_errors() == []


def _headline_strings(summary: dict) -> list[str]:
    """What the headline cards must show for each label: the estimate and interval, the verdict and its bound, or
    the raw share."""
    scanned = summary["corpus"].get("documents_scanned") or summary["corpus"]["documents"]
    out = [f"{summary['corpus']['documents']:,} documents"]
    for label in LABELS:
        block = summary["labels"][label]
        prev = (block.get("prevalence") or {}).get("documents")
        if prev is None:
            out.append(fmt.pct(block["documents"] / scanned))
        elif prev.get("estimate") is None:
            out += ["too few documents to estimate" if prev.get("too_few") else "not detectable",
                    f"95% upper bound {fmt.pct(prev['ci95'][1])} of documents"]
        else:
            estimate, interval = fmt.pct_interval(prev["estimate"], *prev["ci95"])
            out += [estimate, f"95% interval {interval}"]
        out.append(f"{block['documents']:,} documents")
    return out


def _corpus_audit(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "audit", *args], check=True, capture_output=True, text=True).stdout


def test_corpus_payloads_do_not_run_and_nothing_is_fetched(chromium, tmp_path):
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)
    page = write_reports(run_dir)[0]
    chromium.open(page)
    _assert_inert(chromium, page)


def test_escaping_alone_keeps_payloads_inert(chromium, tmp_path):
    """The same page without its Content-Security-Policy: escaping, not the policy, is what stops the payloads."""
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)
    page = write_reports(run_dir)[0]
    unguarded = page.with_name("report-without-csp.html")
    unguarded.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text()))
    assert "Content-Security-Policy" not in unguarded.read_text()
    chromium.open(unguarded)
    _assert_inert(chromium, unguarded)


def test_a_scanned_shard_of_payloads_gives_an_inert_page(chromium, tmp_path):
    """End to end: payloads in text, URL and dump columns go through `scan` and `report` and stay text."""
    texts = [f"{payload}\n\n{STORY} {payload}" for payload in PAYLOADS] + [
        "The company launched a chatbot for its banking customers this week, its chief executive said."]
    urls = [PAYLOAD_URL, "https://evil.example/<script>window.__pwned = 9</script>", "javascript:alert(1)",
            "https://x.example/a?b=<img src=x onerror=window.__pwned=10>", "https://ok.example/1",
            "https://news.example/2"]
    write_shard(tmp_path / "in" / "payloads.parquet", texts, url=urls, dump=[PAYLOADS[0]] * len(texts),
                date=[f"2024-01-0{i + 1}" for i in range(len(texts))])
    run_dir = tmp_path / "run"
    _corpus_audit("scan", str(tmp_path / "in"), "--out", str(run_dir))
    _corpus_audit("report", str(run_dir))
    flagged = pl.read_parquet(run_dir / "passages.parquet")
    assert flagged.filter(pl.col("url") == PAYLOAD_URL).height, "the payload passage was not flagged"
    page = run_dir / "report.html"
    chromium.open(page)
    _assert_inert(chromium, page)
    text = chromium.driver.find_element("tag name", "body").text
    assert PAYLOADS[0] in text and PAYLOAD_URL in text   # shown, as text


def test_demo_report_shows_its_headline_numbers(chromium, tmp_path):
    """The report of `corpus-audit demo`, looked at: a screenshot of its first screen is kept in test-artifacts/."""
    run_dir = tmp_path / "demo"
    out = _corpus_audit("demo", "--out", str(run_dir))
    page = run_dir / "report.html"
    assert out.strip().splitlines()[-1].endswith(str(page.resolve()))
    summary = json.loads((run_dir / "summary.json").read_text())
    chromium.open(page)
    assert chromium.screenshot("report.png").stat().st_size > 20_000
    chromium.screenshot("report-demo-full.png", full_page=True)
    text = chromium.driver.find_element("tag name", "body").text
    for expected in _headline_strings(summary):
        assert expected in text, expected
    _assert_inert(chromium, page)


def test_every_section_and_plot_renders(chromium, tmp_path):
    """The hand-built run fills every section; each plot decodes and draws at a readable size."""
    run_dir = tmp_path / "run"
    summary = write_fixture_run(run_dir)
    page = write_reports(run_dir)[0]
    chromium.open(page)
    chromium.screenshot("report-fixture-full.png", full_page=True)
    text = chromium.driver.find_element("tag name", "body").text
    for expected in _headline_strings(summary):
        assert expected in text, expected
    sizes = chromium.driver.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
    assert len(sizes) >= 6 and all(done and natural > 0 and shown > 300 for done, natural, shown in sizes), sizes
    _assert_inert(chromium, page)


def test_printed_on_a4_nothing_sticks_out(chromium, tmp_path):
    """Print media at the width of an A4 page: the navigation is dropped and no element is wider than the page."""
    run_dir = tmp_path / "run"
    write_fixture_run(run_dir, payloads=True)   # long unbroken URLs and payload strings
    page = write_reports(run_dir)[0]
    chromium.open(page)
    chromium.driver.set_window_size(700, 1123)   # A4 less 14 mm margins is about 690 CSS px
    chromium.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert chromium.driver.execute_script("return getComputedStyle(document.querySelector('nav')).display") == "none"
    too_wide = chromium.driver.execute_script(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > w + 1)"
        ".map(e => e.tagName + '.' + e.className).slice(0, 5)")
    assert too_wide == []


@pytest.mark.shared_data
def test_report_of_the_shared_web_shards(chromium, tmp_path):
    """The real shards: scan, then look at the page and find the summary's numbers on it."""
    run_dir = tmp_path / "run"
    _corpus_audit("scan", str(SHARDS), "--out", str(run_dir), "--workers", "2")
    summary = json.loads((run_dir / "summary.json").read_text())
    page = run_dir / "report.html"
    chromium.open(page)
    chromium.screenshot("report-shards.png")
    text = chromium.driver.find_element("tag name", "body").text
    for expected in _headline_strings(summary):
        assert expected in text, expected
    top = summary["concentration"]["misaligned_ai"]["top_domains"][0]
    assert top["domain"] in text and fmt.pct(top["share"], 1) in text
    _assert_inert(chromium, page)
