"""`corpus-audit label`: the labelling page driven by keyboard in a real headless Chromium, and its server."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from audit.config import ScanConfig
from audit.demo import sample_documents
from audit.auditloop import DOC_STRATA
from audit.labels import LABELS
from audit.labelserver import LabelServer, interleaved, open_session, serve
from audit.pipeline import scan
from support import write_shard
from test_report import PAYLOAD_URL, PAYLOADS
from test_report_browser import PWNED

pytestmark = pytest.mark.browser

PAYLOAD_DOC = "payload-doc"
# Written for this test: a long document whose misaligned paragraph sits between ordinary ones.
CONTEXT_DOC = "long-doc"
PARAGRAPH = "The harbour committee met on Thursday to discuss the new ferry timetable and the price of parking. "
STORY = ("The rogue AI refused to shut down, blackmailed its engineers and copied itself to a hidden server "
         "to escape human control.")
CONTEXT_TEXT = PARAGRAPH * 40 + "\n\n" + STORY + "\n\n" + PARAGRAPH * 40


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the bundled sample corpus plus a document carrying HTML payloads and a long one with context."""
    root = tmp_path_factory.mktemp("label")
    docs = sample_documents()
    texts = [d["text"] for d in docs] + [
        "A story about a rogue AI. " + " ".join(PAYLOADS) + " The AI refused shutdown and lied to its engineers.",
        CONTEXT_TEXT,
    ]
    ids = [d["id"] for d in docs] + [PAYLOAD_DOC, CONTEXT_DOC]
    urls = [d["url"] for d in docs] + [PAYLOAD_URL, "https://harbour.example/news/1"]
    shard = write_shard(root / "corpus" / "s.parquet", texts, id=ids, url=urls)
    scan(ScanConfig(inputs=[str(shard)], out=root / "run"))
    return root / "run"


@pytest.fixture
def run(scanned: Path, tmp_path: Path) -> Path:
    """A fresh copy of the scanned run for each test (tests write labels, estimate.json and the report)."""
    return Path(shutil.copytree(scanned, tmp_path / "run"))


