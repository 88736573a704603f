"""Retrieved pages as LlamaIndex nodes carrying text and page image."""

from __future__ import annotations

from typing import Literal

from llama_index.core.schema import MediaResource, Node, NodeWithScore

from ..results import RetrievedPage, image_to_base64, mime_type

NodeImageMode = Literal["auto", "path", "base64", None]

LLM_HIDDEN_KEYS = ["id", "score", "budget", "sha256", "text_source", "render_size", "dpi", "kind", "image_path"]
"""Metadata kept on the node but not shown to the LLM or the embedder."""


def page_to_node(page: RetrievedPage, image: NodeImageMode = "auto", image_format: str = "PNG") -> NodeWithScore:
    """A retrieved page as ``NodeWithScore``; ``image="auto"`` uses the saved image path, else renders base64."""
    image_resource = None
    if image in ("auto", "path") and page.image_path():
        image_resource = MediaResource(path=page.image_path(), mimetype="image/png")
    elif image in ("auto", "base64") and page.has_image:
        encoded = page.image_base64(image_format)
        if encoded is not None:
            image_resource = MediaResource(data=encoded.encode("ascii"), mimetype=mime_type(image_format))
    metadata = page.as_metadata(image=None)
    if page.image_path():
        metadata["image_path"] = page.image_path()
    node = Node(
        id_=page.id,
        text_resource=MediaResource(text=page.text),
        image_resource=image_resource,
        metadata=metadata,
        excluded_llm_metadata_keys=[k for k in LLM_HIDDEN_KEYS if k in metadata],
        excluded_embed_metadata_keys=[k for k in LLM_HIDDEN_KEYS if k in metadata],
    )
    return NodeWithScore(node=node, score=page.score)


def encode_image_resource(image, image_format: str = "PNG") -> MediaResource:
    """A PIL image as an in-memory ``MediaResource`` (base64 data)."""
    return MediaResource(data=image_to_base64(image, image_format).encode("ascii"), mimetype=mime_type(image_format))
