"""The store contract: every MultiVectorStore takes, refuses and returns the same things.

One suite, parametrised over every store: the in-process ``MultiVectorIndex``, ``QdrantMultiVectorStore`` on
qdrant-client's local mode (in memory and in a folder) and on Qdrant Edge. The rules themselves live once, in
``metaembed_rag.index.base.MultiVectorStore``; a store that drifted from them fails here. Exact scores against a
brute-force reference are in ``tests/test_qdrant_parity.py``; what only one store does stays in its own file.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from metaembed_rag.errors import (
    BudgetError,
    DocumentNotFoundError,
    DuplicateIdError,
    IncompatibleModelError,
    InvalidInputError,
)
from metaembed_rag.index import MultiVectorIndex, MultiVectorStore, SearchHit

DIM = 8
STORED = 16  # candidate vectors kept per document
QDRANT_BUDGETS = (1, 4, 16)  # the r_c a Qdrant collection of this suite stores (the index allows 1..16)

KINDS = ["memory"]
if importlib.util.find_spec("qdrant_client") is not None:
    KINDS += ["qdrant-local", "qdrant-path"]
if importlib.util.find_spec("qdrant_edge") is not None:
    KINDS += ["qdrant-edge"]


def _open(kind: str, folder) -> MultiVectorStore:
    if kind == "memory":
        return MultiVectorIndex(DIM, STORED)
    from metaembed_rag.index.qdrant import QdrantMultiVectorStore

    options = {"dim": DIM, "stored_budgets": QDRANT_BUDGETS, "batch_size": 3}
    if kind == "qdrant-local":
        return QdrantMultiVectorStore.local(**options)
    if kind == "qdrant-path":
        return QdrantMultiVectorStore.local(folder / "local", **options)
    return QdrantMultiVectorStore.embedded(folder, "contract", **options)


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    s = _open(request.param, tmp_path)
    yield s
    if hasattr(s, "close"):
        s.close()


def docs(n: int, vectors: int = STORED, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, vectors, DIM, generator=gen), dim=-1)


def queries(n: int = 2, vectors: int = 4, seed: int = 9) -> torch.Tensor:
    return docs(n, vectors, seed)


def filled(store: MultiVectorStore, n: int = 6) -> torch.Tensor:
    vectors = docs(n)
    store.add([f"d{i}" for i in range(n)], vectors, [{"i": i, "even": i % 2 == 0} for i in range(n)])
    return vectors


def ranked(hits: list[list[SearchHit]]) -> list[list[str]]:
    return [[h.id for h in row] for row in hits]


# ------------------------------------------------------------------------------------------------ writes
def test_add_then_get_returns_vectors_and_metadata_in_the_order_asked(store):
    assert isinstance(store, MultiVectorStore) and len(store) == 0
    assert store.dim == DIM and store.stored_vectors == STORED
    vectors = docs(5, vectors=STORED + 4)  # extra vectors beyond stored_vectors are dropped
    store.add([f"d{i}" for i in range(5)], vectors, [{"i": i} for i in range(5)])
    assert len(store) == 5
    got = store.get(["d4", "d1", "d4"])
    assert [d.id for d in got] == ["d4", "d1", "d4"]
    assert got[0].embeddings.shape == (STORED, DIM) and got[0].embeddings.dtype == torch.float32
    assert torch.allclose(got[0].embeddings, vectors[4, :STORED], atol=1e-6)
    assert got[1].metadata == {"i": 1}
    assert store.get([]) == []
    with pytest.raises(DocumentNotFoundError, match="nope"):
        store.get(["d1", "nope"])


def test_add_replaces_by_id_and_upsert_is_the_same(store):
    filled(store, 4)
    replacement = docs(1, seed=5)
    store.add(["d1"], replacement, [{"v": 2}])
    assert len(store) == 4
    assert torch.allclose(store.get(["d1"])[0].embeddings, replacement[0], atol=1e-6)
    store.upsert(["d2"], replacement, [None])  # a None metadata is {}
    assert len(store) == 4 and store.get(["d2"])[0].metadata == {} and store.get(["d1"])[0].metadata == {"v": 2}
    store.add([], docs(0))  # nothing to add is not an error
    assert len(store) == 4


def test_delete_is_all_or_nothing_and_counts_repeats_once(store):
    filled(store, 5)
    with pytest.raises(DocumentNotFoundError, match="zzz") as caught:
        store.delete(["d0", "zzz"])
    assert isinstance(caught.value, KeyError) and "zzz" in str(caught.value)
    assert len(store) == 5  # nothing removed when one id is unknown
    store.delete(["d0", "d0", "d3"])
    store.delete([])
    assert len(store) == 3
    found = {h.id for h in store.search(queries(1), budget=(1, 1), k=10)[0]}
    assert found == {"d1", "d2", "d4"}
    with pytest.raises(DocumentNotFoundError):
        store.get(["d0"])


def test_refused_writes_have_typed_errors_and_change_nothing(store):
    filled(store, 3)
    before = ranked(store.search(queries(), budget=(4, 4), k=10))
    two = docs(2)
    nan = two.clone()
    nan[1, 3, 0] = float("nan")
    inf = docs(1).clone()
    inf[0, 0, 0] = float("inf")
    reserved = sorted(store.reserved_metadata_keys)
    cases = [
        (InvalidInputError, "strings", lambda: store.add([1, 2], two)),
        (InvalidInputError, "list of strings", lambda: store.add("d0", docs(1))),
        (InvalidInputError, "non-empty", lambda: store.add([""], docs(1))),
        (InvalidInputError, "Unicode", lambda: store.add(["bad\udcff"], docs(1))),
        (DuplicateIdError, "duplicate", lambda: store.add(["x", "x"], two)),
        (InvalidInputError, "torch.Tensor", lambda: store.add(["x"], docs(1).tolist())),
        (InvalidInputError, "shape", lambda: store.add(["x"], docs(1)[0])),  # 2-D
        (IncompatibleModelError, "dimension", lambda: store.add(["x"], torch.zeros(1, STORED, DIM + 1))),
        (InvalidInputError, "vectors per document", lambda: store.add(["x"], docs(1, vectors=STORED - 1))),
        (InvalidInputError, "2 ids but 1", lambda: store.add(["x", "y"], docs(1))),
        (InvalidInputError, "floating point", lambda: store.add(["x"], torch.ones(1, STORED, DIM, dtype=torch.int64))),
        (InvalidInputError, "NaN", lambda: store.add(["x", "y"], nan)),
        (InvalidInputError, "NaN", lambda: store.add(["x"], inf)),
        (InvalidInputError, "JSON", lambda: store.add(["x"], docs(1), [{"f": object()}])),
        (InvalidInputError, "JSON", lambda: store.add(["x"], docs(1), [{"f": float("nan")}])),
        (InvalidInputError, "keys", lambda: store.add(["x"], docs(1), [{1: "one"}])),
        (InvalidInputError, "must be a dict", lambda: store.add(["x"], docs(1), ["not a dict"])),
        (InvalidInputError, "2 dicts", lambda: store.add(["x", "y"], two, [{}])),
        (InvalidInputError, "list of 1 dicts", lambda: store.add(["x"], docs(1), {"a": 1})),
        *[(InvalidInputError, "reserved", lambda key=key: store.add(["x"], docs(1), [{key: "y"}])) for key in reserved],
        (DocumentNotFoundError, "nope", lambda: store.delete(["d1", "nope"])),
        (InvalidInputError, "strings", lambda: store.delete([3])),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
    assert len(store) == 3 and sorted(store.lookup_metadata(["d0", "d1", "d2", "x", "y"])) == ["d0", "d1", "d2"]
    assert ranked(store.search(queries(), budget=(4, 4), k=10)) == before


def test_metadata_is_copied_in_and_out(store):
    meta = {"tags": ["a"]}
    store.add(["a"], docs(1), [meta])
    meta["tags"].append("mutated")
    hit = store.search(docs(1)[:, :1], budget=(1, 1), k=1)[0][0]
    hit.metadata["tags"].append("also mutated")
    assert store.get(["a"])[0].metadata == {"tags": ["a"]}
    assert store.lookup_metadata(["a", "unknown"]) == {"a": {"tags": ["a"]}}


# ------------------------------------------------------------------------------------------------- reads
def test_a_2d_query_is_one_query_and_zero_queries_give_nothing(store):
    filled(store)
    q = queries(1)
    assert ranked(store.search(q[0], budget=(4, 4), k=3)) == ranked(store.search(q, budget=(4, 4), k=3))
    assert len(store.search(q[0], budget=(4, 4), k=3)) == 1
    assert store.search(torch.zeros(0, 4, DIM), budget=(1, 1), k=3) == []


def test_budget_none_is_the_largest_and_budgets_are_checked_against_what_is_stored(store):
    filled(store)
    q = queries(vectors=4)
    assert store.search(q, budget=None, k=4) == store.search(q, budget=(4, STORED), k=4)
    with pytest.raises(BudgetError, match="r_q=8"):
        store.search(q, budget=(8, 4))  # more query vectors than given
    with pytest.raises(BudgetError, match=f"r_c={STORED + 1}"):
        store.search(q, budget=(1, STORED + 1))
    unstored = [r for r in range(1, STORED + 1) if r not in store.stored_budgets]
    for r_c in unstored[:2]:  # Qdrant keeps some prefixes only; the index keeps them all
        with pytest.raises(BudgetError, match=rf"r_c={r_c}.*\[1, 4, 16\]"):
            store.search(q, budget=(1, r_c))
    for bad in ("8;16", (0, 1), (1,), 3):
        with pytest.raises(BudgetError):
            store.search(q, budget=bad)


def test_k_and_query_rules(store):
    filled(store)
    q = queries()
    for bad_k in (0, -1, 1.5, True, "3"):
        with pytest.raises(InvalidInputError, match="k must"):
            store.search(q, budget=(1, 1), k=bad_k)
    nan = q.clone()
    nan[0, 0, 0] = float("nan")
    cases = [
        (IncompatibleModelError, lambda: store.search(torch.zeros(1, 4, DIM + 2), budget=(1, 1))),
        (InvalidInputError, lambda: store.search(nan, budget=(1, 1))),
        (InvalidInputError, lambda: store.search([[0.0] * DIM], budget=(1, 1))),
        (InvalidInputError, lambda: store.search(torch.ones(1, 4, DIM, dtype=torch.int32), budget=(1, 1))),
        (InvalidInputError, lambda: store.search(torch.zeros(DIM), budget=(1, 1))),
        (InvalidInputError, lambda: store.search(q, budget=(1, 1), filter={"i": {"$like": 3}})),
        (InvalidInputError, lambda: store.search(q, budget=(1, 1), filter={"$nand": [{"i": 3}]})),
    ]
    for error, call in cases:
        with pytest.raises(error):
            call()
    assert len(store.search(q, budget=(1, 1), k=100)[0]) == 6  # k above the count: every document


def test_cascade_rules(store):
    filled(store)
    q = queries()
    plain = store.search(q, budget=(4, 16), k=3)
    assert ranked(store.search(q, budget=(4, 16), k=3, cascade=((1, 1), 6))) == ranked(plain)
    assert ranked(store.search(q, budget=(4, 16), k=3, cascade=[(2, 4), 3])) == ranked(
        store.search(q, budget=(4, 16), k=3, cascade=((2, 4), 3))
    )
    cases = [
        (InvalidInputError, "cascade must be", ((1, 1),)),
        (InvalidInputError, "cascade must be", "1,1"),
        (BudgetError, "must not exceed", ((4, 16), 5)),  # coarse r_c above the budget's (4, 4)
        (BudgetError, "must not exceed", ((2, 1), 5)),  # coarse r_q 2 above the budget (1, 4)
        (InvalidInputError, "n_candidates", ((1, 1), 2)),  # fewer candidates than k = 3
        (InvalidInputError, "n_candidates", ((1, 1), True)),
        (BudgetError, "cascade budget", ((1, STORED + 1), 5)),
    ]
    budgets = [(4, 4), (4, 4), (4, 4), (1, 4), (4, 4), (4, 4), (4, 4)]
    for (error, message, cascade), budget in zip(cases, budgets, strict=True):
        with pytest.raises(error, match=message):
            store.search(q, budget=budget, k=3, cascade=cascade)


def test_filters_that_match_nothing_and_boolean_filters(store):
    filled(store)
    q = queries()
    assert store.search(q, budget=(1, 1), filter={"i": {"$in": []}}) == [[], []]
    assert store.search(q, budget=(1, 1), filter=lambda m: False) == [[], []]
    assert store.search(q, budget=(1, 1), filter={"i": -1}) == [[], []]
    for flt in ({"even": True}, {"even": {"$in": [True]}}, {"$and": [{"even": True}, {"i": {"$in": [0, 2, 4]}}]}):
        even = store.search(q, budget=(4, 16), k=10, filter=flt)  # booleans: Qdrant Edge cannot match them
        assert all(sorted(h.id for h in row) == ["d0", "d2", "d4"] for row in even), flt
    assert sorted(store.find_ids({"even": False})) == ["d1", "d3", "d5"]


def test_find_ids_and_lookup_metadata(store):
    filled(store)
    assert sorted(store.find_ids()) == [f"d{i}" for i in range(6)]
    assert sorted(store.find_ids({"i": {"$gte": 4}})) == ["d4", "d5"]
    assert sorted(store.find_ids(lambda m: m["i"] == 2)) == ["d2"]
    assert store.find_ids({"i": {"$in": []}}) == []
    with pytest.raises(InvalidInputError):
        store.find_ids({"i": {"$like": 1}})
    assert store.lookup_metadata(["d3", "d3", "missing"]) == {"d3": {"i": 3, "even": False}}
    assert store.lookup_metadata([]) == {}
    with pytest.raises(InvalidInputError):
        store.lookup_metadata([""])


def test_normalised_scores_are_raw_scores_over_r_q(store):
    filled(store)
    q = queries()
    raw = store.search(q, budget=(4, 16), k=4)
    norm = store.search(q, budget=(4, 16), k=4, normalize=True)
    assert ranked(raw) == ranked(norm)
    for a, b in zip(raw, norm, strict=True):
        assert all(abs(x.score / 4 - y.score) < 1e-5 for x, y in zip(a, b, strict=True))
