"""LlamaIndex adapters against the real llama-index-core classes, a real (untrained) MiniLM MetaEmbed model,
a tiny real Qwen2.5-VL for image queries, and real PDFs. Ranking is asserted only where the signal is exact."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

from fixtures.documents import TEXTS, build_cli_index, make_pdf
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import ImageBlock, TextBlock
from llama_index.core.llms.mock import MockLLMWithChatMemoryOfLastCall
from llama_index.core.objects import ObjectIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import FunctionTool, QueryEngineTool, RetrieverTool
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters, VectorStoreQuery
from PIL import Image

from metaembed_rag.errors import (
    BudgetError,
    DuplicateIdError,
    InvalidInputError,
    UnsupportedInputError,
)
from metaembed_rag.filters import FilterError
from metaembed_rag.llama_index import (
    MetaEmbedEmbedding,
    MetaEmbedRerank,
    MetaEmbedRetriever,
    VisualPDFReader,
    tool_retriever,
)


@pytest.fixture(scope="module")
def pdf_file(tmp_path_factory):
    return make_pdf(tmp_path_factory.mktemp("pdfs") / "notes.pdf", TEXTS)


@pytest.fixture(scope="module")
def retriever(minilm_model, pdf_file):
    return MetaEmbedRetriever.from_pdfs([pdf_file], model=minilm_model, k=2)


def test_construction_is_cheap(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    retriever = MetaEmbedRetriever(budget=(4, 8))
    assert retriever.engine.loaded is False


def test_text_query_returns_text_and_image_nodes(retriever, pdf_file):
    results = retriever.retrieve(TEXTS[2])
    assert len(results) == 2 and all(isinstance(r, NodeWithScore) for r in results)
    top = results[0]
    assert isinstance(top.node, ImageNode) and isinstance(top.node, TextNode)
    assert top.text.startswith("The Treaty of Westphalia")  # NodeWithScore.text works; exact page ranks first
    assert top.node.metadata["source"] == str(pdf_file) and top.node.metadata["page"] == 3
    assert top.node.metadata["budget"] == [8, 16]
    assert top.score == pytest.approx(top.node.metadata["score"])
    assert top.node.ref_doc_id == str(pdf_file)  # the page links to its file
    assert top.node.source_node.metadata == {"source": str(pdf_file)}
    # The image is a path, not pixels: nothing is rendered by a search, the page is rendered when first read.
    cache = retriever.engine.image_cache
    assert top.node.image is None and top.node.image_path.endswith(".png")
    before = cache.renders
    kinds = [type(b).__name__ for b in top.node.get_content_blocks()]
    assert kinds == ["TextBlock", "ImageBlock"] and cache.renders == before + 1
    again = retriever.retrieve(TEXTS[2])[0]
    assert again.node.image_path == top.node.image_path
    again.node.get_content_blocks()
    assert cache.renders == before + 1  # rendered once, then read from the cache
    assert Image.open(again.node.resolve_image()).size[0] > 50


def test_similarity_top_k_and_per_call_overrides(retriever):
    li = MetaEmbedRetriever(engine=retriever.engine, similarity_top_k=3)
    assert li.k == li.similarity_top_k == 3 and len(li.retrieve(TEXTS[0])) == 3
    nodes = li.retrieve(TEXTS[0], similarity_top_k=1, budget=(16, 64), image=None, filters={"page": {"$gte": 2}})
    assert len(nodes) == 1 and nodes[0].node.metadata["budget"] == [16, 64] and nodes[0].node.metadata["page"] >= 2
    assert type(nodes[0].node) is TextNode
    assert len(li.retrieve(TEXTS[0])) == 3  # the override was for that call only
    async_nodes = asyncio.run(li.aretrieve(TEXTS[1], k=2, image="base64"))
    assert len(async_nodes) == 2 and async_nodes[0].node.image  # inline PNG
    assert base64.b64decode(async_nodes[0].node.image)[:4] == b"\x89PNG"
    with pytest.raises(InvalidInputError, match="unknown retriever option"):
        li.retrieve(TEXTS[0], top_k=3)
    with pytest.raises(InvalidInputError, match="disagree"):
        MetaEmbedRetriever(k=2, similarity_top_k=3)
    with pytest.raises(InvalidInputError):
        li.retrieve(TEXTS[0], similarity_top_k=0)


def test_from_nodes_keeps_ref_doc_ids(minilm_model):
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    docs = [Document(text=t, doc_id=f"doc-{i}") for i, t in enumerate(TEXTS)]
    nodes = SentenceSplitter(chunk_size=64, chunk_overlap=0).get_nodes_from_documents(docs)
    li = MetaEmbedRetriever.from_nodes(nodes, model=minilm_model, similarity_top_k=2)
    top = li.retrieve(TEXTS[1])[0]
    assert type(top.node) is TextNode and top.node.ref_doc_id == "doc-1" and top.node.node_id == nodes[1].node_id
    assert "ref_doc_id" not in top.node.get_content(metadata_mode=MetadataMode.LLM)


def test_budget_k_cascade_and_filters(minilm_model, retriever, pdf_file):
    wide = MetaEmbedRetriever(engine=retriever.engine, budget=(16, 64), k=4, image=None)
    nodes = wide.retrieve(TEXTS[0])
    assert len(nodes) == 4 and nodes[0].node.metadata["budget"] == [16, 64]
    assert type(nodes[0].node) is TextNode
    only_page_two = MetaEmbedRetriever(engine=retriever.engine, filters={"page": {"$in": [2]}}, k=3)
    assert [n.node.metadata["page"] for n in only_page_two.retrieve(TEXTS[0])] == [2]
    li_filters = MetadataFilters(
        filters=[
            MetadataFilter(key="page", value=2, operator=">="),
            MetadataFilter(key="page", value=[3], operator="nin"),
        ]
    )
    by_li_filter = MetaEmbedRetriever(engine=retriever.engine, filters=li_filters, k=4)
    assert sorted(n.node.metadata["page"] for n in by_li_filter.retrieve(TEXTS[0])) == [2, 4]
    exact = MetadataFilters(filters=[MetadataFilter(key="page", value=[1, 4], operator="in")])
    assert MetaEmbedRetriever(engine=retriever.engine, filters=exact).filters == {"$and": [{"page": {"$in": [1, 4]}}]}
    for unsupported in ("text_match", "contains", "any", "all"):
        with pytest.raises(FilterError, match=unsupported):
            MetaEmbedRetriever(
                filters=MetadataFilters(filters=[MetadataFilter(key="t", value="x", operator=unsupported)])
            )

    def pages(filters):
        return sorted(
            n.node.metadata["page"]
            for n in MetaEmbedRetriever(engine=retriever.engine, filters=filters, k=4).retrieve(TEXTS[0])
        )

    either = MetadataFilters(
        filters=[MetadataFilter(key="page", value=1), MetadataFilter(key="page", value=4)], condition="or"
    )
    assert pages(either) == [1, 4]
    assert pages(MetadataFilters(filters=[either], condition="not")) == [2, 3]
    nested = MetadataFilters(filters=[either, MetadataFilter(key="page", value=2, operator="<")])
    assert pages(nested) == [1]
    assert pages(MetadataFilters(filters=[MetadataFilter(key="author", operator="is_empty", value=None)])) == [
        1,
        2,
        3,
        4,
    ]
    # source as the user gave it: the file name, a relative or the absolute path; file_name as readers set it
    assert pages({"source": "notes.pdf"}) == [1, 2, 3, 4]
    assert pages({"source": str(pdf_file)}) == [1, 2, 3, 4]
    assert pages(MetadataFilters(filters=[MetadataFilter(key="file_name", value="notes.pdf")])) == [1, 2, 3, 4]
    assert pages({"source": "other.pdf"}) == []
    assert pages({"$or": [{"page": 2}, {"page": {"$gte": 4}}]}) == [2, 4]  # an operator, never a key name
    with pytest.raises(FilterError, match=r"\$nand"):
        MetaEmbedRetriever(filters={"$nand": [{"page": 1}]})
    cascade = MetaEmbedRetriever(engine=retriever.engine, budget=(16, 64), cascade=((1, 1), 3), k=1)
    assert cascade.retrieve(TEXTS[1])[0].node.metadata["page"] == 2


def test_async_retrieve(retriever):
    async def run():
        return await asyncio.gather(*(retriever.aretrieve(t) for t in TEXTS))

    results = asyncio.run(run())
    assert [r[0].node.metadata["page"] for r in results] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("query", "error"),
    [("", InvalidInputError), ("   ", InvalidInputError), (QueryBundle(query_str=""), InvalidInputError)],
)
def test_bad_queries(retriever, query, error):
    with pytest.raises(error):
        retriever.retrieve(query)


def test_bad_construction_and_budget(retriever):
    with pytest.raises(InvalidInputError):
        MetaEmbedRetriever(k=0)
    with pytest.raises(BudgetError):
        MetaEmbedRetriever(budget=(0, 1))
    with pytest.raises(InvalidInputError):
        MetaEmbedRetriever(filters="page=1")
    too_big = MetaEmbedRetriever(engine=retriever.engine, budget=(16, 128))
    with pytest.raises(BudgetError, match="r_c=128"):
        too_big.retrieve(TEXTS[0])
    with pytest.raises(InvalidInputError):
        retriever.add_nodes(["not a node"])


def test_image_query_to_a_text_only_model(retriever, tmp_path):
    from PIL import Image

    path = tmp_path / "q.png"
    Image.new("RGB", (32, 32), "red").save(path)
    with pytest.raises(UnsupportedInputError, match="text-only"):
        retriever.retrieve(QueryBundle(query_str="", image_path=str(path)))
    with pytest.raises(UnsupportedInputError, match="text-only"):
        MetaEmbedEmbedding(model=retriever.engine.model).get_image_embedding(str(path))


def test_image_query_with_a_vision_model(request, pdf_file, tmp_path):
    pytest.importorskip("fixtures.tiny_qwen")
    model = request.getfixturevalue("tiny_qwen_model")
    retriever = MetaEmbedRetriever.from_pdfs([pdf_file], model=model, budget=(4, 8), k=4, load_options={"dpi": 36})
    page_image = retriever.retrieve(TEXTS[0])[0].node.metadata
    assert page_image["budget"] == [4, 8]
    from metaembed_rag.results import render_pdf_page

    query_image = tmp_path / "page3.png"
    render_pdf_page(pdf_file, 3, dpi=36).save(query_image)
    results = retriever.retrieve(QueryBundle(query_str="", image_path=str(query_image)))
    assert len(results) == 4 and {r.node.metadata["page"] for r in results} == {1, 2, 3, 4}
    embedding = MetaEmbedEmbedding(model=model)
    vectors = embedding.get_image_embedding(str(query_image))
    assert len(vectors) == model.embedding_dim


def test_multimodal_query_engine_sends_text_and_images(retriever):
    """``RetrieverQueryEngine(multimodal=True)`` with llama-index-core's own mock chat LLM (the offline
    stand-in for a multimodal LLM) — it records the messages it was sent."""
    llm = MockLLMWithChatMemoryOfLastCall(is_chat_model=True)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm, multimodal=True)
    response = engine.query(TEXTS[1])
    assert response.source_nodes[0].node.metadata["page"] == 2
    blocks = [b for message in llm.last_chat_messages for b in message.blocks]
    assert any(isinstance(b, ImageBlock) for b in blocks)
    assert any(isinstance(b, TextBlock) and "sponge cake" in b.text for b in blocks)


def test_retriever_and_query_engine_tools(retriever):
    tool = RetrieverTool.from_defaults(retriever, name="search_notes", description="Search the notes.")
    output = tool.call(query_str=TEXTS[2])
    assert "Westphalia" in output.content
    qe_tool = QueryEngineTool.from_defaults(
        RetrieverQueryEngine.from_args(retriever, llm=MockLLMWithChatMemoryOfLastCall(is_chat_model=True)),
        name="ask_notes",
        description="Answer questions about the notes.",
    )
    assert qe_tool.call(input=TEXTS[0]).raw_output.source_nodes[0].node.metadata["page"] == 1


def _tools():
    def add(a: int, b: int) -> int:
        """Add two integers and return their sum."""
        return a + b

    def weather(city: str) -> str:
        """Get the current weather forecast for a city."""
        return f"sunny in {city}"

    def translate(text: str) -> str:
        """Translate English text into French."""
        return text

    return [FunctionTool.from_defaults(f) for f in (add, weather, translate)]


def test_tool_retrieval(minilm_model):
    tools = _tools()
    picker = tool_retriever(tools, k=3, model=minilm_model, budget=(16, 64))
    exact = tools[1].metadata.description
    chosen = picker.retrieve(exact)
    assert len(chosen) == 3 and chosen[0].metadata.name == "weather"
    assert chosen[0].call(city="Paris").content == "sunny in Paris"
    with pytest.raises(DuplicateIdError):
        tool_retriever([tools[0], tools[0]], model=minilm_model)
    # The embedding works in LlamaIndex's own ObjectIndex too.
    object_index = ObjectIndex.from_objects(
        tools, index_cls=VectorStoreIndex, embed_model=MetaEmbedEmbedding(minilm_model)
    )
    assert len(object_index.as_retriever(similarity_top_k=2).retrieve("forecast")) == 2


def test_tool_retriever_and_from_nodes_beside_a_cli_index(minilm_model, tmp_path, monkeypatch):
    """Beside ./.metaembed/default, tool retrieval returns tools (today: PDF pages, then KeyError 'name')."""
    pdf = make_pdf(tmp_path / "cli.pdf", ["Get the current weather forecast for a city.", "Add two numbers."])
    monkeypatch.delenv("METAEMBED_RAG_INDEX", raising=False)
    monkeypatch.chdir(tmp_path)
    build_cli_index(tmp_path, minilm_model, [pdf])
    tools = _tools()
    picker = tool_retriever(tools, k=3, model=minilm_model)
    chosen = picker.retrieve("Get the current weather forecast for a city.")
    assert sorted(t.metadata.name for t in chosen) == ["add", "translate", "weather"]
    with pytest.raises(InvalidInputError, match="exactly the given tools"):
        tool_retriever(tools, index=".metaembed/default")
    nodes = MetaEmbedRetriever.from_nodes([TextNode(text=TEXTS[0], id_="n0")], model=minilm_model, k=5)
    assert [n.node.node_id for n in nodes.retrieve("weather forecast")] == ["n0"]
    pages = MetaEmbedRetriever.from_pdfs([make_pdf(tmp_path / "mine.pdf", [TEXTS[1]])], model=minilm_model, k=5)
    assert [n.node.metadata["page"] for n in pages.retrieve("weather")] == [1]
    cli = MetaEmbedRetriever.from_collection(k=5)
    assert sorted(n.node.metadata["page"] for n in cli.retrieve("weather")) == [1, 2]


def test_embedding_is_the_1_1_vector(minilm_model):
    embedding = MetaEmbedEmbedding(model=minilm_model)
    expected = minilm_model.encode_query([TEXTS[0]], budget=(1, 1))[0, 0].tolist()
    assert embedding.get_query_embedding(TEXTS[0]) == pytest.approx(expected, abs=1e-6)
    batch = embedding.get_text_embedding_batch(TEXTS)
    assert len(batch) == 4 and batch[2] == pytest.approx(embedding.get_text_embedding(TEXTS[2]), abs=1e-5)
    index = VectorStoreIndex([TextNode(text=t) for t in TEXTS], embed_model=embedding)
    assert len(index.as_retriever(similarity_top_k=2).retrieve(TEXTS[3])) == 2


def test_visual_pdf_reader(pdf_file):
    docs = VisualPDFReader(dpi=36).load_data(pdf_file)
    assert [d.metadata["page"] for d in docs] == [1, 2, 3, 4]
    assert "photovoltaic" in docs[0].text_resource.text
    assert docs[0].image_resource.data and docs[0].image_resource.mimetype == "image/png"
    assert VisualPDFReader(include_image=False).load_data(pdf_file)[0].image_resource is None


def test_missing_inputs_raise_file_not_found(tmp_path, monkeypatch):
    from metaembed_rag.errors import InputNotFoundError, MetaEmbedError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputNotFoundError, match=r"missing\.pdf") as caught:
        VisualPDFReader().load_data("missing.pdf")
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, MetaEmbedError)
    with pytest.raises(FileNotFoundError, match="reports/"):
        VisualPDFReader().load_data(["reports/"])
    with pytest.raises(FileNotFoundError, match=r"gone\.pdf"):
        MetaEmbedRetriever.from_pdfs(["gone.pdf"])


def test_rerank(minilm_model):
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in TEXTS]
    rerank = MetaEmbedRerank(model=minilm_model, budget=(16, 64), top_n=2)
    out = rerank.postprocess_nodes(nodes, query_str=TEXTS[1])
    assert len(out) == 2 and out[0].node.get_content() == TEXTS[1] and out[0].score >= out[1].score
    with pytest.raises(InvalidInputError):
        MetaEmbedRerank(model=minilm_model, top_n=0)


def test_missing_extra_names_the_install_command():
    code = (
        "import sys; sys.modules['llama_index.core'] = None\n"
        "from metaembed_rag.errors import MissingDependencyError\n"
        "try:\n"
        "    import metaembed_rag.llama_index\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert "pip install 'metaembed-rag[llama-index]'" in done.stdout


@pytest.mark.parametrize("backend", ["memory", "qdrant"])
def test_vector_store_inside_vector_store_index(minilm_model, backend):
    from llama_index.core import Document, StorageContext
    from llama_index.core.vector_stores import FilterCondition

    from metaembed_rag.llama_index import MetaEmbedVectorStore

    store = None
    if backend == "qdrant":
        pytest.importorskip("qdrant_client")
        from qdrant_client import QdrantClient

        from metaembed_rag.index.qdrant import QdrantMultiVectorStore

        store = QdrantMultiVectorStore.from_client(
            QdrantClient(location=":memory:"), dim=minilm_model.embedding_dim, stored_budgets=(1, 16, 64)
        )
    vector_store = MetaEmbedVectorStore(model=minilm_model, store=store)
    docs = [
        Document(text=t, doc_id=f"doc-{i}", metadata={"n": i, "topic": "even" if i % 2 == 0 else "odd"})
        for i, t in enumerate(TEXTS)
    ]
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=vector_store.embed_model,
    )
    assert len(vector_store.client) == 4
    top = index.as_retriever(similarity_top_k=2).retrieve(TEXTS[2])
    assert len(top) == 2 and top[0].node.ref_doc_id == "doc-2" and top[0].text == TEXTS[2]
    assert type(top[0].node) is TextNode and top[0].node.metadata == {"n": 2, "topic": "even"}
    odd = MetadataFilters(filters=[MetadataFilter(key="topic", value="odd")])
    assert {n.node.ref_doc_id for n in index.as_retriever(similarity_top_k=4, filters=odd).retrieve(TEXTS[0])} == {
        "doc-1",
        "doc-3",
    }
    either = MetadataFilters(
        filters=[MetadataFilter(key="n", value=0), MetadataFilter(key="n", value=3, operator=">=")],
        condition=FilterCondition.OR,
    )
    assert {n.node.metadata["n"] for n in index.as_retriever(similarity_top_k=4, filters=either).retrieve("x")} == {
        0,
        3,
    }
    wide = index.as_retriever(similarity_top_k=1, vector_store_kwargs={"budget": (16, 64)}).retrieve(TEXTS[1])
    assert wide[0].node.ref_doc_id == "doc-1"
    # a query engine with llama-index-core's mock LLM (an offline stand-in) gets the retrieved text
    llm = MockLLMWithChatMemoryOfLastCall(is_chat_model=True)
    response = index.as_query_engine(llm=llm, similarity_top_k=1).query(TEXTS[3])
    assert response.source_nodes[0].node.ref_doc_id == "doc-3"
    assert any(TEXTS[3] in str(m.content) for m in llm.last_chat_messages)
    # get_nodes / delete (by ref_doc_id) / delete_nodes / clear
    got = vector_store.get_nodes(
        filters=MetadataFilters(filters=[MetadataFilter(key="n", value=[1, 2], operator="in")])
    )
    assert sorted(n.ref_doc_id for n in got) == ["doc-1", "doc-2"]
    node_id = got[0].node_id
    assert [n.node_id for n in vector_store.get_nodes(node_ids=[node_id, "nope"])] == [node_id]
    index.delete_ref_doc("doc-0")
    assert len(vector_store.client) == 3
    assert all(n.node.ref_doc_id != "doc-0" for n in index.as_retriever(similarity_top_k=4).retrieve(TEXTS[0]))
    vector_store.delete_nodes(filters=odd)
    assert sorted(n.metadata["n"] for n in vector_store.get_nodes(filters=either)) == []  # 0 deleted, 3 is odd
    vector_store.add([TextNode(text=TEXTS[0], id_="again", metadata={"n": 9})])
    assert asyncio.run(vector_store.aquery(VectorStoreQuery(query_str=TEXTS[0], similarity_top_k=5))).ids[0] == "again"
    with pytest.raises(InvalidInputError, match="query_str"):  # the placeholder embed_model's vector
        vector_store.query(VectorStoreQuery(query_embedding=[0.0], similarity_top_k=1))
    with pytest.raises(FilterError, match="text_match"):
        vector_store.query(
            VectorStoreQuery(
                query_str="x",
                filters=MetadataFilters(filters=[MetadataFilter(key="n", value="x", operator="text_match")]),
            )
        )
    vector_store.clear()
    assert len(vector_store.client) == 0


def test_vector_store_query_embedding_and_hybrid(minilm_model):
    """``query_embedding`` without ``query_str`` is the query's vectors ([r_q, d], or [d] as r_q = 1); hybrid
    (per call, on the store, or the hybrid query mode) fuses with BM25 as the searcher does."""
    from llama_index.core.vector_stores.types import VectorStoreQueryMode

    from metaembed_rag.errors import BudgetError
    from metaembed_rag.fusion import HybridOptions
    from metaembed_rag.llama_index import MetaEmbedVectorStore

    vector_store = MetaEmbedVectorStore(model=minilm_model)
    vector_store.add([TextNode(text=t, id_=f"n{i}", metadata={"n": i}) for i, t in enumerate(TEXTS)])
    by_text = vector_store.query(VectorStoreQuery(query_str=TEXTS[2], similarity_top_k=4), budget=(16, 64))
    vectors = minilm_model.encode_query([TEXTS[2]])[0]
    by_vectors = vector_store.query(
        VectorStoreQuery(query_embedding=vectors.tolist(), similarity_top_k=4), budget=(16, 64)
    )
    assert by_vectors.ids == by_text.ids and by_vectors.similarities == pytest.approx(by_text.similarities, abs=1e-5)
    one = vector_store.query(VectorStoreQuery(query_embedding=vectors[0].tolist(), similarity_top_k=4))
    at_1 = vector_store.query(VectorStoreQuery(query_str=TEXTS[2], similarity_top_k=4), budget=(1, 16))
    assert one.ids == at_1.ids and one.similarities == pytest.approx(at_1.similarities, abs=1e-5)
    assert one.nodes[0].get_content() == TEXTS[int(one.ids[0][1:])]
    with pytest.raises(BudgetError, match="r_q=16"):
        vector_store.query(VectorStoreQuery(query_embedding=vectors[:4].tolist(), similarity_top_k=1), budget=(16, 64))
    with pytest.raises(InvalidInputError, match=r"\[R_q, 384\]"):
        vector_store.query(VectorStoreQuery(query_embedding=[0.5] * 10, similarity_top_k=1))
    with pytest.raises(InvalidInputError, match="hybrid"):
        vector_store.query(VectorStoreQuery(query_embedding=vectors.tolist(), similarity_top_k=1), hybrid=True)

    expected = vector_store.engine.searcher.search(TEXTS[1], budget=(8, 16), k=3, hybrid=True)
    per_call = vector_store.query(VectorStoreQuery(query_str=TEXTS[1], similarity_top_k=3), hybrid=True)
    assert per_call.ids == [h.id for h in expected]
    assert per_call.similarities == pytest.approx([h.score for h in expected])
    assert per_call.similarities[0] < 0.05  # a reciprocal-rank score, not MaxSim
    mode = vector_store.query(
        VectorStoreQuery(query_str=TEXTS[1], similarity_top_k=3, mode=VectorStoreQueryMode.HYBRID)
    )
    assert mode.ids == per_call.ids and mode.similarities == pytest.approx(per_call.similarities)
    weighted = vector_store.query(
        VectorStoreQuery(query_str="Westphalia 1648", similarity_top_k=4, mode=VectorStoreQueryMode.HYBRID, alpha=0.0)
    )
    lexical_only = vector_store.engine.searcher.search(
        "Westphalia 1648", k=4, hybrid=HybridOptions(dense_weight=0.0, lexical_weight=1.0)
    )
    assert weighted.ids[0] == "n2" and weighted.ids == [h.id for h in lexical_only]
    on_store = MetaEmbedVectorStore(engine=vector_store.engine, hybrid=True)
    assert on_store.query(VectorStoreQuery(query_str=TEXTS[1], similarity_top_k=3)).ids == per_call.ids
    with pytest.raises(UnsupportedInputError, match="text_search"):
        vector_store.query(VectorStoreQuery(query_str="x", mode=VectorStoreQueryMode.TEXT_SEARCH))
