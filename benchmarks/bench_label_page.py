"""How fast the labelling page turns over: 50 items labelled by keyboard in headless Chromium, and screenshots.

Usage: python benchmarks/bench_label_page.py RUN [--items 50] [--shots DIR]

The keyboard is driven by selenium and the label for each item is picked by a fixed rule from the text the page
shows (a keyword check written for this script), not by a person reading it: the figure is the page's and the
server's share of a labelling session (render, keypress, atomic write, next item), the floor under a person's
reading time. It labels into a fresh labels file beside RUN (RUN/bench-labels.jsonl), never RUN/labels.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import CHROMEDRIVER, CHROMIUM  # noqa: E402  (the test suite's Chromium, same flags)

from audit.labelserver import LabelServer, open_session  # noqa: E402

WORDS = {"1": ("refused to shut", "take over", "wipe out", "rogue"), "2": ("safety", "honest"),
         "3": (" ai ", "artificial intelligence", "robot", "chatbot", "algorithm")}


def pick(text: str) -> str:
    """The key the script presses for a passage: a keyword rule, standing in for a person's judgement."""
    lowered = f" {text.lower()} "
    return next((key for key, words in WORDS.items() if any(w in lowered for w in words)), "4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--shots", type=Path, default=Path("test-artifacts"))
    args = parser.parse_args()
    labels = args.run / "bench-labels.jsonl"
    labels.unlink(missing_ok=True)
    server = LabelServer(open_session(args.run, 400, labels, "bench"))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(server.url)
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        args.shots.mkdir(exist_ok=True)
        driver.save_screenshot(str(args.shots / "label-page.png"))
        body = driver.find_element(By.TAG_NAME, "body")
        started = time.perf_counter()
        for n in range(1, args.items + 1):
            body.send_keys(pick(driver.find_element(By.ID, "passage").text))
            WebDriverWait(driver, 10, poll_frequency=0.01).until(
                lambda d, n=n: d.execute_script("return document.body.dataset.answered") == str(n))
        seconds = time.perf_counter() - started
        driver.save_screenshot(str(args.shots / "label-page-after.png"))
        body.send_keys("m")
        body.send_keys("e")
        WebDriverWait(driver, 120).until(lambda d: "Estimate from" in d.find_element(By.ID, "estimate").text)
        driver.save_screenshot(str(args.shots / "label-page-estimate.png"))
        body.send_keys("?")
        driver.save_screenshot(str(args.shots / "label-page-help.png"))
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    lines = len(labels.read_text().splitlines())
    print(f"{args.items} items labelled by keyboard in {seconds:.2f} s ({seconds / args.items * 1000:.0f} ms per "
          f"item); {lines} lines in {labels}; screenshots in {args.shots}")


if __name__ == "__main__":
    main()
