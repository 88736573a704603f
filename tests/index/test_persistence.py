"""Saving and loading a MultiVectorIndex: round trips, mmap, tampering, versions, model identity, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from metaembed_rag.errors import IncompatibleModelError, IndexFormatError
from metaembed_rag.index import MultiVectorIndex
from metaembed_rag.index.persistence import CONFIG_FILE, DOCUMENTS_FILE, VECTORS_FILE

DIM = 16
ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {"name": "m", "family": "bert", "embedding_dim": DIM, "fingerprint": "abc"}


def make(dtype: str = "float32", n: int = 50, seed: int = 0) -> MultiVectorIndex:
    generator = torch.Generator().manual_seed(seed)
    index = MultiVectorIndex(DIM, 8, dtype=dtype, model_identity=IDENTITY)
    docs = F.normalize(torch.randn(n, 8, DIM, generator=generator), dim=-1)
    index.add([f"d{i}" for i in range(n)], docs, [{"i": i, "text": f"chunk {i} é"} for i in range(n)])
    index.delete(["d3"])  # a dead row: saving keeps live documents only
    return index


def same_hits(a, b) -> bool:
    """Equal ids and metadata, scores equal up to float32 rounding (row order changes GEMM blocking)."""
    return all(
        [(h.id, h.metadata) for h in x] == [(h.id, h.metadata) for h in y]
        and all(abs(h.score - g.score) <= 1e-5 * max(1.0, abs(h.score)) for h, g in zip(x, y, strict=False))
        for x, y in zip(a, b, strict=True)
    )


def queries() -> torch.Tensor:
    return F.normalize(torch.randn(3, 4, DIM, generator=torch.Generator().manual_seed(9)), dim=-1)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8"])
@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip(tmp_path, dtype, mmap):
    index = make(dtype)
    index.save(tmp_path / "idx")
    loaded = MultiVectorIndex.load(tmp_path / "idx", mmap=mmap, model=IDENTITY)
    assert (len(loaded), loaded.dim, loaded.stored_vectors, loaded.dtype) == (49, DIM, 8, dtype)
    assert loaded.model_identity == IDENTITY
    assert sorted(loaded.ids) == sorted(index.ids)
    for budget, cascade in (((4, 8), None), ((1, 1), None), ((4, 8), ((1, 1), 10))):
        assert same_hits(
            loaded.search(queries(), budget=budget, k=7, cascade=cascade),
            index.search(queries(), budget=budget, k=7, cascade=cascade),
        )
    assert torch.equal(loaded.get(["d7"])[0].embeddings, index.get(["d7"])[0].embeddings)
    loaded.add(["new"], F.normalize(torch.randn(1, 8, DIM), dim=-1))  # a mapped index copies on write
    loaded.delete(["d0"])
    assert len(loaded) == 49 and len(MultiVectorIndex.load(tmp_path / "idx")) == 49


def test_empty_index_round_trip(tmp_path):
    MultiVectorIndex(DIM, 4).save(tmp_path / "e")
    for mmap in (False, True):
        loaded = MultiVectorIndex.load(tmp_path / "e", mmap=mmap)
        assert len(loaded) == 0 and loaded.search(queries(), budget=(1, 1), k=1) == [[], [], []]


def test_model_identity_is_checked(tmp_path):
    make().save(tmp_path / "idx")
    with pytest.raises(IncompatibleModelError, match="dimensional"):
        MultiVectorIndex.load(tmp_path / "idx", model={**IDENTITY, "embedding_dim": DIM * 2})
    with pytest.raises(IncompatibleModelError, match="fingerprint"):
        MultiVectorIndex.load(tmp_path / "idx", model={**IDENTITY, "fingerprint": "other"})
    assert len(MultiVectorIndex.load(tmp_path / "idx", model=IDENTITY)) == 49


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: (f / VECTORS_FILE).write_bytes((f / VECTORS_FILE).read_bytes()[:-100]), "truncated"),
        (lambda f: (f / VECTORS_FILE).unlink(), "missing"),
        (lambda f: (f / CONFIG_FILE).unlink(), "no index.json"),
        (lambda f: (f / CONFIG_FILE).write_text('{"format": '), "not valid JSON"),
        (lambda f: edit_json(f / CONFIG_FILE, format_version=99), "newer"),
        (lambda f: edit_json(f / CONFIG_FILE, format="something.else"), "does not describe"),
        (lambda f: edit_json(f / CONFIG_FILE, dtype="int4"), "int4"),
        (lambda f: edit_json(f / CONFIG_FILE, count=7), "7 documents"),
        (lambda f: (f / DOCUMENTS_FILE).write_text('{"ids": []}'), "bytes"),
    ],
)
def test_damaged_folders_are_refused(tmp_path, damage, match):
    make().save(tmp_path / "idx")
    damage(tmp_path / "idx")
    with pytest.raises(IndexFormatError, match=match):
        MultiVectorIndex.load(tmp_path / "idx")


def test_tampered_bytes_are_detected(tmp_path):
    make().save(tmp_path / "idx")
    vectors = tmp_path / "idx" / VECTORS_FILE
    data = bytearray(vectors.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="SHA-256"):
        MultiVectorIndex.load(tmp_path / "idx")
    documents = tmp_path / "idx" / DOCUMENTS_FILE
    text = documents.read_text().replace('"d1"', '"dX"')
    documents.write_text(text)
    with pytest.raises(IndexFormatError):
        MultiVectorIndex.load(tmp_path / "idx", mmap=True)
    with pytest.raises(IndexFormatError):
        MultiVectorIndex.load(tmp_path / "nothing-here")


def test_missing_folder_recovers_previous_version_left_by_a_crash(tmp_path):
    make().save(tmp_path / "idx")
    os.replace(tmp_path / "idx", tmp_path / ".idx.old-abc_1234")  # between the two renames of a save (mkdtemp name)
    assert len(MultiVectorIndex.load(tmp_path / "idx")) == 49


CHILD = textwrap.dedent(
    """
    import signal, sys, torch
    import torch.nn.functional as F
    from metaembed_rag.index import MultiVectorIndex

    class Interrupted(Exception):
        pass

    def interrupt(*_):
        raise Interrupted("interrupted mid-save")

    signal.signal(signal.SIGUSR1, interrupt)
    path = sys.argv[1]
    index = MultiVectorIndex(96, 64)
    docs = F.normalize(torch.randn(3000, 64, 96), dim=-1)
    index.add([f"v2-{i}" for i in range(3000)], docs, [{"version": 2}] * 3000)
    print("ready", flush=True)
    while True:
        index.save(path)
    """
)


def start_saver(path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    return child


def test_kill_during_save_leaves_a_whole_index(tmp_path):
    target = tmp_path / "idx"
    make().save(target)
    first = MultiVectorIndex.load(target)
    assert first.dim == DIM
    for delay in (0.1, 0.5):
        child = start_saver(target)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        loaded = MultiVectorIndex.load(target)  # whichever version, it is complete and verified
        assert len(loaded) in (49, 3000)
        if len(loaded) == 3000:
            assert loaded.get(["v2-17"])[0].metadata == {"version": 2}
        else:
            assert same_hits(loaded.search(queries(), budget=(4, 8), k=3), first.search(queries(), budget=(4, 8), k=3))


def test_exception_during_save_keeps_previous_index(tmp_path):
    target = tmp_path / "idx"
    make().save(target)
    before = MultiVectorIndex.load(target).search(queries(), budget=(4, 8), k=5)
    child = start_saver(target)
    # wait until a save is under way (its staging folder exists), then interrupt it with an exception
    deadline = time.time() + 20
    while not list(tmp_path.glob(".idx.new-*")) and time.time() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGUSR1)
    _, err = child.communicate(timeout=30)
    assert "Interrupted" in err
    assert not list(tmp_path.glob(".idx.new-*"))  # the half-written staging folder was removed
    loaded = MultiVectorIndex.load(target)
    if len(loaded) == 49:  # the interrupted save was the first: previous index untouched
        assert same_hits(loaded.search(queries(), budget=(4, 8), k=5), before)
    else:  # an earlier save of the loop completed first; that one is whole
        assert len(loaded) == 3000 and loaded.get(["v2-0"])[0].metadata == {"version": 2}
