"""Shared fixtures. `chromium`: a real headless Chromium (Debian's chromium + chromium-driver) for page tests.

Tests marked `shared_data`, `browser` or `ray` need something outside the repository. When it is missing they skip
with a reason naming what to install, unless CORPUS_AUDIT_REQUIRE_ALL=1 (set by .ci/run), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _missing_shared_data() -> str | None:
    from support import SHARED_DATA

    if (SHARED_DATA / "shards").is_dir():
        return None
    return (f"needs the shared data at {SHARED_DATA}: put the project's shared/data folder beside the repository "
            "(../shared/data) or set CORPUS_AUDIT_SHARED_DATA")


def _missing_browser() -> str | None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return None
    return f"needs {CHROMIUM} and {CHROMEDRIVER}: `make browser` (apt-get install chromium chromium-driver)"


def _missing_ray() -> str | None:
    return None if importlib.util.find_spec("ray") else "needs Ray: pip install 'corpus-audit[ray]' (make test does)"


NEEDS = {"shared_data": _missing_shared_data, "browser": _missing_browser, "ray": _missing_ray}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, with CORPUS_AUDIT_REQUIRE_ALL=1, fail) a test whose marked needs are not met."""
    for marker, missing in NEEDS.items():
        if item.get_closest_marker(marker) and (reason := missing()):
            if os.environ.get("CORPUS_AUDIT_REQUIRE_ALL") == "1":
                pytest.fail(f"CORPUS_AUDIT_REQUIRE_ALL=1 and this test {reason}", pytrace=False)
            pytest.skip(reason)


@dataclass
class Browser:
    """A headless Chromium with its console and network logs; `open` a local file, then ask what happened."""
    driver: webdriver.Chrome

    def open(self, path: Path) -> None:
        self.driver.get_log("browser")        # reading a log clears it: start each page clean
        self.driver.get_log("performance")
        self.driver.get(path.resolve().as_uri())

    def console_errors(self) -> list[dict]:
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for (Network.requestWillBeSent events in the performance log).

        Requests of the browser's own pages (the new-tab page it opens at start-up, documentURL chrome://...)
        are left out: they can land in the log after `open` cleared it, and no page of ours makes them.
        """
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            params = message["params"]
            internal = ("chrome://", "chrome-untrusted://", "chrome-search://")
            if not (
                params.get("documentURL", "").startswith(internal) or params["request"]["url"].startswith(internal)
            ):
                urls.append(params["request"]["url"])
        return urls

    def screenshot(self, name: str, width: int = 1366, height: int = 900, full_page: bool = False) -> Path:
        """Save a PNG of the first screen (or the whole page) under test-artifacts/ (git-ignored)."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.driver.set_window_size(width, height)
        if full_page:
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(width, height + 200)
        path = ARTIFACTS / name
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def chromium(tmp_path):
    """A fresh headless Chromium (own profile, no background networking); quit after the test."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
