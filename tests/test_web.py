"""`semret serve`'s pages and JSON API through FastAPI's test client, on a small real store
(tests/web_store.py): the results match `semret query ... --json`, uploads go through the
collection's backbone and models, explanations agree with the data, and bad requests get a 4xx
with a one-line message."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from web_store import WebStore, web_store

from semret.app.browse import MAX_K, StoreBrowser
from semret.sql.engine import make_engine
from semret.vision.hierarchy import ClassHierarchy
from semret.web.app import create_app

from helpers import ok, semret


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> WebStore:
    return web_store(tmp_path_factory)


@pytest.fixture(scope="module")
def browser(store: WebStore) -> StoreBrowser:
    engine = make_engine(store.url, read_only=True)
    return StoreBrowser(engine, [store.report], [(store.collection, store.index)])


@pytest.fixture(scope="module")
def client(browser: StoreBrowser) -> TestClient:
    return TestClient(create_app(browser), raise_server_exceptions=False)


def get_json(client: TestClient, url: str, **params: Any) -> Any:
    response = client.get(url, params={**params, "format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def methods_of(client: TestClient, store: WebStore) -> list[str]:
    return [m["key"] for m in get_json(client, f"/collections/{store.collection}")["collection"]["methods"]]


def test_the_collections_page_lists_counts_splits_models_graphs_and_methods(
    client: TestClient, store: WebStore
) -> None:
    (collection,) = get_json(client, "/")["collections"]
    assert collection["name"] == store.collection and collection["images"] == 1000
    assert collection["splits"] == {"test": 1000} and collection["hash_models"] == [store.model]
    assert collection["iwan_graph"]["scheme"] == "iwan" and collection["indexes"] == ["exact"]
    assert collection["reports"] == ["report"]
    keys = [m["key"] for m in collection["methods"]]
    assert keys == ["iwan", *(f"hash-{mode}:{store.model}" for mode in ("exact", "hamming", "rerank")), "index:exact"]
    assert all(m["takes_uploads"] for m in collection["methods"])
    html = client.get("/").text
    assert store.collection in html and "1,000" in html and "iwan (top-IWK 4, top-WWK 4)" in html


def test_the_image_grid_pages_through_the_collection_with_labels(client: TestClient, store: WebStore) -> None:
    first = get_json(client, f"/collections/{store.collection}", per_page=10)
    assert (first["page"], first["pages"], len(first["images"])) == (1, 100, 10)
    last = get_json(client, f"/collections/{store.collection}", page=100, per_page=10)
    ids = [image["image_id"] for image in last["images"]]
    assert ids == sorted(ids) and ids[-1] == 60999
    html = client.get(f"/collections/{store.collection}").text
    assert html.count('class="tile"') == 48 and 'data-label="Ankle boot"' in html


def test_thumbnails_come_from_the_stored_source_and_are_cached(
    client: TestClient, browser: StoreBrowser, store: WebStore
) -> None:
    response = client.get(f"/collections/{store.collection}/images/60000.png", params={"size": 56})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(response.content)))
    assert picture.shape == (56, 56)
    from semret.app.demo import sample_dir
    from semret.vision.idx import read_idx

    test_images = read_idx(sample_dir() / "t10k-images-idx3-ubyte.gz")  # image 60000 + i is test image i
    assert np.array_equal(picture[::2, ::2], test_images[0])  # nearest-neighbour 2x of the IDX image
    other = client.get(f"/collections/{store.collection}/images/60123.png", params={"size": 28})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(other.content))), test_images[123])
    thumbnails = client.app.state.thumbnails  # type: ignore[attr-defined]
    hits = thumbnails.hits
    assert client.get(f"/collections/{store.collection}/images/60000.png", params={"size": 56}).content == (
        response.content
    )
    assert thumbnails.hits == hits + 1


def _rows(results: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(row[key] for key in keys) for row in results]


@pytest.mark.parametrize("mode", ["exact", "hamming", "rerank"])
def test_hash_results_are_those_of_semret_query_hash_json(client: TestClient, store: WebStore, mode: str) -> None:
    cli = json.loads(
        ok(
            "--db", store.url, "query", "hash", "--collection", store.collection, "--model", store.model,
            "--image-id", "60010", "--mode", mode, "-k", "12", "--json",
        ).stdout
    )  # fmt: skip
    web = get_json(
        client, f"/collections/{store.collection}/query", image_id=60010, method=f"hash-{mode}:{store.model}", k=12
    )
    (answer,) = web["answers"]
    keys = ("rank", "image_id", "label", "score") + (("hamming_distance",) if mode == "hamming" else ())
    assert _rows(answer["results"], *keys) == _rows(cli["results"], *keys)
    assert len(answer["results"]) == 12 and 60010 not in [r["image_id"] for r in answer["results"]]


def test_iwan_and_index_results_are_those_of_semret_query(client: TestClient, store: WebStore) -> None:
    cli_iwan = json.loads(ok("--db", store.url, "query", "iwan", "--image-id", "60010", "-k", "9", "--json").stdout)
    web = get_json(
        client, f"/collections/{store.collection}/query", image_id=60010, method=["iwan", "index:exact"], k=9
    )
    iwan, index = web["answers"]
    assert _rows(iwan["results"], "rank", "image_id", "label", "distance", "path") == _rows(
        cli_iwan["results"], "rank", "image_id", "label", "distance", "path"
    )
    cli_index = json.loads(
        ok("query", "vector", "--index", store.index, "--image-id", "60010", "-k", "9", "--json").stdout
    )
    assert _rows(index["results"], "rank", "image_id", "label", "score") == _rows(
        cli_index["results"], "rank", "image_id", "label", "score"
    )


def test_explanations_agree_with_the_codes_the_paths_and_the_hierarchy(
    client: TestClient, browser: StoreBrowser, store: WebStore
) -> None:
    web = get_json(
        client,
        f"/collections/{store.collection}/query",
        image_id=60010,
        method=["iwan", f"hash-hamming:{store.model}", f"hash-rerank:{store.model}"],
        k=10,
    )
    iwan, hamming, rerank = web["answers"]
    query_label = web["query"]["label"]
    hierarchy = ClassHierarchy.packaged("fashion-mnist")
    for row in hamming["results"]:
        bits = row["explanation"]["bits"]
        assert bits["hamming_distance"] == row["hamming_distance"] == len(bits["differing_bits"])
        assert all(0 <= b < bits["n_bits"] == 48 for b in bits["differing_bits"])
    for row in rerank["results"]:
        classes = row["explanation"]["classes"]
        assert classes["similarity"] == pytest.approx(hierarchy.similarity(query_label, row["label"]))
        assert classes["lca"] == hierarchy.name(hierarchy.lcs(query_label, row["label"]))
    for row in iwan["results"]:
        edges = row["explanation"]["path"]
        assert [e["from"] for e in edges] + [edges[-1]["to"]] == row["path"]
        # each edge costs 1 / strength: the costs add up to the image's distance
        assert sum(1 / e["strength"] for e in edges) == pytest.approx(row["distance"])
        assert all(0 < e["strength"] <= 1 for e in edges)


def test_typed_words_are_answered_by_iwan_through_the_norms(client: TestClient, store: WebStore) -> None:
    web = get_json(client, f"/collections/{store.collection}/query", words="winter, cold", method="iwan", k=5)
    (answer,) = web["answers"]
    assert len(answer["results"]) == 5
    for row in answer["results"]:
        assert row["path"][1] in ("WINTER", "COLD") and row["explanation"]["path"][0]["strength"] == 1.0
    cli = json.loads(ok("--db", store.url, "query", "iwan", "--words", "WINTER:1,COLD:1", "-k", "5", "--json").stdout)
    assert _rows(answer["results"], "image_id", "distance") == _rows(cli["results"], "image_id", "distance")
    unknown = client.get(
        f"/collections/{store.collection}/query", params={"words": "wintr", "method": "iwan", "format": "json"}
    )
    assert unknown.status_code == 400 and "WINTER" in unknown.json()["error"]
    hashed = client.get(
        f"/collections/{store.collection}/query",
        params={"words": "winter", "method": f"hash-exact:{store.model}", "format": "json"},
    )
    assert hashed.status_code == 400 and "only IWAN answers words" in hashed.json()["error"]


def test_an_uploaded_png_goes_through_the_collections_backbone_and_models(
    client: TestClient, browser: StoreBrowser, store: WebStore
) -> None:
    (pixels,) = browser.pixels.read(store.collection, [60010])
    upscaled = np.asarray(Image.fromarray(pixels).resize((112, 112), Image.Resampling.NEAREST))
    response = client.post(
        f"/collections/{store.collection}/query",
        files={"file": ("trouser.png", png_of(upscaled), "image/png")},
        data={"method": methods_of(client, store), "k": "5"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    answers = {a["method"]: a for a in response.json()["answers"]}
    assert len(answers) == 5 and all(len(a["results"]) == 5 for a in answers.values())
    # the upload is image 60010 again: by its backbone features it finds itself first (the hash's
    # 10-d class-embedding space puts many images of a class at cosine ~1, so there only its class)
    assert answers["index:exact"]["results"][0]["image_id"] == 60010
    assert answers["index:exact"]["results"][0]["score"] > 0.9  # resized twice, torch here and ONNX there
    assert answers["iwan"]["notes"][0].startswith("query words: ")
    label = browser.pixels.label(store.collection, 60010)
    assert answers[f"hash-rerank:{store.model}"]["results"][0]["label"] == label
    assert answers[f"hash-exact:{store.model}"]["results"][0]["label"] == label
    html = client.post(
        f"/collections/{store.collection}/query",
        files={"file": ("trouser.png", png_of(upscaled), "image/png")},
        data={"method": "iwan", "k": "3"},
    ).text
    assert "data:image/png;base64," in html and html.count('class="tile result"') == 3


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b"just some text, not an image", 415, "not an image"),
        (b"", 400, "the file is empty"),
        (b"\x89PNG" + b"0" * (5 * 1024 * 1024), 413, "5,242,884 bytes is over the limit"),
    ],
)
def test_a_bad_upload_gets_a_clear_message(
    client: TestClient, store: WebStore, payload: bytes, status: int, message: str
) -> None:
    response = client.post(
        f"/collections/{store.collection}/query",
        files={"file": ("notes.txt", payload, "text/plain")},
        data={"method": "iwan"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == status and message in response.json()["error"]
    assert "notes.txt" in response.json()["error"] or not payload


@pytest.mark.parametrize(
    ("url", "params", "status", "message"),
    [
        ("/collections/nothing-here", {}, 404, "no collection 'nothing-here'"),
        ("/collections/../../etc/passwd", {}, 404, "no page at"),
        ("/collections/..%2F..%2Fetc%2Fpasswd", {}, 404, None),
        ("/collections/{c}/images/..%2F..%2Fresults.json.png", {}, 404, None),
        ("/collections/{c}/images/12345678.png", {}, 404, "image 12345678 is not in collection"),
        ("/collections/{c}/images/60000.png", {"size": 100000}, 400, "size must be from 16 to 256"),
        ("/collections/{c}/query", {"image_id": 60000, "method": "iwan", "k": 10**9}, 400, f"from 1 to {MAX_K}"),
        ("/collections/{c}/query", {"image_id": 60000, "method": "iwan", "k": -3}, 400, f"from 1 to {MAX_K}"),
        ("/collections/{c}/query", {"image_id": 60000, "method": "iwan", "k": "ten"}, 400, "k: "),
        ("/collections/{c}/query", {"image_id": -1, "method": "iwan"}, 404, "image -1 is not in collection"),
        ("/collections/{c}/query", {"image_id": 60000, "method": "lsh"}, 404, "has no method 'lsh'"),
        ("/collections/{c}/query", {"image_id": 60000, "words": "cold", "method": "iwan"}, 400, "exactly one query"),
        ("/collections/{c}", {"page": 0}, 400, "page must be from 1 to"),
        ("/reports/report/pictures/../results.json", {}, 404, None),
        ("/reports/report/pictures/..%2Fresults.json", {}, 404, "has no picture"),
        ("/reports/report/pictures/%2Fetc%2Fpasswd", {}, 404, "has no picture"),
        ("/reports/nope", {}, 404, "no report 'nope'"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message_never_a_traceback(
    client: TestClient, store: WebStore, url: str, params: dict[str, Any], status: int, message: str | None
) -> None:
    path = url.replace("{c}", store.collection)
    for accept in ("application/json", "text/html"):
        response = client.get(path, params=params, headers={"accept": accept})
        assert response.status_code == status, (path, response.text)
        assert "Traceback" not in response.text and 'File "' not in response.text
        if accept == "application/json":
            error = response.json()["error"]
            assert "\n" not in error and (message is None or message in error)
        else:
            assert 'id="error"' in response.text


def test_the_report_page_renders_tables_plots_and_contact_sheets(client: TestClient, store: WebStore) -> None:
    view = get_json(client, "/reports/report")
    assert view["collection"] == store.collection and view["methods"] == ["hash", "hash-rerank", "iwan"]
    tables = {(t["convention"], t["metric"]): t for t in view["tables"]}
    document = json.loads((store.report / "results.json").read_text())
    mean_ap = tables[("semret", "mAP")]
    row = next(r for r in mean_ap["rows"] if r["method"] == "iwan")
    assert [c["value"] for c in row["cells"]] == [
        document["methods"]["iwan"]["metrics"]["mAP"][k] for k in mean_ap["ks"]
    ]
    assert {"map_at_k.png", "sheets/hash.png", "sheets/iwan.png"} <= set(view["pictures"])
    picture = client.get("/reports/report/pictures/sheets/iwan.png")
    assert picture.status_code == 200 and picture.content == (store.report / "sheets" / "iwan.png").read_bytes()
    html = client.get("/reports/report").text
    assert "mAP@k (semret)" in html and "sheets/hash-rerank.png" in html


def test_the_server_opens_the_store_read_only(browser: StoreBrowser) -> None:
    with pytest.raises(OperationalError, match=r"readonly|read-only|query_only"), browser.engine.begin() as conn:
        conn.execute(text("DELETE FROM images"))


def test_semret_serve_refuses_what_it_cannot_serve(tmp_path: Path, store: WebStore) -> None:
    missing = semret("--db", f"sqlite:///{tmp_path / 'none.sqlite3'}", "serve")
    assert missing.exit_code == 1 and "no database at" in missing.output and "Traceback" not in missing.output
    bad_index = semret("--db", store.url, "serve", "--index", str(store.index))
    assert bad_index.exit_code == 1 and "give COLLECTION=FILE" in bad_index.output
    no_report = semret("--db", store.url, "serve", "--report", str(tmp_path))
    assert no_report.exit_code == 1 and "no results.json" in no_report.output


def test_an_index_takes_uploads_only_when_its_vectors_come_from_the_uploads_path(
    tmp_path: Path, browser: StoreBrowser, store: WebStore
) -> None:
    from semret.app.indexes import IndexVectors, build_index, features_origin, stored_embeddings
    from semret.indexes.base import load_index

    exact = load_index(store.index)
    ids, vectors = exact.ids, exact.vectors()
    labels = [browser.pixels.label(store.collection, int(i)) for i in ids]
    other_origins = {
        "unknown": None,  # a features file: it does not say what made its vectors
        "other-size": features_origin("efficientnet-lite0", "imagenet", 64),
        "other-backbone": features_origin("resnet18", "imagenet", 32),
    }
    files = []
    for name, origin in other_origins.items():
        build_index("exact", IndexVectors(ids, vectors, labels, origin), tmp_path / f"{name}.npz")
        files.append((store.collection, tmp_path / f"{name}.npz"))
    engine = make_engine(store.url, read_only=True)
    build_index("exact", stored_embeddings(engine, store.collection, store.model), tmp_path / "embeddings.npz")
    files.append((store.collection, tmp_path / "embeddings.npz"))
    browsing = StoreBrowser(engine, [store.report], [(store.collection, store.index), *files])
    takes = {m.key: m.takes_uploads for m in browsing.methods(store.collection) if m.kind == "index"}
    assert takes == {
        "index:exact": True,  # the report's backbone, weights and input size
        "index:embeddings": True,  # the hash model's embeddings, its checkpoint in the report
        "index:unknown": False,
        "index:other-size": False,
        "index:other-backbone": False,
    }
    client = TestClient(create_app(browsing), raise_server_exceptions=False)
    (pixels,) = browser.pixels.read(store.collection, [60010])
    response = client.post(
        f"/collections/{store.collection}/query",
        files={"file": ("trouser.png", png_of(pixels), "image/png")},
        data={"method": ["index:embeddings", "index:unknown"], "k": "5"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400 and "index:unknown" in response.json()["error"]
    response = client.post(
        f"/collections/{store.collection}/query",
        files={"file": ("trouser.png", png_of(pixels), "image/png")},
        data={"method": ["index:embeddings", f"hash-exact:{store.model}"], "k": "5"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    by_embeddings, by_hash = response.json()["answers"]
    # the index over the model's embeddings ranks by the same cosine as the hash's exact mode
    assert [r["score"] for r in by_embeddings["results"]] == pytest.approx([r["score"] for r in by_hash["results"]])


@pytest.mark.parametrize(
    "raw_path",
    [
        "/collections/../../etc/passwd",
        "/collections/{c}/images/../../../etc/passwd",
        "/collections/{c}/images/..%2F..%2Fstore.sqlite3.png",
        "/reports/report/pictures/../results.json",
        "/reports/report/pictures/../../store.sqlite3",
        "/reports/report/pictures/%2E%2E/results.json",
        "/static/../app.py",
        "/static/..%2Fapp.py",
    ],
)
def test_path_tricks_sent_as_written_reach_no_file(browser: StoreBrowser, store: WebStore, raw_path: str) -> None:
    """The paths exactly as written (an HTTP client would normalise ``..`` away before sending)."""
    import http.client

    from semret.web.background import serve_in_background

    with serve_in_background(create_app(browser)) as site:
        host, port = site.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.putrequest("GET", raw_path.replace("{c}", store.collection), skip_accept_encoding=True)
        connection.putheader("Accept", "application/json")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
    assert response.status == 404, body
    assert json.loads(body)["status"] == 404  # a one-line error, not a file's content:
    assert "SQLite format" not in body and '"methods"' not in body and "import" not in body


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_request_body_over_the_limit_is_refused_as_it_arrives(
    browser: StoreBrowser, store: WebStore, declared: bool
) -> None:
    """A client that sends a little more than the cap and then waits gets its 413 at once: the
    server neither waits for the rest (10 GB declared) nor reads past the cap (chunked)."""
    import socket

    from semret.web.app import MAX_REQUEST_BYTES
    from semret.web.background import serve_in_background

    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n\x89PNG"
    ).encode()
    framing = "Content-Length: 10000000000" if declared else "Transfer-Encoding: chunked"
    with serve_in_background(create_app(browser)) as site:
        host, port = site.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as connection:
            connection.sendall(
                (
                    f"POST /collections/{store.collection}/query HTTP/1.1\r\nHost: {host}\r\n"
                    f"Accept: application/json\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"{framing}\r\n\r\n"
                ).encode()
            )
            piece = 65536
            for i in range(MAX_REQUEST_BYTES // piece + 2):  # just over the cap, then nothing more
                data = head if i == 0 else bytes(piece)
                connection.sendall(data if declared else f"{len(data):x}\r\n".encode() + data + b"\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                more = connection.recv(65536)
                if not more:
                    break
                answer += more
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:500]
    error = json.loads(rest.partition(b"\r\n\r\n")[2].decode())["error"]
    assert error == (
        f"the request is over the limit of {MAX_REQUEST_BYTES:,} bytes: "
        "an uploaded image may be at most 5,242,880 bytes (5 MiB)"
    )


@pytest.mark.parametrize("command", ["hash", "iwan"])
def test_semret_query_show_draws_the_query_and_its_results(
    tmp_path: Path, store: WebStore, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semret.app.sheets as sheets
    from semret.app.demo import sample_dir
    from semret.vision.idx import read_idx

    drawn: list[Any] = []
    draw = sheets.write_contact_sheet

    def record(path: Path, rows: Any, title: str = "") -> Path:
        drawn.append(rows)
        return draw(path, rows, title)

    monkeypatch.setattr(sheets, "write_contact_sheet", record)
    which = ["--collection", store.collection, *(["--model", store.model] if command == "hash" else [])]
    out = tmp_path / "sheet.png"
    shown = ok("--db", store.url, "query", command, *which, "--image-id", "60007", "-k", "4", "--json", "--show", out)
    results = json.loads(shown.stdout)["results"]
    ((row,),) = drawn
    test_images = read_idx(sample_dir() / "t10k-images-idx3-ubyte.gz")
    assert np.array_equal(row.query.pixels, test_images[7])
    assert [tile.label for tile in row.results] == [r["label"] for r in results] and len(results) == 4
    for tile, result in zip(row.results, results, strict=True):
        assert np.array_equal(tile.pixels, test_images[result["image_id"] - 60000])
        assert str(result["image_id"]) in " ".join(tile.caption)
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > picture.height > 100
    refused = semret("--db", store.url, "query", command, *which, "--image-id", "60007", "--show", tmp_path / "x.jpg")
    assert refused.exit_code != 0 and "give a file ending in .png" in refused.output


def test_a_report_shows_only_pictures_inside_its_folder(tmp_path: Path, store: WebStore) -> None:
    from semret.app.report_models import read_report

    outside = tmp_path / "secret.png"
    outside.write_bytes(png_of(np.zeros((4, 4), dtype=np.uint8)))
    report = tmp_path / "report"
    report.mkdir()
    (report / "results.json").write_text((store.report / "results.json").read_text())
    (report / "plot.png").write_bytes(outside.read_bytes())
    (report / "link.png").symlink_to(outside)
    (report / "sheets").mkdir()
    (report / "sheets" / "up.png").symlink_to(report / "plot.png")  # a link that stays inside is a picture
    assert sorted(read_report(report).pictures) == ["plot.png", "sheets/up.png"]
