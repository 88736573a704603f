"""LangChain adapters against the real langchain-core classes, a real (untrained) MiniLM MetaEmbed model and
real PDFs. An untrained model gives no reliable ranking, so ranking is asserted only where the signal is exact
(a document identical to the query scores highest)."""

from __future__ import annotations

import asyncio
import base64
import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("langchain_core")

from fixtures.documents import TEXTS, build_cli_index, make_pdf
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, RunnablePassthrough
from langchain_core.tools import create_retriever_tool
from langchain_core.vectorstores import InMemoryVectorStore

from metaembed_rag.errors import (
    BudgetError,
    IndexNotFoundError,
    InvalidInputError,
    MetaEmbedError,
    UnsupportedInputError,
)
from metaembed_rag.langchain import (
    MetaEmbedEmbeddings,
    MetaEmbedReranker,
    MetaEmbedRetriever,
    VisualPDFLoader,
    image_content_blocks,
    multimodal_message,
)


@pytest.fixture(scope="module")
def retriever(minilm_model):
    docs = [Document(page_content=t, metadata={"topic": i % 2, "n": i}) for i, t in enumerate(TEXTS)]
    return MetaEmbedRetriever.from_documents(docs, model=minilm_model, k=3)


@pytest.fixture(scope="module")
def pdf_file(tmp_path_factory):
    return make_pdf(tmp_path_factory.mktemp("pdfs") / "report.pdf", TEXTS[:2])


def test_construction_is_cheap_and_every_field_has_a_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    retriever = MetaEmbedRetriever(budget=(8, 16))
    assert retriever.k == 5 and retriever.cascade is None and retriever.filter is None
    assert retriever.engine.loaded is False  # no model loaded until the first query
    assert MetaEmbedRetriever().budget == (8, 16)


@pytest.fixture
def beside_a_cli_index(minilm_model, tmp_path, monkeypatch):
    """Work in a folder where `metaembed-rag index` built ./.metaembed/default from a two-page PDF."""
    pdf = make_pdf(tmp_path / "cli.pdf", ["Quarterly revenue grew by nine percent.", "Staff canteen menu."])
    monkeypatch.delenv("METAEMBED_RAG_INDEX", raising=False)
    monkeypatch.chdir(tmp_path)
    build_cli_index(tmp_path, minilm_model, [pdf])
    return pdf


def test_from_collection_opens_the_cli_index(beside_a_cli_index, minilm_model):
    retriever = MetaEmbedRetriever.from_collection(k=2)  # no model: the one the index was built with
    docs = retriever.invoke("Staff canteen menu.")
    assert docs[0].page_content.startswith("Staff canteen") and docs[0].metadata["page"] == 2
    assert docs[0].metadata["source"] == str(beside_a_cli_index.resolve())
    assert retriever.engine.model.fingerprint == minilm_model.fingerprint
    assert len(MetaEmbedRetriever.from_collection("default").invoke("revenue")) == 2
    with pytest.raises(IndexNotFoundError, match="papers") as caught:
        MetaEmbedRetriever.from_collection("papers")
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(InvalidInputError):
        MetaEmbedRetriever.from_collection(index="x")


def test_from_texts_beside_a_cli_index_holds_only_the_given_texts(beside_a_cli_index, minilm_model, tmp_path):
    retriever = MetaEmbedRetriever.from_texts(TEXTS[:2], model=minilm_model, k=5)
    docs = retriever.invoke("Quarterly revenue grew by nine percent.")
    assert sorted(d.page_content for d in docs) == sorted(TEXTS[:2])  # no CLI page among them
    assert len(retriever.engine.index) == 2
    from_docs = MetaEmbedRetriever.from_documents([Document(page_content=TEXTS[3])], model=minilm_model)
    assert [d.page_content for d in from_docs.invoke("revenue")] == [TEXTS[3]]
    pdf = make_pdf(tmp_path / "given.pdf", [TEXTS[2]])
    from_pdfs = MetaEmbedRetriever.from_pdfs([pdf], model=minilm_model, k=5)
    assert [d.metadata["source"] for d in from_pdfs.invoke("revenue")] == [str(pdf.resolve())]
    saved = retriever.engine.save(tmp_path / "mine")  # saving copies none of the CLI's pages
    from metaembed_rag.index import MultiVectorIndex

    assert len(MultiVectorIndex.load(saved if saved else tmp_path / "mine")) == 2
    empty = MetaEmbedRetriever(model=minilm_model)  # no index given: an empty one, not the CLI's
    assert empty.invoke("revenue") == []
    from metaembed_rag.collection import DocumentCollection

    assert len(DocumentCollection.open(".metaembed/default", model=minilm_model)) == 2  # CLI index untouched


