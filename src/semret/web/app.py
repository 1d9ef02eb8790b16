"""`semret serve`: a FastAPI app over a `StoreBrowser` (`semret.app.browse`). Pages are rendered
on the server (Jinja2), with one small script (``static/app.js``); every page answers JSON for
programs at the same route (``?format=json``, or ``Accept: application/json``).

Routes::

    GET  /                                          collections
    GET  /collections/{name}?page=&per_page=        a collection and a page of its images
    GET  /collections/{name}/images/{id}.png?size=  a thumbnail, from the image's stored source
    GET  /collections/{name}/query?image_id=|words=&method=...&k=   results, methods side by side
    POST /collections/{name}/query                  the same for an uploaded image (multipart: file)
    GET  /reports, /reports/{name}                  evaluation reports (tables, plots, sheets)
    GET  /reports/{name}/pictures/{file}            one of a report's pictures

Bad input gets a 4xx with a one-line message (an HTML page or ``{"error": ...}``), never a
traceback: an unknown collection, image, method, report or page 404; a bad k, page, id or word
400; an upload or request body that is too large 413 (`semret.web.body_limit`), not an image 415.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from semret import __version__
from semret.app.browse import MAX_K, MethodAnswer, StoreBrowser
from semret.app.browse import Query as BrowseQuery
from semret.app.uploads import MAX_UPLOAD_BYTES, UploadError, decode_upload
from semret.errors import DatabaseUnavailableError, NotFoundError, SemretError
from semret.sql.engine import describe_url
from semret.web.body_limit import BodyLimit
from semret.web.report_view import report_view
from semret.web.thumbnails import DEFAULT_SIDE, Thumbnails, data_url

log = logging.getLogger("semret.web")

#: The largest request body taken: an upload at its limit and room for the form's other fields.
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024

REASONS = {400: "bad request", 404: "not found", 405: "method not allowed", 413: "too large", 415: "not an image",
           422: "bad request", 500: "server error", 503: "database unavailable"}  # fmt: skip


def wants_json(request: Request) -> bool:
    """JSON for ``?format=json`` or an Accept header that asks for JSON rather than HTML."""
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def create_app(browser: StoreBrowser) -> FastAPI:
    """The web app over ``browser``'s store (opened read-only by `semret serve`)."""
    app = FastAPI(
        title="semret",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_REQUEST_BYTES)  # no huge upload is spooled to disk first
    package = resources.files("semret.web")
    templates = Jinja2Templates(directory=str(package / "templates"))
    app.mount("/static", StaticFiles(directory=str(package / "static")), name="static")
    thumbnails = Thumbnails(browser.pixels)
    app.state.browser, app.state.thumbnails = browser, thumbnails
    store = describe_url(browser.engine.url)

    def page(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, template, {"store": store, "version": __version__, **context}, status_code=http_status
        )

    def error(request: Request, status: int, message: str) -> Response:
        message = _one_line(message)
        if wants_json(request):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        return page(request, "error.html", status, status=status, reason=REASONS.get(status, "error"), message=message)

    @app.exception_handler(SemretError)
    async def semret_error(request: Request, exc: SemretError) -> Response:
        status = 400
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, UploadError):
            status = exc.status
        elif isinstance(exc, DatabaseUnavailableError):
            status = 503
        return error(request, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("query", "path", "body"))
            problems.append(f"{where}: {problem.get('msg', 'invalid')}" if where else problem.get("msg", "invalid"))
        return error(request, 400, "; ".join(problems) or "bad request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else REASONS.get(exc.status_code, "error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no page at {request.url.path}"
        if exc.status_code == 413:  # the body limit, before any upload is looked at
            detail = (
                f"the request is over the limit of {MAX_REQUEST_BYTES:,} bytes: "
                f"an uploaded image may be at most {MAX_UPLOAD_BYTES:,} bytes (5 MiB)"
            )
        return error(request, exc.status_code, detail)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        return error(
            request, 500, f"semret failed on this request ({type(exc).__name__}; the server's log has the details)"
        )

    @app.get("/", name="collections_page")
    def collections_page(request: Request) -> Response:
        collections = browser.collections()
        if wants_json(request):
            return JSONResponse({"collections": collections})
        return page(request, "collections.html", collections=collections)

    @app.get("/collections/{name}", name="collection_page")
    def collection_page(
        request: Request,
        name: str,
        page_number: Annotated[int, Query(alias="page")] = 1,
        per_page: Annotated[int, Query()] = 48,
    ) -> Response:
        collection = browser.collection(name)
        images = browser.images(name, page_number, per_page)
        if wants_json(request):
            return JSONResponse({"collection": collection, **images})
        return page(request, "collection.html", c=collection, page=images)

    @app.get("/collections/{name}/images/{image_id}.png", name="thumbnail")
    def thumbnail(name: str, image_id: int, size: Annotated[int, Query()] = DEFAULT_SIDE) -> Response:
        browser.summary(name)
        picture = thumbnails.get(name, image_id, size)
        return Response(picture, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})

    def results_response(
        request: Request,
        name: str,
        answers: list[MethodAnswer],
        query_json: dict[str, Any],
        k: int,
        context: dict[str, Any],
    ) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"collection": name, "query": query_json, "k": k, "answers": [a.as_dict() for a in answers]}
            )
        return page(
            request,
            "query.html",
            c=browser.collection(name),
            answers=[a.as_dict() for a in answers],
            k=k,
            max_k=MAX_K,
            **context,
        )

    @app.get("/collections/{name}/query", name="query_page")
    def query_page(
        request: Request,
        name: str,
        image_id: Annotated[int | None, Query()] = None,
        words: Annotated[str | None, Query()] = None,
        method: Annotated[list[str] | None, Query()] = None,
        k: Annotated[int, Query()] = 10,
    ) -> Response:
        collection = browser.collection(name)
        words = words if words and words.strip() else None
        chosen = method or [m["key"] for m in collection["methods"] if (m["takes_words"] if words else True)][:1]
        source = "words" if words is not None else "image"
        context: dict[str, Any] = {"chosen": chosen, "image_id": image_id, "words": words, "source": source}
        if image_id is None and words is None:
            if wants_json(request):
                return error(request, 400, "give a query: image_id=ID or words=..., and method=KEY")
            return page(request, "query.html", c=collection, answers=None, k=k, max_k=MAX_K, **context)
        query = BrowseQuery(image_id=image_id, words=words) if image_id is not None else BrowseQuery(words=words)
        answers = browser.query(name, chosen, query, k)
        if image_id is not None:
            query_json: dict[str, Any] = {"image_id": image_id, "label": browser.pixels.label(name, image_id)}
            shown = request.url_for("thumbnail", name=name, image_id=image_id)
            context |= {"query_image": str(shown), "query_text": f"image {image_id} ({query_json['label'] or ''})"}
        else:
            query_json = {"words": words}
            context |= {"query_image": None, "query_text": f"words: {words}"}
        return results_response(request, name, answers, query_json, k, context)

    @app.post("/collections/{name}/query", name="upload_query")
    def upload_query(
        request: Request,
        name: str,
        file: Annotated[UploadFile | None, File()] = None,
        method: Annotated[list[str] | None, Form()] = None,
        k: Annotated[int, Form()] = 10,
    ) -> Response:
        collection = browser.collection(name)
        if file is None:
            raise SemretError("choose an image file to upload")
        data = file.file.read(MAX_UPLOAD_BYTES + 1)  # the limit's excess is enough to refuse it
        stored = browser.pixels.collection(name)
        if not len(stored.image_ids):
            raise SemretError(f"collection {name!r} has no images to compare an upload with")
        like = browser.pixels.read(name, [int(stored.image_ids[0])])[0]
        upload = decode_upload(data, file.filename or "the upload", like, size=file.size)
        chosen = method or [m["key"] for m in collection["methods"] if m["takes_uploads"]][:1]
        answers = browser.query(name, chosen, BrowseQuery(upload=upload), k)
        context = {
            "chosen": chosen,
            "image_id": None,
            "words": None,
            "source": "upload",
            "query_image": data_url(upload.pixels, 128),
            "query_text": f"uploaded {upload.name}",
        }
        return results_response(request, name, answers, {"upload": upload.name}, k, context)

    @app.get("/reports", name="reports_page")
    def reports_page(request: Request) -> Response:
        reports = []
        for report in browser.reports.values():
            summary = report.document.get("summary", {})
            reports.append(
                {
                    "name": report.name,
                    "dataset": summary.get("dataset"),
                    "collection": report.collection,
                    "methods": list(report.methods),
                    "created": report.document.get("created"),
                }
            )
        if wants_json(request):
            return JSONResponse({"reports": reports})
        return page(request, "reports.html", reports=reports)

    @app.get("/reports/{name}", name="report_page")
    def report_page(request: Request, name: str) -> Response:
        view = report_view(browser.report(name))
        if wants_json(request):
            return JSONResponse(view)
        return page(request, "report.html", r=view)

    @app.get("/reports/{name}/pictures/{picture:path}", name="report_picture")
    def report_picture(name: str, picture: str) -> Response:
        report = browser.report(name)
        file = report.pictures.get(picture)  # only the pictures found when the report was read
        if file is None:
            raise NotFoundError(f"report {name!r} has no picture {picture!r}")
        return Response(file.read_bytes(), media_type="image/png")

    return app
