"""Storage safety: nothing foreign is deleted, crashes are recovered, writers share one lock, damage is refused.

Each test is a case that lost or mixed data before (the storage-safety issue); the names say which.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fixtures.documents import make_pdf

from metaembed_rag.atomic import folder_lock, lock_file_for
from metaembed_rag.cli import main
from metaembed_rag.collection import DocumentCollection, check_collection_path, resolve_collection_path
from metaembed_rag.errors import (
    CheckpointError,
    IncompatibleModelError,
    IndexFormatError,
    InvalidInputError,
    UnsafePathError,
)
from metaembed_rag.index import MultiVectorIndex
from metaembed_rag.pipeline import index_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}


def _unit(n: int, r: int = 4, d: int = 8, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, r, d), dim=-1)


def _small_index(n: int = 3) -> MultiVectorIndex:
    index = MultiVectorIndex(dim=8, stored_vectors=4)
    index.add([f"d{i}" for i in range(n)], _unit(n), [{"i": i} for i in range(n)])
    return index


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def papers(tmp_path, monkeypatch) -> Path:
    """A user's folder of PDFs and notes, the working folder being its parent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METAEMBED_RAG_INDEX", raising=False)
    folder = tmp_path / "papers"
    folder.mkdir()
    for pdf in EXAMPLES.glob("*.pdf"):
        if pdf.name != "scanned-memo.pdf":
            shutil.copy(pdf, folder / pdf.name)
    (folder / "notes.txt").write_text("x\n")
    return folder


# ----------------------------------------------------------------------------------- 1. never delete what is not ours
def test_bare_index_name_never_means_a_folder_of_the_working_directory(papers, tiny_text_checkpoint):
    before = _snapshot(papers)
    argv = ["index", "papers/", "--index", "papers", "--model", tiny_text_checkpoint, "--no-progress"]
    assert main(argv) == 0
    assert _snapshot(papers) == before  # the user's folder is untouched
    assert (papers.parent / ".metaembed" / "papers" / "collection.json").is_file()
    assert resolve_collection_path("papers") == Path(".metaembed/papers")


def test_index_path_that_is_a_source_folder_is_refused(papers, tiny_text_checkpoint, capsys):
    before = _snapshot(papers)
    assert main(["index", "papers/", "--index", "./papers", "--model", tiny_text_checkpoint]) == 2
    assert "being indexed" in capsys.readouterr().err
    assert _snapshot(papers) == before


def test_index_path_that_is_the_working_folder_or_an_ancestor_is_refused(
    papers, tiny_text_checkpoint, capsys, monkeypatch
):
    work = papers.parent / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _snapshot(papers.parent)
    for target in (str(papers.parent), "../", "./", str(work)):
        assert main(["index", str(papers), "--index", target, "--model", tiny_text_checkpoint]) == 2, target
        assert "working folder" in capsys.readouterr().err
    assert main(["index", str(papers), "--index", "..", "--model", tiny_text_checkpoint]) == 2
    assert "not an index name" in capsys.readouterr().err
    assert _snapshot(papers.parent) == before
    with pytest.raises(UnsafePathError):
        check_collection_path(papers.parent.parent)