def test_invoke_returns_documents_with_text_and_metadata(retriever):
    docs = retriever.invoke(TEXTS[2])
    assert len(docs) == 3
    assert all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.page_content == TEXTS[2]  # exact duplicate of the query ranks first
    assert top.metadata["n"] == 2 and top.metadata["topic"] == 0  # user metadata kept
    assert top.metadata["budget"] == [8, 16]
    assert "text" not in top.metadata
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert top.id == top.metadata["id"]


def test_per_call_overrides(retriever):
    docs = retriever.invoke(TEXTS[0], budget=(16, 64), k=1)
    assert len(docs) == 1 and docs[0].metadata["budget"] == [16, 64]
    assert docs[0].page_content == TEXTS[0]
    filtered = retriever.invoke(TEXTS[0], filter={"topic": 1}, k=4)
    assert filtered and all(d.metadata["topic"] == 1 for d in filtered)
    cascaded = retriever.invoke(TEXTS[3], budget=(16, 64), cascade=((1, 1), 3), k=2)
    assert len(cascaded) == 2 and cascaded[0].page_content == TEXTS[3]
    with pytest.raises(InvalidInputError, match="unknown retriever option"):
        retriever.invoke(TEXTS[0], bogus=1)


def test_configurable_fields_share_the_index(retriever):
    configurable = retriever.configurable_fields(budget=ConfigurableField(id="budget"), k=ConfigurableField(id="k"))
    docs = configurable.invoke(TEXTS[1], config={"configurable": {"budget": (2, 4), "k": 2}})
    assert len(docs) == 2 and docs[0].metadata["budget"] == [2, 4]
    assert docs[0].page_content == TEXTS[1]  # same index as the original: nothing re-added
    assert len(configurable.invoke(TEXTS[1])) == 3  # defaults unchanged


