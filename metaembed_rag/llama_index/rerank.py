"""``MetaEmbedRerank``: a LlamaIndex node postprocessor that rescores nodes by MaxSim at a budget."""

from __future__ import annotations

from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import Field, PrivateAttr

from ..errors import InvalidInputError
from ..inputs import ModelInput
from ..lazy_searcher import LazySearcher


class MetaEmbedRerank(BaseNodePostprocessor):
    """Encode the query and each node's text, rescore by normalised MaxSim at ``budget``, keep ``top_n``.

    Example:
        >>> rerank = MetaEmbedRerank(budget=(16, 64), top_n=3)
        >>> engine = index.as_query_engine(node_postprocessors=[rerank])      # doctest: +SKIP
    """

    budget: Any = Field(default=(16, 64))
    top_n: int | None = Field(default=5)
    _engine: LazySearcher = PrivateAttr()

    def __init__(self, model: Any = None, *, engine: LazySearcher | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.top_n is not None and self.top_n < 1:
            raise InvalidInputError(f"top_n must be a positive integer or None, got {self.top_n}")
        self._engine = engine or LazySearcher(model=model)

    @classmethod
    def class_name(cls) -> str:
        return "MetaEmbedRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise InvalidInputError("MetaEmbedRerank needs the query (query_bundle is None)")
        nodes = list(nodes)
        candidates = [ModelInput(text=n.node.get_content(MetadataMode.EMBED) or " ") for n in nodes]
        scores = self._engine.rescore(query_bundle.query_str, candidates, budget=self.budget)
        ranked = sorted(zip(scores, nodes, strict=True), key=lambda pair: -pair[0])
        if self.top_n is not None:
            ranked = ranked[: self.top_n]
        return [NodeWithScore(node=node.node, score=score) for score, node in ranked]
