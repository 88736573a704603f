"""Retrieved pages as LlamaIndex nodes: ``TextNode``, or ``ImageNode`` when the page has an image.

Every node links to its source (``NodeRelationship.SOURCE``, so ``node.ref_doc_id`` is set): the original
document's id for nodes added with ``from_nodes``/``add_nodes``, else the page's file. Page images are attached as
a path, never as pixels, unless asked for: the image saved at indexing time, or the PDF page rendered on first
read and cached (``resolve_image()``/``get_content_blocks()`` render it; a search alone renders nothing).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Literal

from llama_index.core.schema import (
    ImageNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    RelatedNodeInfo,
    TextNode,
)
from pydantic import PrivateAttr

from ..results import PageImageCache, RetrievedPage, image_to_base64, mime_type

NodeImageMode = Literal["auto", "path", "base64", None]
"""``"auto"``: the saved image, else the PDF page (rendered when first read, then cached); ``"path"``: saved
images only; ``"base64"``: the image inline (rendered once per page and cached); ``None``: text only."""

REF_DOC_KEY = "ref_doc_id"
"""Metadata key keeping the id of a node's source document (set by ``add_nodes``)."""

LLM_HIDDEN_KEYS = [
    "id",
    "score",
    "budget",
    "sha256",
    "text_source",
    "render_size",
    "dpi",
    "kind",
    "image_path",
    REF_DOC_KEY,
]
"""Metadata kept on the node but not shown to the LLM or the embedder."""


class PageImageNode(ImageNode):
    """An ``ImageNode`` for a page: its content blocks are the page text *and* the image (a plain
    ``ImageNode`` sends only the image), and the image file is rendered from the PDF when first read."""

    _cache: PageImageCache | None = PrivateAttr(default=None)

    def resolve_image(self) -> Any:
        if self.image is None and self.image_path and not Path(self.image_path).is_file() and self._cache:
            self._cache.ensure(self.metadata)
        return super().resolve_image()

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list[Any]:
        from llama_index.core.base.llms.types import ImageBlock, TextBlock

        blocks: list[Any] = list(self.get_metadata_content_blocks(metadata_mode))
        if self.text:
            blocks.append(TextBlock(text=self.text))
        resolved = self.resolve_image()
        data = base64.b64decode(self.image) if self.image is not None else None
        path = resolved if data is None else None
        blocks.append(ImageBlock(image=data, path=path, image_mimetype=self.image_mimetype))
        return blocks


def page_to_node(
    page: RetrievedPage,
    image: NodeImageMode = "auto",
    cache: PageImageCache | None = None,
) -> NodeWithScore:
    """A retrieved page as ``NodeWithScore`` (see the module docs for ``image``)."""
    metadata = page.as_metadata(image=None)
    saved = page.image_path()
    if saved:
        metadata["image_path"] = saved
    ref_doc_id = page.metadata.get(REF_DOC_KEY) or page.source or page.id
    common: dict[str, Any] = {
        "id_": page.id,
        "text": page.text,
        "metadata": metadata,
        "excluded_llm_metadata_keys": [k for k in LLM_HIDDEN_KEYS if k in metadata],
        "excluded_embed_metadata_keys": [k for k in LLM_HIDDEN_KEYS if k in metadata],
        "relationships": {
            NodeRelationship.SOURCE: RelatedNodeInfo(
                node_id=str(ref_doc_id), metadata={"source": page.source} if page.source else {}
            )
        },
    }
    cache = cache or PageImageCache()
    node: TextNode
    if image == "path" and saved and Path(saved).is_file():
        node = PageImageNode(image_path=saved, image_mimetype="image/png", **common)
    elif image == "auto" and (planned := cache.planned_path(page.metadata)) is not None:
        node = PageImageNode(image_path=planned, image_mimetype="image/png", **common)
        node._cache = cache
    elif image == "base64" and (path := cache.ensure(page.metadata)) is not None:
        encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")  # PNG files: saved or cached
        node = PageImageNode(image=encoded, image_mimetype="image/png", **common)
    else:
        node = TextNode(**common)
    return NodeWithScore(node=node, score=page.score)


def encode_image_resource(image, image_format: str = "PNG"):
    """A PIL image as an in-memory ``MediaResource`` (base64 data)."""
    from llama_index.core.schema import MediaResource

    return MediaResource(data=image_to_base64(image, image_format).encode("ascii"), mimetype=mime_type(image_format))