def test_async_runs_off_the_event_loop_and_matches_sync(retriever, monkeypatch):
    threads: list[int] = []
    real = retriever.engine.retrieve

    def recording(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(retriever.engine, "retrieve", recording)

    async def run():
        loop_thread = threading.get_ident()
        results = await asyncio.gather(*(retriever.ainvoke(t, k=2) for t in TEXTS))
        return loop_thread, results

    loop_thread, results = asyncio.run(run())
    assert len(threads) == len(TEXTS) and loop_thread not in threads
    for text, docs in zip(TEXTS, results, strict=True):
        assert docs[0].page_content == text
        assert [d.id for d in docs] == [d.id for d in retriever.invoke(text, k=2)]


@pytest.mark.parametrize(
    ("query", "error"),
    [(None, InvalidInputError), (b"bytes", UnsupportedInputError), ("", InvalidInputError), ("  ", InvalidInputError)],
)
def test_bad_queries_raise_typed_errors(retriever, query, error):
    with pytest.raises(error):
        retriever.invoke(query)


def test_budget_above_what_the_index_stores(retriever):
    with pytest.raises(BudgetError, match="r_c=128"):
        retriever.invoke(TEXTS[0], budget=(16, 128))
    with pytest.raises(BudgetError):
        retriever.invoke(TEXTS[0], budget=(32, 16))
    with pytest.raises(BudgetError):
        retriever.invoke(TEXTS[0], budget="not a budget")
    assert retriever.invoke(TEXTS[0], k=1)[0].page_content == TEXTS[0]  # nothing lost


def test_bad_construction_and_documents(minilm_model):
    with pytest.raises(UnsupportedInputError):
        MetaEmbedRetriever(index=42)
    with pytest.raises(InvalidInputError):
        MetaEmbedRetriever(image="jpeg-please")
    retriever = MetaEmbedRetriever(model=minilm_model)
    with pytest.raises(InvalidInputError):
        retriever.add_documents(["not a document"])
    with pytest.raises(InvalidInputError):
        retriever.add_documents([Document(page_content="   ")])


def test_from_pdfs_with_page_images(minilm_model, pdf_file, tmp_path):
    by_path = MetaEmbedRetriever.from_pdfs([pdf_file], model=minilm_model, image_dir=tmp_path / "img", k=2)
    docs = by_path.invoke(TEXTS[1])
    assert {d.metadata["page"] for d in docs} == {1, 2}
    assert all(d.metadata["source"] == str(pdf_file) for d in docs)
    top = docs[0]
    assert top.metadata["page"] == 2 and "flour" in top.page_content
    assert Path(top.metadata["image_path"]).is_file()

    as_base64 = MetaEmbedRetriever(model=minilm_model, index=by_path.engine.index, image="base64", k=1)
    doc = as_base64.invoke(TEXTS[0])[0]
    image = Image.open(io.BytesIO(base64.b64decode(doc.metadata["image_base64"])))
    assert image.size[0] > 50 and doc.metadata["image_mime_type"] == "image/png"

    blocks = image_content_blocks(docs)
    kinds = [b["type"] for b in blocks]
    assert kinds.count("image") == 2 and kinds.count("text") == 2
    assert all(b["mime_type"] == "image/png" and b["base64"] for b in blocks if b["type"] == "image")
    message = multimodal_message("What does the cake need?", docs)
    assert isinstance(message, HumanMessage) and message.content[0]["text"] == "What does the cake need?"


class _PromptRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.prompts.extend(str(m.content) for batch in messages for m in batch)


def test_lcel_chain_with_a_fake_chat_model(retriever):
    """A RAG chain: retriever -> prompt -> chat model -> parser. The chat model is langchain-core's fake
    (offline stand-in for a real LLM); the test checks that retrieved text reaches the model's prompt."""
    prompt = ChatPromptTemplate.from_messages([("human", "Context:\n{context}\n\nQuestion: {question}")])
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="1648.")]))
    chain = (
        {
            "context": retriever.with_config(configurable={}) | (lambda ds: "\n".join(d.page_content for d in ds)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | llm
        | StrOutputParser()
    )
    recorder = _PromptRecorder()
    answer = chain.invoke(TEXTS[2], config={"callbacks": [recorder]})
    assert answer == "1648."
    assert any(TEXTS[2] in p for p in recorder.prompts)


def test_retriever_tool_in_an_agent_loop(retriever):
    tool = create_retriever_tool(retriever, "search_notes", "Search the notes for facts.")
    assert TEXTS[0] in tool.invoke({"query": TEXTS[0]})
    llm = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(content="", tool_calls=[{"name": "search_notes", "args": {"query": TEXTS[2]}, "id": "c1"}]),
                AIMessage(content="The war ended in 1648."),
            ]
        )
    )
    messages = [HumanMessage(content="When did the Thirty Years' War end?")]
    ai = llm.invoke(messages)
    messages.append(ai)
    for call in ai.tool_calls:
        result = tool.invoke(call)  # a ToolCall in -> a ToolMessage out
        assert isinstance(result, ToolMessage) and TEXTS[2] in result.content
        messages.append(result)
    assert llm.invoke(messages).content == "The war ended in 1648."


def test_embeddings_are_the_1_1_vector(minilm_model):
    embeddings = MetaEmbedEmbeddings(model=minilm_model)
    query_vector = embeddings.embed_query(TEXTS[0])
    expected = minilm_model.encode_query([TEXTS[0]], budget=(1, 1))[0, 0].tolist()
    assert query_vector == pytest.approx(expected, abs=1e-6)
    doc_vectors = embeddings.embed_documents(TEXTS)
    assert len(doc_vectors) == 4 and len(doc_vectors[0]) == minilm_model.embedding_dim
    store = InMemoryVectorStore.from_texts(TEXTS, embeddings)
    assert len(store.similarity_search(TEXTS[1], k=2)) == 2
    assert asyncio.run(embeddings.aembed_query(TEXTS[0])) == pytest.approx(query_vector, abs=1e-6)
    with pytest.raises(InvalidInputError):
        embeddings.embed_documents("one string")
    with pytest.raises(MetaEmbedError):
        embeddings.embed_query("")


