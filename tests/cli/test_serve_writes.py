"""``metaembed-rag serve --allow-writes``: add and delete over HTTP and MCP (official client, stdio and streamable
HTTP), saved through the collection's lock so a concurrent indexing run loses nothing; off by default."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fixtures.documents import TEXTS, build_cli_index, make_pdf
from fixtures.servers import child_env

from metaembed_rag.collection import DocumentCollection
from metaembed_rag.errors import (
    DocumentNotFoundError,
    IndexLockedError,
    InputNotFoundError,
    UnsafePathError,
)
from metaembed_rag.serving import MAX_BODY_BYTES, SearchService, make_http_server
from metaembed_rag.serving_writes import WritesDisabledError

ROOT = Path(__file__).resolve().parents[2]
EXTRA = [
    "Glaciers carve U-shaped valleys as they slowly flow downhill.",
    "A violin has four strings tuned in perfect fifths.",
]


@pytest.fixture(scope="module")
def built(minilm_model, tmp_path_factory):
    """An index of one 4-page PDF, plus a second PDF (not indexed) under the same folder."""
    folder = tmp_path_factory.mktemp("serve-writes")
    docs = folder / "docs"
    docs.mkdir()
    pdf = make_pdf(docs / "notes.pdf", TEXTS)
    other = make_pdf(docs / "more.pdf", EXTRA)
    index = build_cli_index(folder, minilm_model, [pdf])
    return folder, index, docs, other


@pytest.fixture
def index_copy(built, tmp_path):
    """A private copy of the built index (writes must not leak into other tests)."""
    _, index, docs, other = built
    target = tmp_path / "idx"
    shutil.copytree(index, target)
    return target, docs, other


def _serve(service, token=None):
    server = make_http_server(service, port=0, token=token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _post(url, path, body=None, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _top_text(url, query):
    status, body = _post(url, "/search", {"query": query, "k": 1, "budget": [16, 64]})
    assert status == 200, body
    return body["results"][0]["text"] if body["results"] else None


def test_writes_are_off_by_default(index_copy):
    index, _, other = index_copy
    service = SearchService.open(index)
    server, url = _serve(service)
    try:
        for path, body in (("/add", {"texts": ["x"]}), ("/delete", {"ids": ["x"]}), ("/add", {"paths": [str(other)]})):
            status, answer = _post(url, path, body)
            assert status == 403 and answer["error"]["type"] == "WritesDisabledError", answer
            assert "--allow-writes" in answer["error"]["message"]
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(WritesDisabledError):
        service.delete(ids=["x"])
    assert len(DocumentCollection.open(index)) == 4  # nothing was written


def test_http_add_texts_and_files_then_delete(index_copy):
    index, docs, other = index_copy
    service = SearchService.open(index, allow_writes=True, write_roots=[docs])
    server, url = _serve(service)
    try:
        status, answer = _post(url, "/add", {"texts": [EXTRA[0]], "ids": ["glacier"], "metadatas": [{"topic": "geo"}]})
        assert status == 200 and answer["ids"] == ["glacier"] and answer["index_pages"] == 4, answer
        assert _top_text(url, EXTRA[0]) == EXTRA[0]  # searchable at once
        status, answer = _post(url, "/add", {"paths": [str(other)]})
        assert status == 200 and answer["pages_indexed"] == 2 and answer["index_pages"] == 6, answer
        assert "violin" in _top_text(url, EXTRA[1])
        on_disk = DocumentCollection.open(index)  # persisted: a fresh reader sees both writes
        assert (on_disk.file_page_count, len(on_disk)) == (6, 7) and "glacier" in on_disk.index

        errors = [
            ("/add", {"paths": [str(docs / "missing.pdf")]}, 404, "InputNotFoundError"),
            ("/add", {"paths": [str(ROOT / "README.md")]}, 400, "UnsafePathError"),
            ("/add", {"paths": [str(other)], "ids": ["a"]}, 400, "InvalidInputError"),
            ("/add", {"texts": [""]}, 400, "InvalidInputError"),
            ("/add", {"texts": ["a"], "bogus": 1}, 400, "InvalidInputError"),
            ("/delete", {"ids": ["glacier", "no-such-id"]}, 404, "DocumentNotFoundError"),
            ("/delete", {"sources": ["nope.pdf"]}, 404, "DocumentNotFoundError"),
            ("/delete", {}, 400, "InvalidInputError"),
        ]
        for path, body, code, kind in errors:
            status, answer = _post(url, path, body)
            assert (status, answer["error"]["type"]) == (code, kind), (path, body, answer)
        assert "glacier" in DocumentCollection.open(index).index  # the failed delete removed nothing

        status, answer = _post(url, "/add", raw=b'{"texts": ["' + b"a" * MAX_BODY_BYTES + b'"]}')
        assert status == 413

        status, answer = _post(url, "/delete", {"ids": ["glacier"], "sources": ["more.pdf"]})
        assert status == 200 and answer["removed_ids"] == 1, answer
        assert list(answer["removed_sources"].values()) == [2] and answer["index_pages"] == 4
        assert _top_text(url, EXTRA[1]) in TEXTS  # the violin page is gone from search
        on_disk = DocumentCollection.open(index)
        assert len(on_disk) == 4 and "glacier" not in on_disk.index and len(on_disk.files) == 1
        page = next(iter(on_disk.files.values())).ids[0]
        status, answer = _post(url, "/delete", {"ids": [page]})  # one page of a file: its entry is kept in step
        assert status == 200 and answer["removed_ids"] == 1
        assert len(DocumentCollection.open(index)) == 3
    finally:
        server.shutdown()
        server.server_close()


def test_a_concurrent_indexing_run_loses_nothing(index_copy, minilm_model):
    """The server writes while another writer (as the CLI's `index`) indexes: both writers' pages survive."""
    from metaembed_rag.pipeline import index_files

    index, docs, other = index_copy
    service = SearchService.open(index, allow_writes=True, write_roots=[docs])
    stale = DocumentCollection.open(index, model=minilm_model)  # opened before the server's write
    errors: list[BaseException] = []

    def cli_run() -> None:
        try:
            index_files(stale, [other], show_progress=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=cli_run)
    thread.start()
    service.add(texts=["Bees dance to tell each other where the flowers are."], ids=["bees"])
    thread.join(timeout=300)
    assert not errors
    final = DocumentCollection.open(index)
    assert "bees" in final.index and (final.file_page_count, len(final)) == (6, 7), sorted(final.files)
    # and the server's next write starts from the saved state, not from the one it opened
    report = service.delete(sources=[str(other)])
    assert report["removed_sources"] == {str(other): 2} and "bees" in DocumentCollection.open(index).index


def test_a_read_only_server_picks_up_a_cli_run(index_copy, minilm_model):
    """A save by another process (here: `index` and `delete` as the CLI runs them) is served at the next request."""
    from metaembed_rag.cli import main

    index, _, other = index_copy
    service = SearchService.open(index)
    server, url = _serve(service)
    try:
        before = service.engine
        assert service.engine is before  # nothing changed on disk: no reload
        assert main(["index", str(other), "--index", str(index), "--no-progress"]) == 0
        assert "violin" in _top_text(url, EXTRA[1])
        status, info = _post(url, "/search", {"query": EXTRA[1], "k": 6})
        assert status == 200 and len(info["results"]) == 6
        assert main(["delete", "--source", str(other), "--index", str(index)]) == 0
        status, info = _post(url, "/search", {"query": EXTRA[1], "k": 6})
        assert len(info["results"]) == 4 and all("violin" not in r["text"] for r in info["results"])
    finally:
        server.shutdown()
        server.server_close()


def test_writes_wait_for_the_lock_then_give_up(index_copy):
    from fixtures.locks import hold_lock_in_child

    index, docs, _ = index_copy
    service = SearchService.open(index, allow_writes=True, write_roots=[docs])
    service.writer.lock_wait_s = 0.3
    holder = hold_lock_in_child(index)
    try:
        with pytest.raises(IndexLockedError):
            service.add(texts=["blocked"])
        assert service.search(TEXTS[0], k=1)[0]["page"] == 1  # searches go on meanwhile
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(InputNotFoundError):
        service.add(paths=[str(docs / "missing.pdf")])
    with pytest.raises(UnsafePathError):
        service.add(paths=[str(index)])  # outside the roots (and the index itself)
    with pytest.raises(DocumentNotFoundError):
        service.delete(sources=["missing.pdf"])
    assert service.add(texts=["unblocked"], ids=["u"])["ids"] == ["u"]


def test_mcp_add_and_delete_over_stdio(index_copy):
    pytest.importorskip("mcp")
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    index, docs, other = index_copy
    argv = ["-m", "metaembed_rag.cli", "serve", "--mcp", "--index", str(index), "--allow-writes"]
    params = StdioServerParameters(command=sys.executable, args=[*argv, "--write-root", str(docs)], env=child_env())

    async def session():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            added = await client.call_tool("add", {"paths": [str(other)]})
            found = await client.call_tool("search", {"query": EXTRA[1], "k": 1, "budget": [16, 64]})
            missing = await client.call_tool("add", {"paths": [str(docs / "missing.pdf")]})
            deleted = await client.call_tool("delete", {"sources": ["more.pdf"]})
            after = await client.call_tool("search", {"query": EXTRA[1], "k": 1, "budget": [16, 64]})
            return tools, added, found, missing, deleted, after

    tools, added, found, missing, deleted, after = anyio.run(session)
    assert tools == ["add", "delete", "search"]
    assert not added.is_error and json.loads(added.content[0].text)["pages_indexed"] == 2
    assert "violin" in json.loads(found.content[0].text)["results"][0]["text"]
    assert missing.is_error and "InputNotFoundError" in missing.content[0].text
    assert not deleted.is_error and json.loads(deleted.content[0].text)["index_pages"] == 4
    assert "violin" not in json.loads(after.content[0].text)["results"][0]["text"]
    assert len(DocumentCollection.open(index)) == 4


def test_mcp_add_and_delete_over_streamable_http(index_copy):
    pytest.importorskip("mcp")
    import anyio
    from fixtures.servers import serve_mcp_http
    from mcp import ClientSession
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    index = index_copy[0]
    with serve_mcp_http("--index", str(index), "--token", "t0k", "--allow-writes") as url:
        big = urllib.request.Request(
            url,
            data=b"x" * (MAX_BODY_BYTES + 1),
            headers={"content-type": "application/json", "Authorization": "Bearer t0k"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(big, timeout=10)
        assert refused.value.code == 413

        async def session():
            http = create_mcp_http_client(headers={"Authorization": "Bearer t0k"})
            async with (
                http,
                streamable_http_client(url, http_client=http) as streams,
                ClientSession(streams[0], streams[1]) as client,
            ):
                await client.initialize()
                added = await client.call_tool("add", {"texts": [EXTRA[0]], "ids": ["g"]})
                found = await client.call_tool("search", {"query": EXTRA[0], "k": 1, "budget": [16, 64]})
                deleted = await client.call_tool("delete", {"ids": ["g"]})
                again = await client.call_tool("delete", {"ids": ["g"]})
                return added, found, deleted, again

        added, found, deleted, again = anyio.run(session)
    assert not added.is_error and json.loads(added.content[0].text)["ids"] == ["g"]
    assert json.loads(found.content[0].text)["results"][0]["id"] == "g"
    assert json.loads(deleted.content[0].text)["removed_ids"] == 1
    assert again.is_error and "DocumentNotFoundError" in again.content[0].text
    assert "g" not in DocumentCollection.open(index).index


def test_serve_honours_device_and_dtype_without_model(index_copy, monkeypatch):
    """`serve --dtype bfloat16` (no --model) loads the index's own model in that dtype; --write-root needs writes."""
    import torch

    import metaembed_rag.serving as serving
    from metaembed_rag.cli import main

    served = []
    monkeypatch.setattr(serving, "run_mcp", served.append)
    index = index_copy[0]
    assert main(["serve", "--mcp", "--index", str(index), "--device", "cpu", "--dtype", "bfloat16"]) == 0
    model = served[0].engine.model
    assert next(model.parameters()).dtype == torch.bfloat16 and not served[0].allow_writes
    assert main(["serve", "--mcp", "--index", str(index)]) == 0
    assert next(served[1].engine.model.parameters()).dtype == torch.float32
    assert main(["serve", "--mcp", "--index", str(index), "--write-root", "."]) == 2


def test_a_link_inside_a_write_root_to_a_file_outside_it_is_refused(index_copy, tmp_path):
    index, docs, other = index_copy
    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(other, outside / "secret.pdf")
    shared = docs / "shared"
    shared.mkdir()
    (shared / "secret.pdf").symlink_to(outside / "secret.pdf")
    writer = SearchService.open(index, allow_writes=True, write_roots=[docs])
    with pytest.raises(UnsafePathError, match="outside the folders"):
        writer.add(paths=[str(shared)])
    assert len(DocumentCollection.open(index)) == 4  # nothing was indexed
