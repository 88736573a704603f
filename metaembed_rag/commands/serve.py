"""``metaembed-rag serve``: keep the model and index loaded and answer searches over HTTP or MCP (stdio)."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import add_index_option, add_model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve searches over HTTP (JSON) or as an MCP server, with the model loaded once",
        description="Load the index and its model once, then answer searches: JSON over HTTP (POST /search, "
        "GET /health, GET /info) on localhost by default, or as an MCP server over stdio (--mcp) or streamable HTTP "
        "(--mcp-http).",
    )
    add_index_option(parser)
    add_model_options(parser, for_search=True)
    parser.add_argument("--mcp", action="store_true", help="serve as an MCP server over stdio instead of HTTP")
    parser.add_argument(
        "--mcp-http", action="store_true", help="serve as an MCP server over streamable HTTP at http://HOST:PORT/mcp"
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--token", default=None, help="require 'Authorization: Bearer TOKEN' (default: $METAEMBED_RAG_TOKEN)"
    )
    parser.add_argument("--max-concurrency", type=int, default=2, help="searches run at once (default 2)")
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="also serve add and delete (HTTP POST /add, /delete; MCP tools add, delete); off by default",
    )
    parser.add_argument(
        "--write-root",
        action="append",
        metavar="DIR",
        default=None,
        help="with --allow-writes: a folder whose files may be added (repeatable; default: the working folder)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..collection import DocumentCollection, resolve_collection_path
    from ..errors import IndexNotFoundError, InvalidInputError
    from ..modeling.loading import load_model
    from ..serving import TOKEN_ENV, SearchService, make_http_server, run_mcp, run_mcp_http

    if args.write_root and not args.allow_writes:
        raise InvalidInputError("--write-root only applies with --allow-writes")
    reference = args.model
    if reference is None and (args.device or args.dtype):  # the index's own model, on the device asked for
        path = resolve_collection_path(args.index)
        if not DocumentCollection.exists(path):
            raise IndexNotFoundError(f"no index built by `metaembed-rag index` at {path}")
        reference = DocumentCollection.read_config(path)["model"]["reference"]
    model = load_model(reference, device=args.device, dtype=args.dtype) if reference else None
    service = SearchService.open(
        args.index,
        model=model,
        max_concurrency=args.max_concurrency,
        allow_writes=args.allow_writes,
        write_roots=args.write_root,
    )
    if args.mcp:
        run_mcp(service)
        return 0
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.mcp_http:
        sys.stdout.write(f"serving MCP on http://{args.host}:{args.port}/mcp (Ctrl-C to stop)\n")
        sys.stdout.flush()
        run_mcp_http(service, host=args.host, port=args.port, token=token)
        return 0
    server = make_http_server(service, host=args.host, port=args.port, token=token)
    host, port = server.server_address[:2]
    sys.stdout.write(f"serving {len(service.engine.index)} pages on http://{host}:{port} (Ctrl-C to stop)\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