def test_visual_pdf_loader(pdf_file):
    docs = list(VisualPDFLoader(pdf_file).lazy_load())
    assert [d.metadata["page"] for d in docs] == [1, 2]
    assert "photovoltaic" in docs[0].page_content and "image_base64" not in docs[0].metadata
    with_images = VisualPDFLoader(pdf_file, include_image=True, dpi=48).load()
    raw = base64.b64decode(with_images[1].metadata["image_base64"])
    assert Image.open(io.BytesIO(raw)).format == "PNG"


def test_reranker_rescores_another_retrievers_documents(minilm_model):
    other = InMemoryVectorStore.from_texts(TEXTS, MetaEmbedEmbeddings(model=minilm_model)).as_retriever(k=4)
    candidates = other.invoke(TEXTS[3])
    reranked = MetaEmbedReranker(model=minilm_model, budget=(16, 64), top_n=2).compress_documents(candidates, TEXTS[3])
    assert len(reranked) == 2 and reranked[0].page_content == TEXTS[3]
    assert reranked[0].metadata["rerank_score"] >= reranked[1].metadata["rerank_score"]
    with pytest.raises(BudgetError):
        MetaEmbedReranker(model=minilm_model, budget=(16, 65)).compress_documents(candidates, "x")
    with pytest.raises(InvalidInputError):
        MetaEmbedReranker(model=minilm_model, top_n=0)


def test_missing_extra_names_the_install_command():
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "from metaembed_rag.errors import MissingDependencyError\n"
        "try:\n"
        "    import metaembed_rag.langchain\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert "pip install 'metaembed-rag[langchain]'" in done.stdout


def test_missing_inputs_raise_file_not_found(minilm_model, tmp_path, monkeypatch):
    from metaembed_rag.errors import InputNotFoundError
    from metaembed_rag.loaders import load_pages

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputNotFoundError, match="reports/"):
        list(load_pages("reports/"))
    with pytest.raises(FileNotFoundError, match=r"missing\.pdf"):
        VisualPDFLoader("missing.pdf")
    with pytest.raises(InputNotFoundError, match=r"\*\.pdf: the pattern matches no file"):
        VisualPDFLoader("nothing/*.pdf")
    with pytest.raises(InputNotFoundError, match=r"x\.pdf"):
        MetaEmbedRetriever.from_pdfs(["x.pdf"], model=minilm_model)
    real = make_pdf(tmp_path / "real.pdf", [TEXTS[0]])
    with pytest.raises(InputNotFoundError, match=r"gone\.pdf") as caught:  # one missing among real ones: no pages
        MetaEmbedRetriever.from_pdfs([real, "gone.pdf"], model=minilm_model)
    assert isinstance(caught.value, MetaEmbedError)
    assert len(VisualPDFLoader(real).load()) == 1


