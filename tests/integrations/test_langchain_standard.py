"""LangChain's own standard test suites (``langchain-tests``) run against the package's classes: the retriever,
the embeddings and the vector store (in-process and over Qdrant local mode), with a real MiniLM MetaEmbed model."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from fixtures.documents import TEXTS
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from metaembed_rag.langchain import MetaEmbedEmbeddings, MetaEmbedRetriever, MetaEmbedVectorStore
from metaembed_rag.lazy_searcher import LazySearcher

_SHARED: dict = {}


@pytest.fixture(autouse=True)
def _model(minilm_model):
    """The suites read their constructor parameters from properties; this hands them the session's model."""
    _SHARED["model"] = minilm_model
    if "engine" not in _SHARED:
        engine = LazySearcher(model=minilm_model)
        engine.add_texts(TEXTS)
        _SHARED["engine"] = engine


class TestRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[MetaEmbedRetriever]:
        return MetaEmbedRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"engine": _SHARED["engine"]}

    @property
    def retriever_query_example(self) -> str:
        return "What ended the Thirty Years' War?"


class TestEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[MetaEmbedEmbeddings]:
        return MetaEmbedEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": _SHARED["model"]}


class TestVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, minilm_model):
        return MetaEmbedVectorStore(model=minilm_model)


class TestQdrantVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, minilm_model):
        pytest.importorskip("qdrant_client")
        from qdrant_client import QdrantClient

        from metaembed_rag.index.qdrant import QdrantMultiVectorStore

        store = QdrantMultiVectorStore.from_client(
            QdrantClient(location=":memory:"),
            "standard",
            dim=minilm_model.embedding_dim,
            stored_budgets=(1, 16, 64),
        )
        yield MetaEmbedVectorStore(model=minilm_model, store=store)
        store.close()
