"""`semret serve` used as a person would: a real headless Chromium (tests/chromium.py) opens the
pages of the app served over the small real store of tests/web_store.py, types queries, ticks
methods, uploads files, and the tests read what the page then shows: tiles whose images loaded,
with the labels the store holds, in the order the JSON API gives."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from chromium import start_chromium
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from web_store import WebStore, web_store

from semret.app.browse import StoreBrowser
from semret.sql.engine import make_engine
from semret.web.app import create_app
from semret.web.background import serve_in_background

QUERY_IMAGE = 60007  # a stored test image of the sample collection
WAIT_S = 120  # the first query of a method loads its model: generous on a loaded machine


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> WebStore:
    return web_store(tmp_path_factory)


@pytest.fixture(scope="module")
def browser_store(store: WebStore) -> StoreBrowser:
    return StoreBrowser(make_engine(store.url, read_only=True), [store.report], [(store.collection, store.index)])


@pytest.fixture(scope="module")
def site(browser_store: StoreBrowser) -> Iterator[str]:
    with serve_in_background(create_app(browser_store)) as url:
        yield url


@pytest.fixture(scope="module")
def chrome() -> Iterator[webdriver.Chrome]:
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def labels(browser_store: StoreBrowser, store: WebStore) -> dict[int, str]:
    stored = browser_store.pixels.collection(store.collection)
    return {int(i): str(label) for i, label in zip(stored.image_ids, stored.labels, strict=True)}


@pytest.fixture(scope="module")
def methods(browser_store: StoreBrowser, store: WebStore) -> list[str]:
    return [method.key for method in browser_store.methods(store.collection)]


def json_of(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        return json.loads(response.read())


def wait_for_images(chrome: webdriver.Chrome, selector: str) -> list[WebElement]:
    """The images under ``selector``, once the browser has finished loading every one of them."""
    WebDriverWait(chrome, WAIT_S).until(
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0])).every(i => i.complete)", selector
        )
    )
    return chrome.find_elements(By.CSS_SELECTOR, selector)


def loaded(image: WebElement) -> bool:
    return int(image.get_property("naturalWidth")) > 0 and int(image.get_property("naturalHeight")) > 0


def fill_query(chrome: webdriver.Chrome, site: str, store: WebStore, chosen: list[str], k: int) -> None:
    """Open the query page, tick exactly the ``chosen`` methods and set k (the query itself is the
    caller's)."""
    chrome.get(f"{site}/collections/{store.collection}/query")
    for box in chrome.find_elements(By.CSS_SELECTOR, "input[name=method]"):
        if box.is_selected() != (box.get_attribute("value") in chosen):
            box.click()
    field = chrome.find_element(By.ID, "k")
    field.clear()
    field.send_keys(str(k))


def submit(chrome: webdriver.Chrome) -> None:
    chrome.find_element(By.ID, "run").click()
    WebDriverWait(chrome, WAIT_S).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#results, #error")))


def grid(chrome: webdriver.Chrome, method: str) -> list[WebElement]:
    """The result tiles of ``method``'s column, their images loaded (or failed)."""
    selector = f'section.method[data-method="{method}"] li.result'
    wait_for_images(chrome, f"{selector} img")
    return chrome.find_elements(By.CSS_SELECTOR, selector)


def assert_tiles(tiles: list[WebElement], expected_ids: list[int], labels: dict[int, str]) -> None:
    """Tiles in rank order, showing the expected images, each loaded and captioned with its label."""
    shown = [int(tile.get_attribute("data-image-id")) for tile in tiles]
    assert shown == expected_ids
    assert [int(tile.get_attribute("data-rank")) for tile in tiles] == list(range(1, len(tiles) + 1))
    for tile, image_id in zip(tiles, shown, strict=True):
        image = tile.find_element(By.TAG_NAME, "img")
        assert loaded(image), f"image {image_id} did not load"
        assert image.get_attribute("src").endswith(f"/images/{image_id}.png")
        assert tile.find_element(By.CSS_SELECTOR, ".label").text == labels[image_id]


def expected_ids(site: str, store: WebStore, method: str, k: int, **query: str | int) -> list[int]:
    params = urllib.parse.urlencode({**query, "method": method, "k": k})
    document = json_of(f"{site}/collections/{store.collection}/query?{params}")
    (answer,) = document["answers"]
    return [row["image_id"] for row in answer["results"]]


def test_the_collection_page_shows_labelled_thumbnails_that_load(
    chrome: webdriver.Chrome, site: str, store: WebStore, labels: dict[int, str]
) -> None:
    chrome.get(f"{site}/collections/{store.collection}?page=2&per_page=24")
    images = wait_for_images(chrome, "#images img")
    assert len(images) == 24 and all(loaded(image) for image in images)
    tiles = chrome.find_elements(By.CSS_SELECTOR, "#images a.tile")
    shown = {int(tile.get_attribute("data-image-id")): tile.text for tile in tiles}
    assert sorted(shown) == sorted(labels)[24:48]
    assert all(labels[image_id] in text for image_id, text in shown.items())


def test_a_query_by_each_method_shows_k_loaded_images_with_their_labels(
    chrome: webdriver.Chrome, site: str, store: WebStore, labels: dict[int, str], methods: list[str]
) -> None:
    assert len(methods) == 5
    for k, method in enumerate(methods, start=3):
        fill_query(chrome, site, store, [method], k)
        chrome.find_element(By.ID, "image_id").send_keys(str(QUERY_IMAGE))
        submit(chrome)
        assert chrome.find_elements(By.ID, "error") == [], chrome.find_element(By.ID, "error").text
        assert_tiles(grid(chrome, method), expected_ids(site, store, method, k, image_id=QUERY_IMAGE), labels)
        assert f"image_id={QUERY_IMAGE}" in chrome.current_url  # the query can be shared as a link


def test_words_typed_into_the_page_are_answered_by_iwan(
    chrome: webdriver.Chrome, site: str, store: WebStore, labels: dict[int, str]
) -> None:
    fill_query(chrome, site, store, ["iwan"], 6)
    chrome.find_element(By.ID, "words").send_keys("winter, cold")
    submit(chrome)
    tiles = grid(chrome, "iwan")
    assert_tiles(tiles, expected_ids(site, store, "iwan", 6, words="winter, cold"), labels)
    why = tiles[0].find_element(By.CSS_SELECTOR, "details.why")
    why.click()
    steps = why.find_elements(By.CSS_SELECTOR, "ol.path li")
    first = int(tiles[0].get_attribute("data-image-id"))
    hops = [step.text.split(" → ") for step in steps]
    assert hops[0][0] == "query" and hops[0][1].split()[0].lower() in {"winter", "cold"}
    assert steps[-1].text.split(" → ")[1].startswith(f"{first} ({labels[first]})")


def test_several_methods_are_shown_side_by_side_for_one_query(
    chrome: webdriver.Chrome, site: str, store: WebStore, labels: dict[int, str], methods: list[str]
) -> None:
    fill_query(chrome, site, store, methods, 5)
    chrome.find_element(By.ID, "image_id").send_keys(str(QUERY_IMAGE))
    submit(chrome)
    columns = chrome.find_elements(By.CSS_SELECTOR, ".side-by-side > section.method")
    assert [column.get_attribute("data-method") for column in columns] == methods
    for method in methods:
        assert_tiles(grid(chrome, method), expected_ids(site, store, method, 5, image_id=QUERY_IMAGE), labels)
    boxes = [column.rect for column in columns]
    assert len({round(box["y"]) for box in boxes}) == 1, "the columns are not on one row"
    lefts = [box["x"] for box in boxes]
    assert lefts == sorted(lefts) and all(b["x"] + b["width"] <= a["x"] + 1 for b, a in pairwise(boxes))


def write_png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def test_an_uploaded_png_returns_results(
    chrome: webdriver.Chrome,
    site: str,
    store: WebStore,
    labels: dict[int, str],
    browser_store: StoreBrowser,
    tmp_path: Path,
) -> None:
    method = f"hash-rerank:{store.model}"
    pixels = browser_store.pixels.read(store.collection, [QUERY_IMAGE])[0]
    upload = write_png(tmp_path / "my shirt.png", np.fliplr(pixels).copy())
    fill_query(chrome, site, store, [method], 8)
    chrome.find_element(By.ID, "file").send_keys(str(upload))
    assert chrome.find_element(By.CSS_SELECTOR, "input[name=source][value=upload]").is_selected()
    submit(chrome)
    assert chrome.find_elements(By.ID, "error") == [], chrome.find_element(By.ID, "error").text
    assert "uploaded my shirt.png" in chrome.find_element(By.CSS_SELECTOR, ".query-shown").text
    (query_image,) = wait_for_images(chrome, ".query-shown img")
    assert loaded(query_image)
    boundary = "semret-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\n{method}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n8\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="my shirt.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + upload.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    document = json_of(
        f"{site}/collections/{store.collection}/query",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    (answer,) = document["answers"]
    assert_tiles(grid(chrome, method), [row["image_id"] for row in answer["results"]], labels)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"just some text, not an image", "notes.txt: not an image (upload a PNG or JPEG file)"),
        ("huge.png", b"\x89PNG" + bytes(5 * 1024 * 1024), "huge.png: 5,242,884 bytes is over the limit"),
    ],
)
def test_a_bad_upload_gets_a_clear_message_on_the_page(
    chrome: webdriver.Chrome, site: str, store: WebStore, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    fill_query(chrome, site, store, [f"hash-exact:{store.model}"], 5)
    chrome.find_element(By.ID, "file").send_keys(str(path))
    submit(chrome)
    assert message in chrome.find_element(By.ID, "error").text
    assert chrome.find_elements(By.ID, "results") == []
    assert "Traceback" not in chrome.page_source