def test_saving_into_a_folder_with_a_foreign_file_is_refused_and_keeps_it(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    with pytest.raises(UnsafePathError, match=r"thesis\.tex"):
        _small_index().save(target)
    assert (target / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["mine"]
    (tmp_path / "afile").write_text("data")
    with pytest.raises(UnsafePathError, match="is a file"):
        _small_index().save(tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "data"


def test_saving_over_an_index_or_into_an_empty_folder_works(tmp_path):
    (tmp_path / "empty").mkdir()
    _small_index(2).save(tmp_path / "empty")
    _small_index(3).save(tmp_path / "empty")  # replacing our own index is fine
    assert len(MultiVectorIndex.load(tmp_path / "empty")) == 3


def test_every_saver_refuses_a_foreign_folder(tmp_path, tiny_text_checkpoint):
    from metaembed_rag import MetaEmbedModel

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    model = MetaEmbedModel.from_pretrained(tiny_text_checkpoint)
    with pytest.raises(UnsafePathError):
        model.save_pretrained(foreign)
    with pytest.raises(UnsafePathError):
        DocumentCollection.create(foreign, model=model).save()
    from metaembed_rag.searcher import MetaEmbedSearcher

    with pytest.raises(UnsafePathError):
        MetaEmbedSearcher(model, MultiVectorIndex.for_model(model)).save(foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]


def test_symlinked_index_path_writes_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real-index"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    _small_index(2).save(link)
    _small_index(3).save(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(MultiVectorIndex.load(link)) == 3 and len(MultiVectorIndex.load(real)) == 3
    assert lock_file_for(link) == lock_file_for(real)


# ----------------------------------------------------------------------------------- 2. crash recovery
KILL_BETWEEN_RENAMES = """
import os, signal, sys, torch
import metaembed_rag.atomic as atomic
from metaembed_rag.index import MultiVectorIndex
atomic._exchange = lambda a, b: False          # the two-rename path (as where renameat2 is missing)
real_replace, calls = os.replace, []
def replace(src, dst):
    calls.append((src, dst))
    if os.path.basename(src).startswith(".idx.new-"):  # old already moved aside, new not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
atomic.os.replace = replace
index = MultiVectorIndex(dim=8, stored_vectors=4)
index.add(["x", "y", "z", "w"], torch.nn.functional.normalize(torch.randn(4, 4, 8), dim=-1))
index.save(sys.argv[1])
"""


def test_sigkill_between_the_two_renames_is_recovered_on_next_open(tmp_path, caplog):
    target = tmp_path / "idx"
    _small_index(3).save(target)
    child = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(target)], env=_child_env())
    assert child.returncode == -signal.SIGKILL
    assert not target.exists()
    leftovers = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert leftovers == [".idx.new", ".idx.old"]
    assert len(MultiVectorIndex.load(target)) == 3  # a reader sees the previous version meanwhile
    _small_index(5).save(target)  # the next write restores, then replaces; no staging survives it
    assert len(MultiVectorIndex.load(target)) == 5
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["idx"]
    assert any("restored" in r.message for r in caplog.records)


def test_interrupted_collection_save_does_not_restart_the_next_index_from_empty(
    papers, tiny_text_checkpoint, monkeypatch, caplog
):
    assert main(["index", "papers/", "--model", tiny_text_checkpoint, "--no-progress"]) == 0
    path = papers.parent / ".metaembed" / "default"
    pages = len(DocumentCollection.open(path).index)
    os.replace(path, path.parent / ".default.old-crash_01")  # as a crash between the renames leaves it
    staging = path.parent / ".default.new-crash_01"
    staging.mkdir()
    (staging / "index").mkdir()
    lookalike = path.parent / ".default.old-my-notes"  # not a name this package makes: never touched
    lookalike.mkdir()
    (lookalike / "n.txt").write_text("mine")
    extra = papers / "more.pdf"
    make_pdf(extra, ["An extra page about comets and their tails."])
    assert main(["index", "papers/", "--no-progress", "--json"]) == 0
    collection = DocumentCollection.open(path)
    assert len(collection.index) == pages + 1
    left = sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock"))
    assert left == [".default.old-my-notes", "default"] and (lookalike / "n.txt").read_text() == "mine"
    assert any("restored" in r.message for r in caplog.records)
    assert any("removed .default.new-crash_01" in r.message for r in caplog.records)


BIG_RUN = """
import sys, time
from metaembed_rag.cli import main
import metaembed_rag.collection as collection
real_add = collection.DocumentCollection.add_pages
def slow_add(self, records, inputs, **kw):
    time.sleep(0.2)                              # a slow encoder: the run is interrupted mid-file
    return real_add(self, records, inputs, **kw)
collection.DocumentCollection.add_pages = slow_add
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_mid_file_keeps_pages_and_the_next_run_resumes(papers, tiny_text_checkpoint):
    big = papers.parent / "big"
    big.mkdir()
    make_pdf(big / "big.pdf", [f"Page {i} talks about topic number {i} at length." for i in range(120)])
    argv = ["index", "big/", "--model", tiny_text_checkpoint, "--batch-size", "4", "--save-every", "8"]
    child = subprocess.Popen([sys.executable, "-c", BIG_RUN, *argv], env=_child_env(), stderr=subprocess.PIPE)
    manifest = papers.parent / ".metaembed" / "default" / "collection.json"
    deadline = time.monotonic() + 240
    while not manifest.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)  # the first periodic save (inside the one large file)
    assert manifest.exists(), child.stderr.read() if child.poll() is not None else "no periodic save"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    collection = DocumentCollection.open(manifest.parent)
    kept = len(collection.index)
    entry = next(iter(collection.files.values()))
    assert 8 <= kept < 120 and not entry.complete
    report = index_files(DocumentCollection.open(manifest.parent), ["big/"], batch_size=16)
    assert report.pages_indexed == 120 - kept  # pages already encoded are not encoded again
    assert len(DocumentCollection.open(manifest.parent).index) == 120


# ----------------------------------------------------------------------------------- 3. one lock for every writer
API_WRITER = """
import sys
from metaembed_rag.collection import DocumentCollection
from metaembed_rag.pipeline import index_files
collection = DocumentCollection.open_or_create(sys.argv[1], model=sys.argv[2])
print(index_files(collection, [sys.argv[3]], show_progress=False).pages_indexed)
"""


def test_a_cli_run_and_an_api_run_on_one_index_keep_both_pages(papers, tiny_text_checkpoint):
    other = papers.parent / "other"
    other.mkdir()
    make_pdf(other / "o.pdf", [f"Other document page {i} about sailing boats." for i in range(6)])
    path = papers.parent / ".metaembed" / "default"
    api = subprocess.Popen(
        [sys.executable, "-c", API_WRITER, str(path), tiny_text_checkpoint, str(other)],
        env=_child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert main(["index", "papers/", "--model", tiny_text_checkpoint, "--no-progress"]) == 0
    api.communicate(timeout=240)
    assert api.returncode == 0
    collection = DocumentCollection.open(path)
    sources = {Path(hit).name for hit in collection.files}
    assert "o.pdf" in sources and "field-guide.pdf" in sources
    assert len(collection.index) == sum(len(e.ids) for e in collection.files.values()) >= 6 + 3


def test_two_collection_objects_saving_in_turn_merge_instead_of_overwriting(tmp_path, tiny_text_checkpoint):
    from metaembed_rag.loaders import open_document

    path = tmp_path / "c"
    DocumentCollection.create(path, model=tiny_text_checkpoint).save()
    first, second = DocumentCollection.open(path), DocumentCollection.open(path)
    pdf_a = make_pdf(tmp_path / "a.pdf", ["alpha page one", "alpha page two"])
    pdf_b = make_pdf(tmp_path / "b.pdf", ["beta page one"])
    for collection, pdf in ((first, pdf_a), (second, pdf_b)):
        with open_document(pdf) as document:
            records = list(document.pages(render=False))
        collection.add_pages(records, [collection.model_input(r) for r in records])
    first.save()
    second.save()  # another writer saved meanwhile: merged, not overwritten
    assert len(DocumentCollection.open(path).index) == 3
    second.delete_pages([i for i in second.index.ids if "a.pdf" in i][:1])
    second.save()
    assert len(DocumentCollection.open(path).index) == 2


def test_api_writer_waits_for_the_lock_held_by_another_process(tmp_path, tiny_text_checkpoint, monkeypatch):
    from fixtures.locks import hold_lock_in_child

    from metaembed_rag.errors import IndexLockedError

    path = tmp_path / "c"
    holder = hold_lock_in_child(path)
    try:
        monkeypatch.setenv("METAEMBED_RAG_LOCK_TIMEOUT", "0.3")
        with pytest.raises(IndexLockedError, match="another process"):
            DocumentCollection.create(path, model=tiny_text_checkpoint).save()
    finally:
        holder.kill()
        holder.wait()
    DocumentCollection.create(path, model=tiny_text_checkpoint).save()
    with folder_lock(path), folder_lock(path):  # re-entrant within one thread
        pass


# ----------------------------------------------------------------------------------- 4. integrity
def _vectors_file(folder: Path) -> Path:
    return folder / "vectors.safetensors"


@pytest.mark.parametrize("mmap", [True, False])
def test_a_same_size_bit_flip_in_the_vectors_is_refused(tmp_path, mmap):
    folder = _small_index(3).save(tmp_path / "idx")
    data = bytearray(_vectors_file(folder).read_bytes())
    data[-7] ^= 0x40
    _vectors_file(folder).write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="SHA-256"):
        MultiVectorIndex.load(folder, mmap=mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_nan_written_with_a_matching_hash_is_refused(tmp_path, mmap):
    import hashlib
    import struct

    folder = _small_index(3).save(tmp_path / "idx")
    raw = bytearray(_vectors_file(folder).read_bytes())
    (header_len,) = struct.unpack("<Q", raw[:8])
    raw[8 + header_len : 8 + header_len + 4] = struct.pack("<f", float("nan"))
    _vectors_file(folder).write_bytes(bytes(raw))
    config = json.loads((folder / "index.json").read_text())
    config["files"]["vectors.safetensors"]["sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    (folder / "index.json").write_text(json.dumps(config))
    with pytest.raises(IndexFormatError, match="NaN or infinite"):
        MultiVectorIndex.load(folder, mmap=mmap)


def test_nan_and_inf_vectors_are_refused_at_add():
    index = MultiVectorIndex(dim=8, stored_vectors=4)
    for bad in (float("nan"), float("inf")):
        vectors = _unit(1)
        vectors[0, 1, 2] = bad
        with pytest.raises(InvalidInputError, match="NaN or infinite"):
            index.add(["x"], vectors)
    assert len(index) == 0


@pytest.fixture()
def built(papers, tiny_text_checkpoint) -> Path:
    assert main(["index", "papers/", "--model", tiny_text_checkpoint, "--no-progress"]) == 0
    return papers.parent / ".metaembed" / "default"


@pytest.mark.parametrize(
    "damage",
    [
        "nested collection.json",
        "nested documents.json",
        "files is a list",
        "page_count text",
        "no index/",
        "other index/",
    ],
)
def test_damaged_collections_are_index_format_errors_and_info_says_damaged(built, damage, capsys):
    manifest = built / "collection.json"
    config = json.loads(manifest.read_text())
    if damage == "nested collection.json":
        manifest.write_text('{"format": ' + "[" * 50000 + "]" * 50000 + "}")
    elif damage == "nested documents.json":
        (built / "index" / "documents.json").write_text("[" * 50000 + "]" * 50000)
    elif damage == "files is a list":
        manifest.write_text(json.dumps({**config, "files": []}))
    elif damage == "page_count text":
        source = next(iter(config["files"]))
        config["files"][source]["page_count"] = "many"
        manifest.write_text(json.dumps(config))
    elif damage == "no index/":
        shutil.rmtree(built / "index")
    else:
        shutil.rmtree(built / "index")
        _small_index(2).save(built / "index")
    with pytest.raises(IndexFormatError):
        DocumentCollection.open(built)
    capsys.readouterr()
    code = main(["info"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    assert "DAMAGED" in out or "not a metaembed-rag collection" in err or "cannot read" in err


# ----------------------------------------------------------------------------------- 5. model identity
def test_a_changed_lora_is_another_model_on_search_and_on_index(built, tiny_text_checkpoint, tmp_path, capsys):
    from metaembed_rag import MetaEmbedModel

    model = MetaEmbedModel.from_pretrained(tiny_text_checkpoint)
    model.add_lora(r=2, target_modules=["query"])
    with_lora = model.save_pretrained(tmp_path / "with-lora")
    changed = MetaEmbedModel.from_pretrained(with_lora, merge_adapter=False)
    first = changed.fingerprint
    for name, param in changed.backbone.named_parameters():
        if "lora_B" in name:
            param.data.add_(0.01)
    changed.invalidate_fingerprint()
    assert changed.fingerprint != first
    changed_path = changed.save_pretrained(tmp_path / "changed-lora")
    assert MetaEmbedModel.from_pretrained(with_lora).fingerprint == first  # stable across loads
    assert MetaEmbedModel.from_pretrained(changed_path).fingerprint != first
    # An index built with the LoRA model refuses the changed one, on search and on index --model.
    assert main(["index", "papers/", "--index", "lora", "--model", str(with_lora), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "rain", "--index", "lora", "--budget", "4,8", "--model", str(changed_path)]) == 2
    assert "fingerprint differs" in capsys.readouterr().err
    assert main(["index", "papers/", "--index", "lora", "--model", str(changed_path)]) == 2
    assert "fingerprint differs" in capsys.readouterr().err


def test_the_backbone_files_are_part_of_the_identity(tmp_path, tiny_text_checkpoint):
    from metaembed_rag import MetaEmbedModel

    config = json.loads((Path(tiny_text_checkpoint) / "metaembed_config.json").read_text())
    copy = tmp_path / "backbone"
    shutil.copytree(config["backbone"], copy)
    same = MetaEmbedModel.from_pretrained(tiny_text_checkpoint, backbone=str(copy))
    assert (
        same.identity["backbone"]["sha256"]
        == MetaEmbedModel.from_pretrained(tiny_text_checkpoint).identity["backbone"]["sha256"]
    )
    from safetensors.torch import load_file, save_file

    weights = load_file(str(copy / "model.safetensors"))
    first = next(iter(weights))
    weights[first] = weights[first] + 0.01
    save_file(weights, str(copy / "model.safetensors"), metadata={"format": "pt"})
    other = MetaEmbedModel.from_pretrained(tiny_text_checkpoint, backbone=str(copy))
    assert other.fingerprint != same.fingerprint


def test_pkg_references_import_only_model_packages():
    code = (
        "import sys\n"
        "from metaembed_rag.errors import CheckpointError\n"
        "from metaembed_rag.modeling.model import resolve_backbone_path\n"
        "for ref in ('pkg:this.x/model', 'pkg:this/model', 'pkg:os/..'):\n"
        "    try:\n"
        "        resolve_backbone_path(ref)\n"
        "    except CheckpointError as exc:\n"
        "        print('refused', ref)\n"
        "print('this' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    assert lines == ["refused pkg:this.x/model", "refused pkg:this/model", "refused pkg:os/..", "False"]
    assert "Zen of Python" not in done.stdout
    with pytest.raises(CheckpointError, match="not a model package"):
        from metaembed_rag.modeling.model import resolve_backbone_path

        resolve_backbone_path("pkg:json/x")


# ----------------------------------------------------------------------------------- 6. text stays text
def test_a_page_whose_text_is_an_image_path_is_embedded_as_text(tmp_path, tiny_text_checkpoint, monkeypatch):
    from PIL import Image

    from metaembed_rag import MetaEmbedModel
    from metaembed_rag.inputs import ModelInput

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (16, 16), "red").save(tmp_path / "pic.png")
    pdf = make_pdf(tmp_path / "doc.pdf", ["pic.png"])
    collection = DocumentCollection.create(tmp_path / "c", model=tiny_text_checkpoint)
    report = index_files(collection, [pdf])
    assert report.pages_indexed == 1 and not report.pages_failed
    stored = collection.index.get(collection.index.ids)[0].embeddings
    expected = MetaEmbedModel.from_pretrained(tiny_text_checkpoint).encode_document([ModelInput(text="pic.png")])[0]
    assert torch.allclose(stored, expected, atol=1e-5)


def test_a_failing_page_leaves_its_file_incomplete_and_spares_its_batch(tmp_path, tiny_text_checkpoint, monkeypatch):
    from metaembed_rag.modeling.model import MetaEmbedModel

    pdf = make_pdf(tmp_path / "doc.pdf", ["good one", "POISON page", "good three", "good four"])
    real = MetaEmbedModel.encode

    def encode(self, inputs, side, **kwargs):
        if any("POISON" in (getattr(i, "text", "") or "") for i in inputs):
            raise RuntimeError("the encoder crashed on this page")
        return real(self, inputs, side, **kwargs)

    monkeypatch.setattr(MetaEmbedModel, "encode", encode)
    collection = DocumentCollection.create(tmp_path / "c", model=tiny_text_checkpoint)
    report = index_files(collection, [pdf], batch_size=4)
    assert report.pages_indexed == 3 and [f.page for f in report.pages_failed] == [2]
    entry = next(iter(collection.files.values()))
    assert not entry.complete
    monkeypatch.setattr(MetaEmbedModel, "encode", real)
    again = index_files(DocumentCollection.open(tmp_path / "c"), [pdf])
    assert again.pages_indexed == 1  # only the failed page is encoded again
    assert next(iter(DocumentCollection.open(tmp_path / "c").files.values())).complete


def test_a_damaged_reread_of_a_known_file_keeps_its_pages(tmp_path, tiny_text_checkpoint):
    pdf = make_pdf(tmp_path / "doc.pdf", [f"page {i} of a report about tides" for i in range(5)])
    collection = DocumentCollection.create(tmp_path / "c", model=tiny_text_checkpoint)
    assert index_files(collection, [pdf]).pages_indexed == 5
    data = pdf.read_bytes()
    pdf.write_bytes(data[: int(len(data) * 0.6)])  # truncated: MuPDF repairs it with pages missing
    report = index_files(DocumentCollection.open(tmp_path / "c"), [pdf])
    assert report.files_failed and "damaged" in report.files_failed[0].reason
    assert len(DocumentCollection.open(tmp_path / "c").index) == 5


# ----------------------------------------------------------------------------------- 7. odd names
def test_a_latin1_file_name_is_indexed_and_printed_escaped(papers, tiny_text_checkpoint, capsys):
    made = make_pdf(papers / "tmp.pdf", ["The espresso machine descales every month."])
    os.rename(made, os.path.join(os.fsencode(papers), b"caf\xe9\nreport.pdf"))
    assert main(["index", "papers/", "--model", tiny_text_checkpoint, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "failed files" not in out
    collection = DocumentCollection.open(papers.parent / ".metaembed" / "default")
    assert any("caf\\xe9" in source for source in collection.files)
    assert main(["search", "espresso descale", "--k", "10", "--budget", "4,8"]) == 0
    out = capsys.readouterr().out
    assert "caf\\xe9\\nreport.pdf" in out and "caf\udce9" not in out
    assert main(["index", "papers/", "--no-progress"]) == 0  # a later save never fails


def test_surrogate_ids_and_metadata_are_refused_at_add():
    index = MultiVectorIndex(dim=8, stored_vectors=4)
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        index.add(["bad\udcff"], _unit(1))
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        index.add(["ok"], _unit(1), [{"source": "caf\udce9.pdf"}])
    assert len(index) == 0


def test_a_retrained_model_on_an_old_index_is_incompatible(tmp_path, tiny_text_checkpoint):
    from metaembed_rag import MetaEmbedModel

    model = MetaEmbedModel.from_pretrained(tiny_text_checkpoint)
    index = MultiVectorIndex.for_model(model)
    index.add(["a"], model.encode_document(["some text"]))
    folder = index.save(tmp_path / "idx")
    model.meta_tokens.weight.data.mul_(1.5)
    model.invalidate_fingerprint()
    with pytest.raises(IncompatibleModelError):
        MultiVectorIndex.load(folder, model=model)


def test_qdrant_edge_refuses_a_folder_with_foreign_files(tmp_path):
    pytest.importorskip("qdrant_edge")
    from metaembed_rag.index import QdrantMultiVectorStore

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 mine")
    with pytest.raises(UnsafePathError, match=r"report\.pdf"):
        QdrantMultiVectorStore.embedded(tmp_path, collection="docs", dim=8, stored_budgets=[(1, 4)])
    assert sorted(p.name for p in folder.iterdir()) == ["report.pdf"]


def test_a_merged_model_keeps_the_fingerprint_of_its_separate_adapter(tmp_path, tiny_text_checkpoint):
    from metaembed_rag import MetaEmbedModel

    model = MetaEmbedModel.from_pretrained(tiny_text_checkpoint)
    model.add_lora(r=2, target_modules=["query"])
    path = model.save_pretrained(tmp_path / "lora")
    separate = MetaEmbedModel.from_pretrained(path, merge_adapter=False)
    merged = MetaEmbedModel.from_pretrained(path)
    assert merged.adapter_merged and merged.fingerprint == separate.fingerprint
    with pytest.raises(CheckpointError, match="merged"):
        merged.invalidate_fingerprint()