@pytest.mark.parametrize("backend", ["memory", "qdrant"])
def test_vector_store_search_kwargs_filters_and_mmr(minilm_model, backend):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from metaembed_rag.langchain import MetaEmbedVectorStore

    store = None
    if backend == "qdrant":
        pytest.importorskip("qdrant_client")
        from qdrant_client import QdrantClient

        from metaembed_rag.index.qdrant import QdrantMultiVectorStore

        store = QdrantMultiVectorStore.from_client(
            QdrantClient(location=":memory:"), dim=minilm_model.embedding_dim, stored_budgets=(1, 4, 16, 64)
        )
    vs = MetaEmbedVectorStore(model=minilm_model, store=store)
    ids = vs.add_texts(TEXTS, metadatas=[{"n": i, "source": f"/docs/f{i}.txt"} for i in range(4)], ids=list("abcd"))
    assert ids == list("abcd")
    scored = vs.similarity_search_with_score(TEXTS[2], k=4, budget=(16, 64))
    assert scored[0][0].page_content == TEXTS[2] and scored[0][0].id == "c" and scored[0][0].metadata["n"] == 2
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True) and -1 <= scored[-1][1] <= 1
    relevance = vs.similarity_search_with_relevance_scores(TEXTS[2], k=1)
    assert 0 <= relevance[0][1] <= 1
    assert [d.id for d in vs.similarity_search(TEXTS[0], k=4, filter={"n": {"$gte": 2}})] in (["c", "d"], ["d", "c"])
    assert [d.id for d in vs.similarity_search(TEXTS[0], k=4, filter={"source": "f1.txt"})] == ["b"]
    cascaded = vs.similarity_search(TEXTS[3], k=2, budget=(16, 64), cascade=((1, 1), 3))
    assert cascaded[0].id == "d"
    retriever = vs.as_retriever(search_kwargs={"k": 2, "budget": (4, 16), "filter": {"n": {"$ne": 0}}})
    docs = retriever.invoke(TEXTS[1])
    assert len(docs) == 2 and docs[0].id == "b" and all(d.metadata["n"] != 0 for d in docs)
    mmr = vs.max_marginal_relevance_search(TEXTS[0], k=2, fetch_k=4)
    assert len(mmr) == 2 and mmr[0].id == "a" and mmr[1].id != "a"
    assert asyncio.run(vs.asimilarity_search(TEXTS[1], k=1))[0].id == "b"
    vs.delete(["a", "zzz"])  # unknown ids are skipped, as LangChain stores do
    assert {d.id for d in vs.get_by_ids(["a", "b", "c"])} == {"b", "c"}
    with pytest.raises(InvalidInputError, match="unknown search option"):
        vs.similarity_search("x", bogus=1)
    with pytest.raises(InvalidInputError, match="'text'"):
        vs.add_texts(["t"], metadatas=[{"text": "clobbered"}])
    with pytest.raises(InvalidInputError, match="MetaEmbed model"):
        MetaEmbedVectorStore.from_texts(["x"], embedding=DeterministicFakeEmbedding(size=8))
    with pytest.raises(InvalidInputError):
        vs.delete()
    from_texts = MetaEmbedVectorStore.from_texts(TEXTS[:2], MetaEmbedEmbeddings(model=minilm_model))
    assert len(from_texts.similarity_search(TEXTS[0], k=5)) == 2


def test_image_queries(request, pdf_file, tmp_path, minilm_model):
    pytest.importorskip("fixtures.tiny_qwen")
    from metaembed_rag.results import render_pdf_page

    query_image = tmp_path / "page2.png"
    render_pdf_page(pdf_file, 2, dpi=36).save(query_image)
    text_only = MetaEmbedRetriever.from_texts(TEXTS[:2], model=minilm_model)
    with pytest.raises(UnsupportedInputError, match="text-only"):
        text_only.invoke("", query_image=str(query_image))
    model = request.getfixturevalue("tiny_qwen_model")
    retriever = MetaEmbedRetriever.from_pdfs([pdf_file], model=model, budget=(4, 8), k=2, load_options={"dpi": 36})
    by_path = retriever.invoke("", query_image=str(query_image))
    assert len(by_path) == 2 and {d.metadata["page"] for d in by_path} == {1, 2}
    encoded = base64.b64encode(query_image.read_bytes()).decode()
    blocks = [{"type": "text", "text": "this page"}, {"type": "image", "base64": encoded, "mime_type": "image/png"}]
    by_block = retriever.invoke(blocks)
    with_text = retriever.invoke("this page", query_image=query_image.read_bytes())
    assert [d.id for d in by_block] == [d.id for d in with_text]  # same query, two spellings
    assert [d.metadata["score"] for d in by_block] == pytest.approx([d.metadata["score"] for d in with_text])
    data_url = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}]
    assert [d.id for d in retriever.invoke(data_url)] == [d.id for d in by_path]
    with pytest.raises(UnsupportedInputError, match="remote URLs"):
        retriever.invoke([{"type": "image", "url": "https://example.com/x.png"}])
    with pytest.raises(InvalidInputError, match="once"):
        retriever.invoke(blocks, query_image=str(query_image))


