"""Concurrent search while add/delete run: no half-written document is ever returned, none is lost."""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from metaembed_rag.index import MultiVectorIndex

DIM = 32
R_C = 16


def vectors_of(doc_id: str) -> torch.Tensor:
    """Each document's vectors follow from its id, so any hit can be checked against the truth."""
    seed = int(doc_id.split("-")[1]) * 7919 + len(doc_id)
    return F.normalize(torch.randn(R_C, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_concurrent_add_delete_and_search():
    index = MultiVectorIndex(DIM, R_C, dtype="float32")
    queries = F.normalize(torch.randn(2, 4, DIM, generator=torch.Generator().manual_seed(1)), dim=-1)
    errors: list[str] = []
    done = threading.Event()
    deleted: set[str] = set()

    def writer() -> None:
        try:
            for batch in range(60):
                ids = [f"doc-{batch * 10 + i}" for i in range(10)]
                index.add(ids, torch.stack([vectors_of(i) for i in ids]), [{"id": i} for i in ids])
                if batch % 3 == 2:  # delete some older ones, forcing tombstones and compactions
                    gone = [f"doc-{(batch - 2) * 10 + i}" for i in range(0, 10, 2)]
                    index.delete(gone)
                    deleted.update(gone)
                if batch % 5 == 4:  # upsert existing ids with their (identical) vectors
                    again = [f"doc-{batch * 10 + i}" for i in range(3)]
                    index.add(again, torch.stack([vectors_of(i) for i in again]), [{"id": i} for i in again])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"writer: {exc!r}")
        finally:
            done.set()

    def reader() -> None:
        searches = 0
        try:
            while not done.is_set() or searches < 5:
                for budget, cascade in (((4, 16), None), ((2, 4), None), ((4, 16), ((1, 1), 20))):
                    for q, hits in enumerate(index.search(queries, budget=budget, k=20, cascade=cascade)):
                        ids = [h.id for h in hits]
                        if len(ids) != len(set(ids)):
                            errors.append(f"duplicate hits {ids}")
                        for hit in hits:
                            if hit.metadata != {"id": hit.id}:
                                errors.append(f"metadata of {hit.id} is {hit.metadata}")
                            truth = (queries[q, : budget[0]] @ vectors_of(hit.id)[: budget[1]].T).amax(1).sum()
                            if abs(truth.item() - hit.score) > 1e-4:
                                errors.append(f"{hit.id}: score {hit.score} but its vectors give {truth.item()}")
                searches += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"reader: {exc!r}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:5]
    expected = {f"doc-{i}" for i in range(600)} - deleted
    assert len(index) == len(expected) == 600 - len(deleted)
    assert set(index.ids) == expected
    for doc in index.get(sorted(expected)[:50]):
        assert torch.allclose(doc.embeddings, vectors_of(doc.id)) and doc.metadata == {"id": doc.id}
    everything = index.search(queries, budget=(4, 16), k=1000)
    assert {h.id for h in everything[0]} == expected
