"""``metaembed-rag serve``: the HTTP API in-process, and the MCP server driven by the official MCP client over
stdio (a real subprocess), on an index built as ``metaembed-rag index`` builds it."""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fixtures.documents import TEXTS, build_cli_index, make_pdf

from metaembed_rag.serving import SearchService, make_http_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli_index(minilm_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    pdf = make_pdf(folder / "notes.pdf", TEXTS)
    return build_cli_index(folder, minilm_model, [pdf])


@pytest.fixture(scope="module")
def http(cli_index):
    service = SearchService.open(cli_index, max_concurrency=2)
    server = make_http_server(service, port=0, token="s3cret")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", service
    server.shutdown()
    server.server_close()


def _call(url, path, body=None, token="s3cret", raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_search_and_json_errors(http):
    url, _ = http
    assert _call(url, "/health") == (200, {"status": "ok", "pages": 4})
    status, info = _call(url, "/info")
    assert status == 200 and info["pages"] == 4 and "notes.pdf" in info["description"]
    status, body = _call(url, "/search", {"query": TEXTS[2], "k": 2, "budget": [16, 64]})
    assert status == 200 and len(body["results"]) == 2
    top = body["results"][0]
    assert top["page"] == 3 and top["text"].startswith("The Treaty") and top["metadata"]["budget"] == [16, 64]
    status, body = _call(url, "/search", {"query": TEXTS[0], "k": 4, "filter": {"page": {"$gte": 3}}})
    assert status == 200 and sorted(r["page"] for r in body["results"]) == [3, 4]
    assert _call(url, "/search", {"query": "x"}, token=None)[0] == 401
    assert _call(url, "/search", {"query": "x"}, token="wrong")[0] == 401
    cases = [
        ({"query": "x", "budget": [16, 128]}, "BudgetError"),
        ({"query": ""}, "InvalidInputError"),
        ({"query": "x", "k": 0}, "InvalidInputError"),
        ({"query": "x", "filter": {"page": {"$like": 1}}}, "FilterError"),
        ({"query": "x", "bogus": 1}, "InvalidInputError"),
        ([1, 2], "InvalidInputError"),
    ]
    for body, kind in cases:
        status, answer = _call(url, "/search", body)
        assert status == 400 and answer["error"]["type"] == kind, (body, answer)
    status, answer = _call(url, "/search", raw=b"{not json")
    assert status == 400 and answer["error"]["type"] == "InvalidJSON"
    assert _call(url, "/nope")[0] == 404


def test_concurrency_is_bounded(cli_index):
    from metaembed_rag.serving import BusyError

    service = SearchService.open(cli_index, max_concurrency=1, wait_s=0.05)
    service._slots.acquire()  # one search in flight
    try:
        with pytest.raises(BusyError):
            service.search(TEXTS[0])
    finally:
        service._slots.release()
    assert service.search(TEXTS[0], k=1)[0]["page"] == 1


def test_mcp_server_over_stdio_with_the_official_client(cli_index):
    pytest.importorskip("mcp")
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "metaembed_rag.cli", "serve", "--mcp", "--index", str(cli_index)], env=env
    )

    async def session():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = (await client.list_tools()).tools
            found = await client.call_tool("search", {"query": TEXTS[1], "k": 2, "budget": [16, 64]})
            bad = await client.call_tool("search", {"query": TEXTS[1], "budget": [16, 128]})
            return tools, found, bad

    tools, found, bad = anyio.run(session)
    assert [t.name for t in tools] == ["search"] and "4 pages" in tools[0].description
    assert "notes.pdf" in tools[0].description
    assert not found.is_error
    results = json.loads(found.content[0].text)["results"]
    assert results[0]["page"] == 2 and "sponge cake" in results[0]["text"]
    assert bad.is_error and "r_c=128" in bad.content[0].text


def test_mcp_server_over_streamable_http_with_the_official_client(cli_index):
    pytest.importorskip("mcp")
    import anyio
    from fixtures.servers import serve_mcp_http
    from mcp import ClientSession
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    with serve_mcp_http("--index", str(cli_index), "--token", "s3cret") as url:
        request = urllib.request.Request(url, data=b"{}", headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401  # no token

        async def session():
            http = create_mcp_http_client(headers={"Authorization": "Bearer s3cret"})
            async with http, streamable_http_client(url, http_client=http) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as client:
                    await client.initialize()
                    tools = (await client.list_tools()).tools
                    found = await client.call_tool("search", {"query": TEXTS[1], "k": 2, "budget": [16, 64]})
                    return tools, found

        tools, found = anyio.run(session)
    assert [t.name for t in tools] == ["search"]
    assert not found.is_error
    assert json.loads(found.content[0].text)["results"][0]["page"] == 2


def test_info_and_tool_description_count_pages_not_windows(tiny_text_checkpoint):
    from metaembed_rag.lazy_searcher import LazySearcher

    engine = LazySearcher(model=tiny_text_checkpoint)
    long_page = " ".join(f"word{i}" for i in range(600))  # several windows of the tiny model
    engine.add_texts([long_page, "a short page"], metadatas=[{"source": "long.txt"}, {"source": "short.txt"}])
    service = SearchService(engine)
    info = service.info()
    assert info["pages"] == 2 and info["windows"] > 2
    assert service.describe().startswith("Search 2 pages from 2 file(s)")