def test_tracing_carries_the_provider_tags(retriever):
    from langchain_core.callbacks import BaseCallbackHandler

    seen: list[dict] = []

    class Recorder(BaseCallbackHandler):
        def on_retriever_start(self, serialized, query, *, metadata=None, **kwargs):
            seen.append(dict(metadata or {}))

    retriever.invoke(TEXTS[0], config={"callbacks": [Recorder()]})
    assert seen and seen[0]["ls_embedding_provider"] == "metaembed_rag"
    assert seen[0]["ls_vector_store_provider"] == "MultiVectorIndex"
    assert seen[0]["ls_retriever_name"] == "metaembed" and seen[0]["ls_embedding_model"]
    lazy = MetaEmbedRetriever()  # nothing loaded to say what it would use
    assert lazy._get_ls_params()["ls_embedding_model"] == "starter" and not lazy.engine.loaded


def test_vector_store_image_queries(request, pdf_file, tmp_path, minilm_model):
    """``image=`` (path, bytes, PIL) or image content blocks as the query; the text-only model names itself."""
    pytest.importorskip("fixtures.tiny_qwen")
    from metaembed_rag.inputs import ModelInput
    from metaembed_rag.langchain import MetaEmbedVectorStore
    from metaembed_rag.results import render_pdf_page

    query_image = tmp_path / "page2.png"
    render_pdf_page(pdf_file, 2, dpi=36).save(query_image)
    text_only = MetaEmbedVectorStore(model=minilm_model)
    text_only.add_texts(TEXTS[:2])
    name = minilm_model.identity["name"]
    with pytest.raises(UnsupportedInputError, match="text-only") as caught:
        text_only.similarity_search("", image=str(query_image))
    assert name in str(caught.value)
    with pytest.raises(UnsupportedInputError, match="text-only"):
        text_only.similarity_search([{"type": "image", "path": str(query_image)}])
    model = request.getfixturevalue("tiny_qwen_model")
    store = MetaEmbedVectorStore(model=model, budget=(4, 8))
    store.engine.add_pdfs([pdf_file], dpi=36)
    by_path = store.similarity_search_with_score("", k=2, image=str(query_image))
    direct = store.engine.retrieve(ModelInput(image=Image.open(query_image)), budget=(4, 8), k=2)
    assert [d.id for d, _ in by_path] == [p.id for p in direct] and len(by_path) == 2
    assert [s for _, s in by_path] == pytest.approx([p.score for p in direct])
    assert {d.metadata["page"] for d, _ in by_path} == {1, 2}
    as_pil = store.similarity_search_with_score("", k=2, image=Image.open(query_image))
    assert [s for _, s in as_pil] == pytest.approx([s for _, s in by_path])
    encoded = base64.b64encode(query_image.read_bytes()).decode()
    blocks = [{"type": "text", "text": "this page"}, {"type": "image", "base64": encoded, "mime_type": "image/png"}]
    by_block = store.similarity_search_with_score(blocks, k=2)
    with_text = store.similarity_search_with_score("this page", k=2, image=query_image.read_bytes())
    assert [s for _, s in by_block] == pytest.approx([s for _, s in with_text])
    assert [s for _, s in by_block] != pytest.approx([s for _, s in by_path])  # the text is part of the query
    data_url = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}
    assert [d.id for d in store.similarity_search(data_url, k=2)] == [d.id for d, _ in by_path]
    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert retriever.invoke("", image=str(query_image))[0].id == by_path[0][0].id
    assert store.max_marginal_relevance_search("", k=1, fetch_k=2, image=str(query_image))
    with pytest.raises(InvalidInputError, match="once"):
        store.similarity_search(blocks, image=str(query_image))
    with pytest.raises(InvalidInputError, match="hybrid search needs a text query"):
        store.similarity_search("", image=str(query_image), hybrid=True)