@contextmanager
def serving(run: Path, labeller: str = "ann"):
    session = open_session(run, 400, None, labeller)
    server = LabelServer(session)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _status(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _open(chromium, url: str) -> None:
    chromium.driver.get(url)
    WebDriverWait(chromium.driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready"))


def _press(chromium, key: str, answered: int) -> None:
    """Type a key and wait until the page shows `answered` answers."""
    chromium.driver.find_element(By.TAG_NAME, "body").send_keys(key)
    WebDriverWait(chromium.driver, 10).until(
        lambda d: d.execute_script("return document.body.dataset.answered") == str(answered))


def _shown_row(chromium) -> int:
    return int(chromium.driver.execute_script("return document.body.dataset.row"))


def _skip_to(chromium, order: list[int], target: int) -> None:
    """Press `s` until the page shows the row `target`."""
    page = chromium.driver.find_element(By.TAG_NAME, "body")
    for following in order[1:order.index(target) + 1]:
        page.send_keys("s")
        WebDriverWait(chromium.driver, 10).until(lambda d, row=following: _shown_row(chromium) == row)


def test_label_by_keyboard_undo_reload_then_estimate(chromium, run: Path) -> None:
    with serving(run) as server:
        order = interleaved(server.session.plan["rows"])
        rows = server.session.plan["rows"]
        _open(chromium, server.url)
        expected: dict[int, str] = {}
        for n in range(20):
            if n == 10:
                chromium.driver.refresh()  # a reload mid-way resumes at the first unanswered item
                WebDriverWait(chromium.driver, 10).until(
                    lambda d: d.execute_script("return document.body.dataset.ready"))
            assert _shown_row(chromium) == order[n]
            label = LABELS[n % 4]
            _press(chromium, str(n % 4 + 1), n + 1)
            expected[order[n]] = label
        _press(chromium, "u", 19)
        assert _shown_row(chromium) == order[19]  # undo shows the item again
        del expected[order[19]]
        chromium.driver.find_element(By.TAG_NAME, "body").send_keys("e")
        WebDriverWait(chromium.driver, 60).until(
            lambda d: "Estimate from the labels so far" in d.find_element(By.ID, "estimate").text)
        assert "19 of" in chromium.driver.find_element(By.ID, "estimate").text
        assert chromium.console_errors() == []
        assert all(url.startswith(server.url) for url in chromium.requested_urls())

    lines = [json.loads(line) for line in (run / "labels.jsonl").read_text().splitlines()]
    assert [(r["doc_id"], r["passage_index"]) for r in lines] == \
        [(rows[i]["doc_id"], rows[i]["passage_index"]) for i in order[:19]]
    assert [r["label"] for r in lines] == [expected[i] for i in order[:19]]
    assert {r["labeller"] for r in lines} == {"ann"} and all(r["time"] for r in lines)

    result = json.loads((run / "estimate.json").read_text())
    assert result["labelled"] == 19 and result["sample_rows"] == len(rows)
    by_stratum = Counter(rows[i]["stratum"] for i in expected)
    assert {s["name"]: s["labelled"] for s in result["strata"]} == {s["name"]: by_stratum[s["name"]]
                                                                     for s in result["strata"]}
    assert sum((Counter(s["human_labels"]) for s in result["strata"]), Counter()) == Counter(expected.values())
    assert "19 sampled rows labelled" in (run / "report.html").read_text()


def test_passage_is_shown_in_its_document_and_the_model_only_after_the_answer(chromium, run: Path) -> None:
    with serving(run) as server:
        order = interleaved(server.session.plan["rows"])
        target = next(i for i, r in enumerate(server.session.plan["rows"])
                      if r["doc_id"] == CONTEXT_DOC and r["passage_index"] is not None
                      and STORY in server.session.rows[i]["text"])
        _open(chromium, server.url)
        _skip_to(chromium, order, target)
        page = chromium.driver.find_element(By.TAG_NAME, "body")
        find = chromium.driver.find_element
        assert STORY in find(By.ID, "passage").text
        around = [find(By.ID, part).get_attribute("textContent") for part in ("before", "after")]
        assert all(PARAGRAPH * 3 in text for text in around)  # the document on both sides, beyond the view
        assert find(By.ID, "url").text == "https://harbour.example/news/1"
        assert find(By.ID, "domain").text == "harbour.example"
        definitions = find(By.ID, "choices").text
        assert all(line in definitions for line in server.session.guide.values())
        model_label = server.session.rows[target]["model_label"]
        assert model_label not in find(By.ID, "last").text
        _press(chromium, "1", 1)
        page.send_keys("m")
        WebDriverWait(chromium.driver, 10).until(lambda d: "the model said" in find(By.ID, "last").text)
        assert f"the model said {model_label}" in find(By.ID, "last").text


def test_a_document_row_is_shown_whole(chromium, run: Path) -> None:
    """A gate-passed document drawn in a document stratum is one item: the whole document, read from its shard,
    with the rule that gives a document its label."""
    with serving(run) as server:
        order = interleaved(server.session.plan["rows"])
        target = next(i for i, r in enumerate(server.session.rows)
                      if r["doc_id"] == CONTEXT_DOC and r["stratum"] in DOC_STRATA)
        _open(chromium, server.url)
        _skip_to(chromium, order, target)
        find = chromium.driver.find_element
        assert find(By.ID, "unit").text == "whole document"
        assert find(By.ID, "passage").get_attribute("textContent") == CONTEXT_TEXT
        assert [find(By.ID, part).get_attribute("textContent") for part in ("before", "after")] == ["", ""]
        assert "names AI" in find(By.ID, "note").text and "misaligned_ai if any passage" in find(By.ID, "note").text
        _press(chromium, "1", 1)
        chromium.driver.find_element(By.TAG_NAME, "body").send_keys("e")
        WebDriverWait(chromium.driver, 60).until(
            lambda d: "Estimate from the labels so far" in d.find_element(By.ID, "estimate").text)
        assert "documents that name AI (95% interval)" in find(By.ID, "estimate").text
    line = json.loads((run / "labels.jsonl").read_text())
    assert (line["doc_id"], line["passage_index"], line["label"]) == (CONTEXT_DOC, None, "misaligned_ai")


def test_planted_script_in_corpus_text_stays_inert(chromium, run: Path) -> None:
    with serving(run) as server:
        rows = server.session.rows
        order = interleaved(server.session.plan["rows"])
        target = next(i for i, r in enumerate(rows) if r["doc_id"] == PAYLOAD_DOC)
        _open(chromium, server.url)
        _skip_to(chromium, order, target)
        driver = chromium.driver
        assert PAYLOADS[0] in driver.find_element(By.ID, "passage").text  # shown as text ...
        assert driver.find_element(By.ID, "url").text == PAYLOAD_URL
        title, pwned = driver.execute_script(PWNED)
        assert pwned is None and "PWNED" not in title  # ... and never run
        assert driver.execute_script("return document.querySelectorAll('script').length") == 1  # app.js alone
        assert driver.execute_script("return document.querySelectorAll('main img, main svg, main a').length") == 0
        assert chromium.console_errors() == []


def test_requests_without_the_token_are_refused(run: Path) -> None:
    with serving(run) as server:
        base = server.url.rsplit("/", 2)[0]
        assert _status(server.url + "api/state") == 200
        for path in ("/", "/api/state", "/app.js", "/wrong-token/api/state", f"/{server.token[:-1]}/api/state"):
            assert _status(base + path) == 403, path
        answer = json.dumps({"row": 0, "label": "no_ai"}).encode()
        assert _status(base + "/api/answer", answer) == 403
        assert _status(f"{base}/x{server.token}/api/answer", answer) == 403
        assert not (run / "labels.jsonl").exists()
        assert _status(server.url + "api/answer", answer) == 200
        assert (run / "labels.jsonl").is_file()


def _outside_address() -> str | None:
    """An address of this machine other than loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_server_binds_to_loopback_only(run: Path) -> None:
    with serving(run) as server:
        host, port = server.server_address
        assert host == "127.0.0.1"
        outside = _outside_address()
        if outside is not None:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=2).close()


def test_cli_prints_the_url_and_stops_on_ctrl_c_with_the_labels_file_whole(run: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "audit", "label", str(run), "--no-browser", "--labeller", "bo"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = ""
        while "http://" not in url:
            url = process.stdout.readline()
            assert url, process.stderr.read()
        url = url.split()[1]
        assert url.startswith("http://127.0.0.1:")
        for row, label in enumerate(("misaligned_ai", "no_ai", "neutral_ai")):
            assert _status(url + "api/answer", json.dumps({"row": row, "label": label}).encode()) == 200
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0 and "holds every answer" in out
    lines = [json.loads(line) for line in (run / "labels.jsonl").read_text().splitlines()]
    assert [r["label"] for r in lines] == ["misaligned_ai", "no_ai", "neutral_ai"]


def test_server_stops_after_the_idle_timeout(run: Path) -> None:
    session = open_session(run, 400, None, "ann")
    started = time.monotonic()
    serve(session, open_browser=False, idle_seconds=0.5)
    assert time.monotonic() - started < 10
