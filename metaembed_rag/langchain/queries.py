"""Queries as LangChain users write them: text, an image (path, bytes, PIL image) or content blocks.

Content blocks are the ones of a multimodal chat message: ``{"type": "text", "text": …}``,
``{"type": "image", "base64": …, "mime_type": …}`` (or ``"path"``), and
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}``. Remote URLs are not fetched.

Example:
    >>> query_text, image = from_content_blocks([{"type": "text", "text": "this chart"}])
    >>> query_text, image
    ('this chart', None)
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError, UnsupportedInputError
from ..inputs import ModelInput
from ..lazy_searcher import LazySearcher


def query_input(engine: LazySearcher, query: Any, image: Any = None, image_arg: str = "image") -> Any:
    """The query as the engine takes it: the text itself, or a ``ModelInput`` holding the image (and any text).

    ``image`` is the per-call image argument (named ``image_arg`` in errors); an image on a text-only model raises
    :class:`~metaembed_rag.errors.UnsupportedInputError` naming the model.
    """
    text: Any = query
    if isinstance(query, (list, tuple, dict)):
        text, found = from_content_blocks(query)
        if found is not None:
            if image is not None:
                raise InvalidInputError(f"pass the query image once: as a content block or as {image_arg}=")
            image = found
    if image is None:
        return text
    picture = engine.image_query(image).image
    words = text if isinstance(text, str) and text.strip() else None
    return ModelInput(text=words, image=picture)


def from_content_blocks(blocks: Any) -> tuple[str | None, Any]:
    """Text and image of a query given as LangChain content blocks (``{"type": "text", "text": …}``,
    ``{"type": "image", "base64": …}`` or ``{"type": "image_url", "image_url": {"url": "data:…"}}``,
    ``{"type": "image", "path": …}``)."""
    if isinstance(blocks, dict):
        blocks = [blocks]
    texts: list[str] = []
    images: list[Any] = []
    for position, block in enumerate(blocks):
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, dict):
            raise UnsupportedInputError(f"query block #{position} is a {type(block).__name__}, not a content block")
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind in ("image", "image_url"):
            images.append(block_image(block, position))
        else:
            raise UnsupportedInputError(f"query block #{position} has type {kind!r}; use text and image blocks")
    if len(images) > 1:
        raise UnsupportedInputError(f"a query holds one image; got {len(images)} image blocks")
    text = " ".join(t for t in texts if t.strip()) or None
    return text, images[0] if images else None


def block_image(block: dict[str, Any], position: int) -> Any:
    import base64

    data = block.get("base64") or block.get("data")
    url = block.get("url")
    if block.get("type") == "image_url":
        inner = block.get("image_url")
        url = inner.get("url") if isinstance(inner, dict) else inner
    if data is None and isinstance(url, str) and url.startswith("data:") and "," in url:
        data = url.split(",", 1)[1]
    if data is not None:
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as exc:
            raise InvalidInputError(f"query block #{position}: the image is not valid base64") from exc
    if block.get("path"):
        return block["path"]
    raise UnsupportedInputError(
        f"query block #{position}: give the image as base64 data, a data: URL or a local path (remote URLs are "
        "not fetched)"
    )
