"""QdrantMultiVectorStore: schema, persistence, ids, retries and bad input, on qdrant-client local mode and Edge."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import torch

pytest.importorskip("qdrant_client")
pytest.importorskip("qdrant_edge")

from qdrant_client import QdrantClient, models

from metaembed_rag.atomic import read_json, write_json_atomic
from metaembed_rag.errors import (
    BudgetError,
    IncompatibleModelError,
    IndexFormatError,
    InvalidInputError,
    StoreConnectionError,
)
from metaembed_rag.index.base import MultiVectorStore
from metaembed_rag.index.qdrant import ID_FIELD, ID_NAMESPACE, QdrantMultiVectorStore, point_id

DIM = 8


def _docs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 64, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _queries(n: int = 2, seed: int = 9) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 16, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.fixture(params=["local", "edge"])
def kind(request):
    return request.param


def _open(kind: str, tmp_path, **kwargs) -> QdrantMultiVectorStore:
    if kind == "local":
        return QdrantMultiVectorStore.local(**kwargs)
    return QdrantMultiVectorStore.embedded(tmp_path, **kwargs)


@pytest.fixture
def store(kind, tmp_path):
    s = _open(kind, tmp_path, dim=DIM, batch_size=4)
    yield s
    s.close()


def test_is_a_multivector_store_with_default_schema(store):
    assert isinstance(store, MultiVectorStore)
    assert store.dim == DIM and store.stored_vectors == 64 and store.stored_budgets == (1, 64)
    assert store.bytes_per_document() == {"first": 4 * DIM, "first_64": 4 * 64 * DIM}
    assert len(store) == 0


def test_point_ids_are_uuid5_of_the_string_id(store):
    assert point_id("report.pdf#p3") == str(uuid.uuid5(ID_NAMESPACE, "report.pdf#p3"))
    store.add(["report.pdf#p3"], _docs(1), [{"page": 3}])
    record = store._backend.retrieve([point_id("report.pdf#p3")], ())[0]
    assert record.point_id == point_id("report.pdf#p3")
    assert record.payload == {"page": 3, ID_FIELD: "report.pdf#p3"}


def test_interrupted_batched_upsert_retried_without_duplicates(store):
    ids = [f"d{i}" for i in range(10)]
    docs = _docs(10)
    # The first batches of an upsert land, then the process dies; the caller retries the whole call.
    store.add(ids[:6], docs[:6], [{"try": 1}] * 6)
    store.add(ids, docs, [{"try": 2}] * 10)
    assert len(store) == 10
    assert {d.metadata["try"] for d in store.get(ids)} == {2}
    hits = store.search(_queries(1), budget=(16, 64), k=20)[0]
    assert sorted(h.id for h in hits) == sorted(ids)


def test_edge_persists_and_reopens(tmp_path):
    docs = _docs(12)
    ids = [f"d{i}" for i in range(12)]
    with QdrantMultiVectorStore.embedded(tmp_path, dim=DIM, stored_budgets=[(4, 8), (16, 64)]) as s:
        s.add(ids, docs, [{"i": i} for i in range(12)])
        before = s.search(_queries(), budget=(4, 8), k=5)
    with QdrantMultiVectorStore.embedded(tmp_path) as s:  # dim and budgets come from the collection
        assert (s.dim, s.stored_budgets, len(s)) == (DIM, (1, 8, 64), 12)
        assert s.search(_queries(), budget=(4, 8), k=5) == before
        assert torch.equal(s.get(["d7"])[0].embeddings, docs[7])


def test_local_path_mode_persists_and_reopens(tmp_path):
    docs = _docs(5)
    s = QdrantMultiVectorStore.local(tmp_path / "q", dim=DIM, model_fingerprint="abc")
    s.add([f"d{i}" for i in range(5)], docs)
    s.close()
    s = QdrantMultiVectorStore.local(tmp_path / "q", model_fingerprint="abc")
    assert len(s) == 5 and s.model_fingerprint == "abc"
    s.close()
    with pytest.raises(IncompatibleModelError, match="other"):
        QdrantMultiVectorStore.local(tmp_path / "q", model_fingerprint="other")


def test_reopening_with_other_dim_or_budgets_is_refused(kind, tmp_path):
    client = QdrantClient(location=":memory:")

    def reopen(**kwargs):
        if kind == "local":
            return QdrantMultiVectorStore.from_client(client, **kwargs)
        return QdrantMultiVectorStore.embedded(tmp_path, **kwargs)

    reopen(dim=DIM, stored_budgets=[16, 64]).close()
    with pytest.raises(IncompatibleModelError, match="8-dimensional"):
        reopen(dim=16)
    with pytest.raises(IncompatibleModelError, match=r"r_c=\[1, 16, 64\]"):
        reopen(stored_budgets=[64])
    with reopen(dim=DIM, stored_budgets=[1, 16, 64]) as s:  # the same budgets, spelled with 1
        assert s.stored_budgets == (1, 16, 64)


def test_foreign_or_future_collections_are_refused(tmp_path):
    client = QdrantClient(location=":memory:")
    client.create_collection("plain", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    with pytest.raises(IndexFormatError, match="not created by metaembed_rag"):
        QdrantMultiVectorStore.from_client(client, "plain", dim=DIM)
    client.create_collection(
        "future",
        vectors_config={"first": models.VectorParams(size=DIM, distance=models.Distance.DOT)},
        metadata={"metaembed_rag": {"format_version": 99, "dim": DIM, "stored_budgets": [1]}},
    )
    with pytest.raises(IndexFormatError, match="version 99"):
        QdrantMultiVectorStore.from_client(client, "future")

    QdrantMultiVectorStore.embedded(tmp_path, "docs", dim=DIM).close()
    description = tmp_path / "docs" / "metaembed_rag.json"
    data = read_json(description)
    write_json_atomic(description, {**data, "format_version": 2})
    with pytest.raises(IndexFormatError, match="version 2"):
        QdrantMultiVectorStore.embedded(tmp_path, "docs")
    description.unlink()
    with pytest.raises(IndexFormatError, match=r"without metaembed_rag\.json"):
        QdrantMultiVectorStore.embedded(tmp_path, "docs")


def test_creating_needs_dim_and_a_real_way_to_reach_qdrant(tmp_path):
    with pytest.raises(InvalidInputError, match="dim="):
        QdrantMultiVectorStore.local()
    with pytest.raises(BudgetError):
        QdrantMultiVectorStore.local(dim=DIM, stored_budgets=[0])
    with pytest.raises(InvalidInputError, match="from_client"):  # the old keyword form points to the new one
        QdrantMultiVectorStore(QdrantClient(location=":memory:"), dim=DIM)
    with pytest.raises(InvalidInputError, match="QdrantClient"):
        QdrantMultiVectorStore.from_client("http://localhost:6333", dim=DIM)
    with pytest.raises(InvalidInputError, match="url"):
        QdrantMultiVectorStore.connect("", dim=DIM)
    with pytest.raises(InvalidInputError, match="collection"):
        QdrantMultiVectorStore.local(collection="", dim=DIM)
    with pytest.raises(InvalidInputError, match="plain folder name"):
        QdrantMultiVectorStore.embedded(tmp_path, "../escape", dim=DIM)


def test_edge_shard_is_locked_while_open(tmp_path):
    with (
        QdrantMultiVectorStore.embedded(tmp_path, dim=DIM),
        pytest.raises(StoreConnectionError, match="already open"),
    ):
        QdrantMultiVectorStore.embedded(tmp_path, dim=DIM)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_clearly_after_bounded_retries():
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(StoreConnectionError, match=r"127\.0\.0\.1.*after 3 attempt\(s\)"):
        QdrantMultiVectorStore.connect(url, dim=DIM, timeout=1, retries=2, backoff=0.05)
    assert time.monotonic() - start < 3
