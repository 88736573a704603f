"""A long-running search service for agents and scripts: the model and index load once, queries take milliseconds.

:class:`SearchService` answers searches on an index built by ``metaembed-rag index`` with bounded concurrency.
:func:`make_http_server` serves it as JSON over HTTP (standard library only); :func:`run_mcp` as an MCP server
over stdio and :func:`run_mcp_http` over MCP's streamable HTTP (the official ``mcp`` SDK,
``pip install 'metaembed-rag[serve]'``). ``metaembed-rag serve`` runs any of them.

HTTP API (JSON in, JSON out; errors are ``{"error": {"type": ..., "message": ...}}`` with a 4xx/5xx status)::

    GET  /health      {"status": "ok", "pages": N}
    GET  /info        what the index holds (pages, files, model)
    POST /search      {"query": "...", "k": 5, "budget": [8, 16], "filter": {...}, "cascade": [[1, 1], 100]}
    POST /add         {"paths": ["docs/a.pdf"]} or {"texts": ["..."], "ids": [...], "metadatas": [{...}]}
    POST /delete      {"ids": ["..."], "sources": ["a.pdf"]}

``/add`` and ``/delete`` (and the MCP tools ``add`` and ``delete``) exist only with ``allow_writes``
(``metaembed-rag serve --allow-writes``); otherwise they answer 403 ``WritesDisabledError``. Writes follow
:mod:`metaembed_rag.serving_writes` (locked, saved, merged with concurrent CLI runs; paths under allowed roots).

With a token (``--token`` or ``$METAEMBED_RAG_TOKEN``) every request needs ``Authorization: Bearer TOKEN``.

Example:
    >>> service = SearchService.open(".metaembed/default")                  # doctest: +SKIP
    >>> server = make_http_server(service, port=8765)                        # doctest: +SKIP
    >>> server.serve_forever()                                               # doctest: +SKIP
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .budget import Budget
from .errors import (
    DocumentNotFoundError,
    IndexLockedError,
    InputNotFoundError,
    InvalidInputError,
    MetaEmbedError,
)
from .lazy_searcher import LazySearcher
from .serving_writes import CollectionWriter, WritesDisabledError

logger = logging.getLogger(__name__)

TOKEN_ENV = "METAEMBED_RAG_TOKEN"
MAX_BODY_BYTES = 1 << 20
MAX_K = 100
DRAIN_BYTES = 8 * MAX_BODY_BYTES
"""A refused body up to this size is read and dropped before the 413 (a larger one: the connection is closed)."""
_POST_FIELDS = {
    "/search": {"query", "k", "budget", "filter", "cascade"},
    "/add": {"paths", "texts", "ids", "metadatas"},
    "/delete": {"ids", "sources"},
}


class BusyError(MetaEmbedError, RuntimeError):
    """Every search slot stayed busy for longer than the wait allowed."""


class SearchService:
    """Searches on one index with one model, at most ``max_concurrency`` at a time (others wait ``wait_s``).

    With ``path`` (the collection folder, as :meth:`open` gives), a save made by another process (a CLI
    ``index`` or ``delete`` run) is noticed at the next request (one ``stat`` of ``collection.json``) and the
    saved state is loaded; until it loads, and if it cannot be, the previous state keeps answering.
    """

    def __init__(
        self,
        engine: LazySearcher,
        *,
        max_concurrency: int = 2,
        wait_s: float = 30.0,
        writer: CollectionWriter | None = None,
        path: str | os.PathLike | None = None,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InvalidInputError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        self._engine = engine
        self.wait_s = wait_s
        self.writer = writer
        """Set when writes are allowed (``None``: add/delete answer :class:`WritesDisabledError`)."""
        self.path = Path(path) if path is not None else None
        self._stamp = self._disk_stamp()
        self._reload_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)

    @property
    def engine(self) -> LazySearcher:
        """The engine over the latest saved state of the collection (reloaded when another process saved)."""
        if self.path is not None and self._disk_stamp() != self._stamp:
            with self._reload_lock:
                stamp = self._disk_stamp()
                if stamp != self._stamp:
                    self._reload(stamp)
        return self._engine

    def _disk_stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        from .collection import COLLECTION_FILE

        try:
            info = os.stat(self.path / COLLECTION_FILE)
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        from .collection import DocumentCollection

        self._stamp = stamp
        try:
            searcher = DocumentCollection.open(self.path, model=self._engine.model).searcher
        except (MetaEmbedError, OSError) as exc:  # mid-replacement, or damaged: keep answering from the last state
            logger.warning("%s changed on disk but cannot be loaded (%s); serving the previous state", self.path, exc)
            return
        self._engine = LazySearcher(index=searcher)
        logger.info("%s was saved by another process; now serving %d pages", self.path, len(searcher.index))

    def _swap(self, searcher: Any) -> None:
        """Serve the state this service's own write saved (its stamp, taken under the write lock, is current)."""
        self._engine = LazySearcher(index=searcher)
        self._stamp = self.writer.last_stamp if self.writer is not None else self._disk_stamp()

    @classmethod
    def open(
        cls,
        index: str | os.PathLike | None = None,
        *,
        model: Any = None,
        allow_writes: bool = False,
        write_roots: Any = None,
        **options: Any,
    ) -> SearchService:
        """The service over an index built by ``metaembed-rag index`` (see ``LazySearcher.for_collection``),
        with its model loaded now, once. ``allow_writes`` enables add/delete (files under ``write_roots``,
        default the working folder)."""
        from .collection import resolve_collection_path

        path = resolve_collection_path(index)
        service = cls(LazySearcher.for_collection(index, model=model), path=path, **options)
        service.engine.searcher  # noqa: B018 - load the model and the index before serving
        if allow_writes:
            service.writer = CollectionWriter(path, service.engine.model, roots=write_roots)
        return service

    @property
    def allow_writes(self) -> bool:
        return self.writer is not None

    def _writer(self) -> CollectionWriter:
        if self.writer is None:
            raise WritesDisabledError(
                "this server is read-only; start it with `metaembed-rag serve --allow-writes` to add or delete"
            )
        return self.writer

    def add(self, *, paths: Any = None, texts: Any = None, ids: Any = None, metadatas: Any = None) -> dict[str, Any]:
        """Index files (``paths``, on the server) or plain ``texts``; returns what was done, saved to disk."""
        writer = self._writer()
        if (paths is None) == (texts is None):
            raise InvalidInputError("give either paths (files on the server) or texts")
        if paths is not None:
            if ids is not None or metadatas is not None:
                raise InvalidInputError("ids and metadatas go with texts; file pages get their ids from the file")
            report, searcher = writer.add_paths(paths)
        else:
            report, searcher = writer.add_texts(texts, ids=ids, metadatas=metadatas)
        self._swap(searcher)  # searches from now on see the saved state
        return report

    def delete(self, *, ids: Any = None, sources: Any = None) -> dict[str, Any]:
        """Remove pages/texts by id and files by source (all or nothing); saved to disk."""
        report, searcher = self._writer().delete(ids=ids, sources=sources)
        self._swap(searcher)
        return report

    def describe(self) -> str:
        """One sentence on what the index holds, for a tool description."""
        index = self.engine.index
        sources = sorted({os.path.basename(str(s)) for s in _sources(index) if s})
        shown = ", ".join(sources[:8]) + (f" and {len(sources) - 8} more" if len(sources) > 8 else "")
        model = self.engine.model.identity.get("name", "a MetaEmbed model")
        return (
            f"Search {self.page_count()} pages from {len(sources)} file(s) ({shown}) indexed with {model}. "
            "Returns the best pages (file, page, score, text) for a question or keywords."
        )

    def page_count(self) -> int:
        """Pages and texts the index holds (a page stored as several windows counts once)."""
        from .windows import stored_page_ids

        return len(stored_page_ids(self.engine.index))

    def info(self) -> dict[str, Any]:
        index = self.engine.index
        return {
            "pages": self.page_count(),
            "windows": len(index),
            "files": sorted({str(s) for s in _sources(index) if s}),
            "model": self.engine.model.identity.get("name"),
            "stored_vectors": index.stored_vectors,
            "writes": self.allow_writes,
            "description": self.describe(),
        }

    def search(
        self, query: Any, *, k: Any = 5, budget: Any = (8, 16), filter: Any = None, cascade: Any = None
    ) -> list[dict[str, Any]]:
        """The ``k`` best pages as JSON-ready dicts (id, score, source, page, text, metadata)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        parsed = Budget.parse(budget if not isinstance(budget, list) else tuple(budget))
        if cascade is not None:
            if not isinstance(cascade, (list, tuple)) or len(cascade) != 2:
                raise InvalidInputError(f"cascade must be [[r_q, r_c], n_candidates], got {cascade!r}")
            cascade = (Budget.parse(tuple(cascade[0]) if isinstance(cascade[0], list) else cascade[0]), cascade[1])
        engine = self.engine  # a write may swap it meanwhile: this search runs on one state
        if not self._slots.acquire(timeout=self.wait_s):
            raise BusyError(f"all search slots stayed busy for {self.wait_s:.0f} s; try again later")
        try:
            pages = engine.retrieve(query, budget=parsed, k=k, filter=filter, cascade=cascade)
        finally:
            self._slots.release()
        return [
            {
                "id": p.id,
                "score": p.score,
                "source": p.source,
                "page": p.page,
                "text": p.text,
                "metadata": p.as_metadata(image=None),
            }
            for p in pages
        ]


def _sources(index: Any) -> list[Any]:
    try:
        ids = index.find_ids(None)
        return [doc.metadata.get("source") for doc in index.get(ids)] if len(ids) <= 10_000 else []
    except NotImplementedError:
        return []


# ------------------------------------------------------------------------------------------------------ HTTP
def make_http_server(
    service: SearchService, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
) -> ThreadingHTTPServer:
    """An HTTP server for ``service`` (call ``serve_forever()``); ``port=0`` picks a free port."""
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        logger.warning("serving on %s without a token: anyone who can reach this address can search the index", host)

    class Handler(_Handler):
        pass

    Handler.service = service
    Handler.token = token
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


class _Handler(BaseHTTPRequestHandler):
    service: SearchService
    token: str | None = None
    server_version = "metaembed-rag"

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/health":
            self._send(200, {"status": "ok", "pages": len(self.service.engine.index)})
        elif self.path == "/info":
            self._send(200, self.service.info())
        else:
            self._error(404, "NotFound", f"no such endpoint {self.path!r}; use /health, /info or POST /search")

    def do_POST(self) -> None:
        if not self._authorised():
            return
        fields = _POST_FIELDS.get(self.path)
        if fields is None:
            self._error(404, "NotFound", f"no such endpoint {self.path!r}; POST /search, /add or /delete")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            remaining = length if length <= DRAIN_BYTES else 0  # read what the client sends: it gets the answer
            while remaining > 0:
                chunk = self.rfile.read(min(1 << 16, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
            self._error(413, "PayloadTooLarge", f"the body must be JSON of at most {MAX_BODY_BYTES} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(400, "InvalidJSON", f"the body is not valid JSON: {exc}")
            return
        if not isinstance(body, dict):
            self._error(400, "InvalidInputError", 'the body must be a JSON object such as {"query": "..."}')
            return
        unknown = set(body) - fields
        if unknown:
            self._error(400, "InvalidInputError", f"unknown field(s) {sorted(unknown)}; allowed: {sorted(fields)}")
            return
        start = time.perf_counter()
        try:
            if self.path == "/search":
                answer: dict[str, Any] = {
                    "results": self.service.search(
                        body.get("query"),
                        k=body.get("k", 5),
                        budget=body.get("budget", [8, 16]),
                        filter=body.get("filter"),
                        cascade=body.get("cascade"),
                    )
                }
            elif self.path == "/add":
                answer = self.service.add(**body)
            else:
                answer = self.service.delete(**body)
        except WritesDisabledError as exc:
            self._error(403, type(exc).__name__, str(exc))
            return
        except (BusyError, IndexLockedError) as exc:
            self._error(503, type(exc).__name__, str(exc))
            return
        except (DocumentNotFoundError, InputNotFoundError) as exc:
            self._error(404, type(exc).__name__, str(exc).strip("'\""))
            return
        except MetaEmbedError as exc:
            self._error(400, type(exc).__name__, str(exc))
            return
        except Exception:  # a bug: log it, tell the client without leaking internals
            logger.exception("%s failed", self.path)
            self._error(500, "InternalError", "the request failed; see the server log")
            return
        self._send(200, {**answer, "ms": round((time.perf_counter() - start) * 1000, 2)})

    def _authorised(self) -> bool:
        if not self.token:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        self._error(401, "Unauthorized", "missing or wrong token (send Authorization: Bearer TOKEN)")
        return False

    def _error(self, status: int, kind: str, message: str) -> None:
        self._send(status, {"error": {"type": kind, "message": message}})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# ------------------------------------------------------------------------------------------------------- MCP
def build_mcp_server(service: SearchService) -> Any:
    """An MCP server (official ``mcp`` SDK) with one tool, ``search``, described by what the index holds."""
    from .errors import require

    require("mcp", "serve", "the MCP server")
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name="metaembed-rag", instructions=service.describe())

    @server.tool(name="search", description=service.describe())
    def search(query: str, k: int = 5, budget: list[int] | None = None, filter: dict | None = None) -> dict:
        """Search the index; ``budget`` is [r_q, r_c] (default [8, 16]); ``filter`` a metadata filter dict."""
        try:
            return {"results": service.search(query, k=k, budget=budget or [8, 16], filter=filter)}
        except MetaEmbedError as exc:  # bad input: the client gets the reason (crashes stay generic)
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc

    if service.allow_writes:

        @server.tool(
            name="add",
            description="Add documents to the index: PDF/image files or folders on the server (paths), or plain "
            "texts (with optional ids and metadatas). Saved to disk; searches see them at once.",
        )
        def add(
            paths: list[str] | None = None,
            texts: list[str] | None = None,
            ids: list[str] | None = None,
            metadatas: list[dict] | None = None,
        ) -> dict:
            """Index files (``paths``) or ``texts``; returns what was indexed."""
            try:
                return service.add(paths=paths, texts=texts, ids=ids, metadatas=metadatas)
            except MetaEmbedError as exc:
                raise ToolError(f"{type(exc).__name__}: {exc}") from exc

        @server.tool(
            name="delete",
            description="Delete from the index: pages or texts by id, and whole files by source (path or file "
            "name). All or nothing: an unknown id or file deletes nothing.",
        )
        def delete(ids: list[str] | None = None, sources: list[str] | None = None) -> dict:
            """Remove ``ids`` and every page of ``sources``; returns what was removed."""
            try:
                return service.delete(ids=ids, sources=sources)
            except MetaEmbedError as exc:
                raise ToolError(f"{type(exc).__name__}: {exc}") from exc

    return server


def run_mcp(service: SearchService) -> None:
    """Serve ``service`` as an MCP server over stdio until the client disconnects."""
    build_mcp_server(service).run("stdio")


def mcp_http_app(service: SearchService, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The MCP server as an ASGI app at ``/mcp`` (streamable HTTP), behind a bearer token when one is given."""
    app = _BodyLimit(build_mcp_server(service).streamable_http_app(host=host), MAX_BODY_BYTES)
    return app if not token else _BearerGuard(app, token)


def run_mcp_http(
    service: SearchService, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
) -> None:
    """Serve ``service`` as an MCP server over streamable HTTP (``http://HOST:PORT/mcp``) until interrupted."""
    import uvicorn

    uvicorn.run(mcp_http_app(service, host=host, token=token), host=host, port=port, log_level="warning")


class _BearerGuard:
    """ASGI middleware: HTTP requests without ``Authorization: Bearer TOKEN`` get a JSON 401."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await _json_error(send, 401, "Unauthorized", "missing or wrong token")
                return
        await self.app(scope, receive, send)


async def _json_error(send: Any, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a JSON 413 (declared length) or is cut off with
    an error (a streamed body), never passed on truncated."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _json_error(send, 413, "PayloadTooLarge", f"the body must be at most {self.limit} bytes")
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise InvalidInputError(f"the request body is over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)
