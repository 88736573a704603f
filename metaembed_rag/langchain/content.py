"""Page images of retrieved documents as LangChain content blocks for a multimodal chat model."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.messages.content import create_image_block, create_text_block

from ..results import image_to_base64, mime_type, page_image


def image_content_blocks(
    documents: Sequence[Document], *, include_text: bool = True, image_format: str = "PNG"
) -> list[dict]:
    """Content blocks (text, then the page image) for each document, ready for ``HumanMessage(content=...)``.

    The image comes from ``image_base64`` metadata when present, else from the saved page image or the PDF page
    (re-rendered on demand). Documents without an image contribute their text only.

    Example:
        >>> blocks = image_content_blocks(retriever.invoke(question))            # doctest: +SKIP
        >>> llm.invoke([HumanMessage(content=[{"type": "text", "text": question}, *blocks])])  # doctest: +SKIP
    """
    blocks: list[dict] = []
    for doc in documents:
        if include_text and doc.page_content:
            blocks.append(dict(create_text_block(doc.page_content)))
        encoded = doc.metadata.get("image_base64")
        mime = doc.metadata.get("image_mime_type", mime_type(image_format))
        if encoded is None:
            image = page_image(doc.metadata)
            if image is not None:
                encoded, mime = image_to_base64(image, image_format), mime_type(image_format)
        if encoded is not None:
            blocks.append(dict(create_image_block(base64=encoded, mime_type=mime)))
    return blocks


def multimodal_message(question: str, documents: Sequence[Document], **options) -> HumanMessage:
    """A ``HumanMessage`` with the question followed by the retrieved pages (text and image blocks)."""
    return HumanMessage(content=[dict(create_text_block(question)), *image_content_blocks(documents, **options)])
