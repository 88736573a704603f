"""Tool retrieval: pick which of many tools to give an agent by retrieving over their descriptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.objects import ObjectRetriever, SimpleToolNodeMapping
from llama_index.core.tools import BaseTool

from ..errors import DuplicateIdError, InvalidInputError
from .retriever import MetaEmbedRetriever


def tool_retriever(tools: Sequence[BaseTool], *, k: int = 3, **retriever_options: Any) -> ObjectRetriever:
    """An ``ObjectRetriever`` returning the ``k`` tools whose name and description best match a query.

    The tools go into a new in-memory index of their own (never the CLI's index), so only tools come back.

    Example:
        >>> picker = tool_retriever(tools, k=2, budget=(4, 8))                   # doctest: +SKIP
        >>> agent = FunctionAgent(tools=picker.retrieve("convert 3 km to miles"), llm=llm)  # doctest: +SKIP
    """
    if "index" in retriever_options or "engine" in retriever_options:
        raise InvalidInputError("tool_retriever indexes exactly the given tools; do not pass index= or engine=")
    tools = list(tools)
    if not tools:
        raise InvalidInputError("tool_retriever needs at least one tool")
    names = [tool.metadata.name for tool in tools]
    if len(set(names)) != len(names):
        raise DuplicateIdError(f"tool names must be unique, got {names}")
    mapping = SimpleToolNodeMapping.from_objects(tools)
    retriever = MetaEmbedRetriever(k=min(k, len(tools)), image=None, **retriever_options)
    retriever.add_nodes([mapping.to_node(tool) for tool in tools])
    return ObjectRetriever(retriever=retriever, object_node_mapping=mapping)
