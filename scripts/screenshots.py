"""Screenshots of `semret serve`'s main pages for the docs (docs/img/serve-*.png), taken in a real
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium) over a store
and its reports, served on a free local port as `semret serve` would serve them.

    uv run semret --db sqlite:///demo.sqlite3 demo --out semret-demo
    uv run python scripts/screenshots.py --db sqlite:///demo.sqlite3 --report semret-demo

The pages: the collections, a collection's image grid, a query by one stored image with every
method side by side (the first result's "why?" opened), and each report given.
"""

from __future__ import annotations

import argparse
import base64
import sys
import urllib.parse
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the browser tests' launcher
from chromium import NoChromium, launch_chromium

from semret.app.browse import StoreBrowser
from semret.sql.engine import make_engine
from semret.web.app import create_app
from semret.web.background import serve_in_background

WIDTH = 1400
MAX_HEIGHT = 1800


def start_chromium() -> webdriver.Chrome:
    try:
        return launch_chromium(WIDTH, 900, "--hide-scrollbars")
    except NoChromium as exc:
        sys.exit(f"screenshots: {exc}")


def shoot(
    chrome: webdriver.Chrome, url: str, path: Path, open_first_why: bool = False, start: str | None = None
) -> None:
    """Load ``url``, wait for its images, and save the page (up to MAX_HEIGHT pixels tall), from the
    top or from the element ``start`` (a CSS selector) down."""
    chrome.get(url)
    chrome.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    WebDriverWait(chrome, 300).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    if open_first_why:
        chrome.execute_script(
            "document.querySelectorAll('section.method li[data-rank=\"1\"] details.why').forEach(d => d.open = true)"
        )
    top = 0
    if start is not None:
        top = int(chrome.execute_script("return document.querySelector(arguments[0]).offsetTop", start))
    height = (
        chrome.execute_script(
            "const b = document.body.getBoundingClientRect(); return Math.ceil(b.bottom + window.scrollY) + 16"
        )
        - top
    )
    shot = chrome.execute_cdp_cmd(  # the page's content only, beyond the window if taller
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True,
         "clip": {"x": 0, "y": top, "width": WIDTH, "height": min(int(height), MAX_HEIGHT), "scale": 1}},
    )  # fmt: skip
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the store's URL")
    parser.add_argument("--report", type=Path, action="append", default=[], help="a report directory (repeatable)")
    parser.add_argument("--image-id", type=int, help="the query image (default: the collection's 8th image)")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()

    browser = StoreBrowser(make_engine(args.db, read_only=True), args.report, [])
    collections = browser.collections()
    if not collections:
        sys.exit(f"screenshots: the store {args.db} has no collection")
    name = collections[0]["name"]
    methods = [method.key for method in browser.methods(name)]
    image_id = args.image_id if args.image_id is not None else int(browser.pixels.collection(name).image_ids[7])
    args.out.mkdir(parents=True, exist_ok=True)
    quoted = urllib.parse.quote(name)
    query = urllib.parse.urlencode([("image_id", image_id), *(("method", m) for m in methods), ("k", args.k)])
    chrome = start_chromium()
    try:
        with serve_in_background(create_app(browser)) as site:
            shoot(chrome, f"{site}/", args.out / "serve-collections.png")
            shoot(chrome, f"{site}/collections/{quoted}?per_page=60", args.out / "serve-collection.png")
            shoot(chrome, f"{site}/collections/{quoted}/query?{query}", args.out / "serve-query.png", True)
            for report in browser.reports:
                chrome.get(f"{site}/reports/{urllib.parse.quote(report)}")
                if chrome.find_elements(By.ID, "error"):
                    continue
                page = f"{site}/reports/{urllib.parse.quote(report)}"
                shoot(chrome, page, args.out / f"serve-report-{report}.png")
                shoot(chrome, page, args.out / f"serve-report-{report}-pictures.png", start="#pictures")
    finally:
        chrome.quit()


if __name__ == "__main__":
    main()
