"""Retrieved documents for a chat model's prompt: as plain text (:func:`format_documents`), or as text and page
image content blocks for a multimodal model (:func:`image_content_blocks`, :func:`multimodal_message`)."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.messages.content import create_image_block, create_text_block

from ..results import image_to_base64, mime_type, page_image


def format_documents(documents: Sequence[Document]) -> str:
    """The documents as prompt text: one numbered passage per document, headed by its file and page.

    Use it between the retriever and the prompt (``{"context": retriever | format_documents, ...}``) so the model
    reads the passages, not the ``repr`` of a list of ``Document`` objects.

    Example:
        >>> doc = Document(page_content="Revenue rose.", metadata={"source": "/r/a.pdf", "page": 2})
        >>> print(format_documents([doc]))
        [1] a.pdf, page 2
        Revenue rose.
    """
    import os

    passages = []
    for number, doc in enumerate(documents, 1):
        source, page = doc.metadata.get("source"), doc.metadata.get("page")
        where = ", ".join(
            part
            for part in (os.path.basename(str(source)) if source else None, f"page {page}" if page else None)
            if part
        )
        passages.append(f"[{number}] {where}\n{doc.page_content}" if where else f"[{number}]\n{doc.page_content}")
    return "\n\n".join(passages)


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