def test_vector_store_search_by_vector(minilm_model):
    """A multi-vector query [r_q, d] scores as the text it came from; one vector [d] is a query of r_q = 1."""
    import torch

    from metaembed_rag.langchain import MetaEmbedVectorStore

    vs = MetaEmbedVectorStore(model=minilm_model, budget=(16, 64))
    vs.add_texts(TEXTS, metadatas=[{"n": i} for i in range(4)], ids=list("abcd"))
    vectors = minilm_model.encode_query([TEXTS[3]])[0]
    by_text = vs.similarity_search_with_score(TEXTS[3], k=4)
    by_vectors = vs.similarity_search_with_score_by_vector(vectors, k=4)
    assert [d.id for d, _ in by_vectors] == [d.id for d, _ in by_text] and by_vectors[0][0].id == "d"
    assert [s for _, s in by_vectors] == pytest.approx([s for _, s in by_text], abs=1e-5)
    assert [d.id for d in vs.similarity_search_by_vector(vectors.tolist(), k=2)] == [d.id for d, _ in by_text[:2]]
    at_1 = vs.similarity_search_with_score(TEXTS[3], k=4, budget=(1, 64))
    single = vs.similarity_search_with_score_by_vector(vectors[0].tolist(), k=4)
    assert [s for _, s in single] == pytest.approx([s for _, s in at_1], abs=1e-5)
    filtered = vs.similarity_search_by_vector(vectors, k=4, filter={"n": {"$lt": 2}}, budget=(8, 16))
    assert {d.id for d in filtered} == {"a", "b"}
    cascaded = vs.similarity_search_by_vector(vectors, k=1, cascade=((1, 1), 3))
    assert cascaded[0].id == "d"
    assert len(vs.max_marginal_relevance_search_by_vector(vectors, k=2, fetch_k=4)) == 2
    assert asyncio.run(vs.asimilarity_search_by_vector(vectors, k=1))[0].id == "d"
    with pytest.raises(BudgetError, match="r_q=16"):
        vs.similarity_search_by_vector(vectors[:4], k=1)
    with pytest.raises(InvalidInputError, match=r"\[R_q, 384\]"):
        vs.similarity_search_by_vector(torch.ones(2, 8), k=1)
    with pytest.raises(InvalidInputError, match="NaN"):
        vs.similarity_search_by_vector([float("nan")] * 384, k=1)
    with pytest.raises(InvalidInputError, match="hybrid"):
        vs.similarity_search_by_vector(vectors, k=1, hybrid=True)
    with pytest.raises(InvalidInputError, match="image"):
        vs.similarity_search_by_vector(vectors, k=1, image="x.png")


def test_vector_store_hybrid(minilm_model):
    """``hybrid=True`` per call, in search_kwargs or on the store: the searcher's fusion with BM25."""
    from metaembed_rag.fusion import HybridOptions
    from metaembed_rag.langchain import MetaEmbedVectorStore

    vs = MetaEmbedVectorStore(model=minilm_model)
    vs.add_texts(TEXTS, metadatas=[{"n": i} for i in range(4)], ids=list("abcd"))
    expected = vs.engine.searcher.search(TEXTS[0], budget=(8, 16), k=3, hybrid=True)
    hybrid = vs.similarity_search_with_score(TEXTS[0], k=3, hybrid=True)
    assert [d.id for d, _ in hybrid] == [h.id for h in expected]
    assert [s for _, s in hybrid] == pytest.approx([h.score for h in expected]) and hybrid[0][1] < 0.05
    assert set(hybrid[0][0].metadata["hybrid"]) == {"dense_rank", "dense_score", "bm25_rank", "bm25_score"}
    lexical = {"dense_weight": 0.0, "lexical_weight": 1.0}
    assert vs.similarity_search("Westphalia 1648", k=1, hybrid=lexical)[0].id == "c"
    retriever = vs.as_retriever(search_kwargs={"k": 3, "hybrid": True})
    assert [d.id for d in retriever.invoke(TEXTS[0])] == [h.id for h in expected]
    on_store = MetaEmbedVectorStore(engine=vs.engine, hybrid=HybridOptions(dense_weight=0.0))
    assert on_store.similarity_search("Westphalia 1648", k=1)[0].id == "c"
    assert "hybrid" not in vs.similarity_search(TEXTS[0], k=1)[0].metadata
    filtered = vs.similarity_search(TEXTS[0], k=4, hybrid=True, filter={"n": {"$gte": 2}})
    assert {d.id for d in filtered} == {"c", "d"}
    with pytest.raises(InvalidInputError, match="rank fusion"):
        vs.similarity_search_with_relevance_scores(TEXTS[0], k=1, hybrid=True)
    with pytest.raises(InvalidInputError, match="fusion"):
        vs.similarity_search(TEXTS[0], hybrid={"method": "max"})
