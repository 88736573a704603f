"""Parity: MultiVectorIndex, Qdrant local mode and Qdrant Edge return the exact MaxSim top-k (ties aside).

The reference is brute-force :func:`metaembed_rag.scoring.maxsim` on the same tensors; filters are applied to the
reference with :func:`matches_filter`, the semantics every store shares.
"""

from __future__ import annotations

import itertools

import pytest
import torch

pytest.importorskip("qdrant_client")
pytest.importorskip("qdrant_edge")

from qdrant_client import QdrantClient

from metaembed_rag.budget import MATRYOSHKA_GROUPS, Budget
from metaembed_rag.index import MultiVectorIndex
from metaembed_rag.index.base import matches_filter
from metaembed_rag.index.qdrant import QdrantMultiVectorStore
from metaembed_rag.scoring import maxsim

DIM = 24
N_DOCS = 160
STORED = (1, 4, 8, 16, 64)
TOL = 1e-4
BUDGETS = [*MATRYOSHKA_GROUPS, (16, 1), (4, 64), (1, 16)]


def _corpus(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # Clustered vectors, like real embeddings: documents share directions, so budgets genuinely reorder them.
    centres = torch.nn.functional.normalize(torch.randn(8, DIM, generator=gen), dim=-1)
    assign = torch.randint(0, 8, (N_DOCS, 64), generator=gen)
    docs = torch.nn.functional.normalize(centres[assign] + 0.6 * torch.randn(N_DOCS, 64, DIM, generator=gen), dim=-1)
    queries = torch.nn.functional.normalize(
        centres[torch.randint(0, 8, (5, 16), generator=gen)] + 0.6 * torch.randn(5, 16, DIM, generator=gen), dim=-1
    )
    ids = [f"doc-{i:03d}" for i in range(N_DOCS)]
    metas = []
    for i in range(N_DOCS):
        meta = {"source": f"file{i % 4}.pdf", "page": i % 11, "weight": (i % 5) / 4, "tags": ["x", "y"][: i % 3]}
        if i % 7 == 0:
            meta["note"] = None
        if i % 6 == 0:
            meta["a.b"] = "dotted"
        metas.append(meta)
    return ids, docs, queries, metas


FILTERS = [
    None,
    {"source": "file1.pdf"},
    {"source": {"$in": ["file0.pdf", "file3.pdf"]}, "page": {"$in": [1, 2, 3, 4, 5]}},
    {"weight": 0.5},
    {"weight": {"$in": [0.25, 1.0, True]}},
    {"note": None},
    {"tags": "x"},  # no document has the *value* "x" (Qdrant alone would match inside lists)
    {"tags": ["x"]},
    {"a.b": "dotted"},
    lambda m: m["page"] > 6 and m["source"] != "file2.pdf",
    # The rest of the operator set (metaembed_rag.filters), checked on the payloads by the Qdrant stores.
    {"page": {"$gte": 3, "$lt": 7}},
    {"$or": [{"source": "file1.pdf"}, {"page": 0}]},
    {"$not": {"source": {"$in": ["file0.pdf", "file2.pdf"]}}},
    {"page": {"$ne": 2}, "source": {"$nin": ["file0.pdf"]}},
    {"$and": [{"source": "file2.pdf"}, {"weight": {"$gt": 0.3}}]},
    {"$and": [{"page": {"$in": [1, 2]}}, {"note": None}]},
    {"file_name": "file3.pdf"},
]


def _open(kind, folder):
    if kind == "memory":
        return MultiVectorIndex(dim=DIM)
    if kind == "local":
        return QdrantMultiVectorStore.from_client(QdrantClient(location=":memory:"), dim=DIM, stored_budgets=STORED)
    return QdrantMultiVectorStore.embedded(folder, dim=DIM, stored_budgets=STORED, batch_size=50)


@pytest.fixture(scope="module", params=["memory", "local", "edge"])
def loaded(request, tmp_path_factory):
    """A store holding corpus 0, shared by the read-only tests of this module."""
    s = _open(request.param, tmp_path_factory.mktemp("edge"))
    ids, docs, queries, metas = _corpus()
    s.add(ids, docs, metas)
    yield s, (ids, docs, queries, metas)
    if hasattr(s, "close"):
        s.close()


@pytest.fixture(params=["memory", "local", "edge"])
def store(request, tmp_path):
    s = _open(request.param, tmp_path)
    yield s
    if hasattr(s, "close"):
        s.close()


def assert_same_topk(hits, reference_scores, ids, k, allowed):
    """``hits`` is a correct top-k of ``reference_scores`` restricted to ``allowed`` (scores equal, ties aside)."""
    candidates = [i for i in range(len(ids)) if allowed[i]]
    expected = min(k, len(candidates))
    assert len(hits) == expected
    if not expected:
        return
    index = {doc_id: i for i, doc_id in enumerate(ids)}
    got = [index[h.id] for h in hits]
    assert len(set(got)) == len(got), "duplicate hits"
    assert all(allowed[i] for i in got), "a hit does not pass the filter"
    for h, i in zip(hits, got, strict=True):
        assert abs(h.score - reference_scores[i].item()) < TOL, (h.id, h.score, reference_scores[i].item())
    assert all(a.score >= b.score - TOL for a, b in itertools.pairwise(hits)), "not sorted"
    ranked = sorted((reference_scores[i].item() for i in candidates), reverse=True)
    kth = ranked[expected - 1]
    assert min(h.score for h in hits) >= kth - TOL, "a better document was left out"


@pytest.mark.parametrize("budget", BUDGETS, ids=lambda b: f"{b[0]}x{b[1]}")
def test_every_budget_matches_bruteforce(loaded, budget):
    store, (ids, docs, queries, _) = loaded
    reference = maxsim(queries, docs, budget)
    hits = store.search(queries, budget=budget, k=7)
    assert len(hits) == queries.shape[0]
    for row, ref in zip(hits, reference, strict=True):
        assert_same_topk(row, ref, ids, 7, [True] * len(ids))
    normalised = store.search(queries, budget=budget, k=7, normalize=True)
    for raw_row, norm_row in zip(hits, normalised, strict=True):
        assert [h.id for h in raw_row] == [h.id for h in norm_row]
        for a, b in zip(raw_row, norm_row, strict=True):
            assert abs(a.score / budget[0] - b.score) < 1e-6


@pytest.mark.parametrize("flt_index", range(len(FILTERS)))
def test_filters_match_bruteforce(loaded, flt_index):
    flt = FILTERS[flt_index]
    store, (ids, docs, queries, metas) = loaded
    allowed = [matches_filter(m, flt) for m in metas]
    for budget in [(1, 1), (8, 16), (16, 64)]:
        reference = maxsim(queries, docs, budget)
        hits = store.search(queries, budget=budget, k=6, filter=flt)
        for row, ref in zip(hits, reference, strict=True):
            assert_same_topk(row, ref, ids, 6, allowed)
            for h in row:
                assert h.metadata == metas[ids.index(h.id)]


def test_parity_after_deletes_and_updates(store):
    ids, docs, queries, metas = _corpus(2)
    store.add(ids, docs, metas)
    gone = ids[::5]
    store.delete(gone)
    # Replace some survivors with other vectors and metadata: upsert by id.
    changed = [doc_id for doc_id in ids[1:40:3] if doc_id not in gone]
    new_vectors = torch.nn.functional.normalize(torch.randn(len(changed), 64, DIM), dim=-1)
    store.add(changed, new_vectors, [{"source": "new.pdf", "page": 0} for _ in changed])
    docs = docs.clone()
    for j, doc_id in enumerate(changed):
        docs[ids.index(doc_id)] = new_vectors[j]
        metas[ids.index(doc_id)] = {"source": "new.pdf", "page": 0}
    assert len(store) == N_DOCS - len(gone)
    alive = [doc_id not in gone for doc_id in ids]
    for flt in (None, {"source": "new.pdf"}, {"page": {"$in": [0, 3]}}):
        allowed = [a and matches_filter(m, flt) for a, m in zip(alive, metas, strict=True)]
        for budget in [(1, 1), (4, 8), (16, 64)]:
            reference = maxsim(queries, docs, budget)
            for row, ref in zip(store.search(queries, budget=budget, k=8, filter=flt), reference, strict=True):
                assert_same_topk(row, ref, ids, 8, allowed)


@pytest.mark.parametrize("coarse", [(1, 1), (4, 8), (16, 1)], ids=lambda b: f"{b[0]}x{b[1]}")
def test_cascade_is_prefetch_then_rescore(loaded, coarse):
    store, (ids, docs, queries, metas) = loaded
    n_candidates = 20
    flt = {"source": {"$in": ["file0.pdf", "file1.pdf", "file2.pdf"]}}
    allowed = torch.tensor([matches_filter(m, flt) for m in metas])
    coarse_scores = maxsim(queries, docs, coarse).masked_fill(~allowed, float("-inf"))
    fine_scores = maxsim(queries, docs, (16, 64))
    hits = store.search(queries, budget=(16, 64), k=5, cascade=(coarse, n_candidates), filter=flt)
    for q, row in enumerate(hits):
        shortlist = coarse_scores[q].topk(n_candidates).indices.tolist()
        in_shortlist = [i in shortlist for i in range(len(ids))]
        assert_same_topk(row, fine_scores[q], ids, 5, in_shortlist)
    # A cascade whose shortlist holds everything equals the plain search.
    full = store.search(queries, budget=(16, 64), k=5, cascade=(coarse, N_DOCS))
    plain = store.search(queries, budget=(16, 64), k=5)
    for a, b in zip(full, plain, strict=True):
        assert [h.id for h in a] == [h.id for h in b]


def test_three_stores_agree(tmp_path):
    """The same documents and queries through MultiVectorIndex, local mode and Edge: same ranks, same scores."""
    ids, docs, queries, metas = _corpus(4)
    memory = MultiVectorIndex(dim=DIM)
    local = QdrantMultiVectorStore.from_client(QdrantClient(location=":memory:"), dim=DIM, stored_budgets=STORED)
    edge = QdrantMultiVectorStore.embedded(tmp_path, dim=DIM, stored_budgets=STORED)
    try:
        for s in (memory, local, edge):
            s.add(ids, docs, metas)
            s.delete(ids[::9])
        searches = [{"budget": b} for b in BUDGETS] + [
            {"budget": (8, 16), "filter": {"source": "file2.pdf"}},
            {"budget": (16, 64), "cascade": ((1, 1), 30), "filter": lambda m: m["page"] < 8},
        ]
        for kwargs in searches:
            expected = memory.search(queries, k=10, **kwargs)
            for other in (local, edge):
                for a, b in zip(expected, other.search(queries, k=10, **kwargs), strict=True):
                    assert len(a) == len(b) > 0
                    for x, y in zip(a, b, strict=True):  # same ranks; an id may differ only on a tie
                        assert abs(x.score - y.score) < TOL
                        assert x.id == y.id or abs(x.score - y.score) < 1e-6
                        assert x.metadata == y.metadata
    finally:
        local.close()
        edge.close()


def test_budget_groups_exist():
    assert Budget(16, 64) == Budget.parse(MATRYOSHKA_GROUPS[-1])
