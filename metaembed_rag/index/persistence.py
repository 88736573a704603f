"""The on-disk format of :class:`~metaembed_rag.index.memory.MultiVectorIndex`, written atomically.

A saved index is a folder::

    index.json            format name and version, dim, stored vectors, dtype, count, model identity,
                          and the size and SHA-256 of the two files below
    documents.json        {"ids": [...], "metadatas": [...]} in row order
    vectors.safetensors   "vectors" [R_c, count, d] (vector-major) and, for int8, "scales" [R_c, count]

The safetensors file is streamed one vector slab at a time (no full copy of the index in memory) and hashed
as it is written. The whole folder is written through :func:`~metaembed_rag.atomic.atomic_directory`, so an
exception or a crash mid-save leaves the previous index in place, and a folder that is not an index is never
replaced. Loading checks format, sizes, hashes, shapes and that every vector is finite (also with
``mmap=True``, where the vectors are mapped from disk instead of read, so an index larger than RAM is
searchable), and refuses anything else with :class:`~metaembed_rag.errors.IndexFormatError`.

Example:
    >>> import tempfile, torch
    >>> from metaembed_rag.index import MultiVectorIndex
    >>> index = MultiVectorIndex(dim=8, stored_vectors=4)
    >>> index.add(["a"], torch.nn.functional.normalize(torch.randn(1, 4, 8), dim=-1), [{"page": 1}])
    >>> folder = tempfile.mkdtemp() + "/idx"
    >>> _ = index.save(folder)
    >>> len(MultiVectorIndex.load(folder, mmap=True))
    1
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..atomic import FolderKind, atomic_directory, parse_json, read_json, readable_folder, write_json_atomic
from ..errors import IndexFormatError
from .storage import StorageFormat

logger = logging.getLogger(__name__)

FORMAT_NAME = "metaembed_rag.MultiVectorIndex"
FORMAT_VERSION = 1
CONFIG_FILE = "index.json"
DOCUMENTS_FILE = "documents.json"
VECTORS_FILE = "vectors.safetensors"
INDEX_KIND = FolderKind("index folder", CONFIG_FILE, FORMAT_NAME)
"""How a saved index is recognised (and so may be replaced by a new save)."""

_SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int8: "I8",
}


@dataclass
class IndexData:
    """Everything a saved index holds, in memory (``values`` vector-major ``[R_c, count, d]``)."""

    dim: int
    stored_vectors: int
    storage: StorageFormat
    ids: list[str]
    metadatas: list[dict[str, Any]]
    values: torch.Tensor
    scales: torch.Tensor | None
    model_identity: dict[str, Any] | None


def _slabs(tensor: torch.Tensor) -> Iterator[bytes]:
    """The raw bytes of ``tensor`` in C order, one leading-axis slab at a time (no full copy)."""
    if tensor.ndim == 0 or tensor.shape[0] == 0:
        return
    for slab in tensor:
        flat = slab.detach().to("cpu").contiguous()
        yield flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Write ``tensors`` in the safetensors format, streaming; returns the file's SHA-256."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for chunk in (struct.pack("<Q", len(encoded)), encoded):
            handle.write(chunk)
            digest.update(chunk)
        for tensor in tensors.values():
            for chunk in _slabs(tensor):
                handle.write(chunk)
                digest.update(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(16 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def save_index(data: IndexData, path: str | os.PathLike) -> Path:
    """Write ``data`` to the folder ``path`` atomically (replacing a previous index there, nothing else)."""
    path = Path(path)
    with atomic_directory(path, INDEX_KIND) as staging:
        write_index(data, staging)
    logger.info("saved index of %d documents to %s", len(data.ids), path)
    return path


def write_index(data: IndexData, folder: Path) -> None:
    """Write the three index files into the (new, empty) folder ``folder``; ``index.json`` comes last."""
    count = len(data.ids)
    tensors = {"vectors": data.values}
    if data.scales is not None:
        tensors["scales"] = data.scales.to(torch.float32)
    vectors_sha = _write_safetensors(
        folder / VECTORS_FILE, tensors, {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
    )
    documents = json.dumps({"ids": data.ids, "metadatas": data.metadatas}, ensure_ascii=True).encode()
    with open(folder / DOCUMENTS_FILE, "wb") as handle:
        handle.write(documents)
        handle.flush()
        os.fsync(handle.fileno())
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "dim": data.dim,
        "stored_vectors": data.stored_vectors,
        "dtype": data.storage.name,
        "count": count,
        "layout": "vector-major [stored_vectors, count, dim]",
        "model": data.model_identity,
        "files": {
            VECTORS_FILE: {"bytes": (folder / VECTORS_FILE).stat().st_size, "sha256": vectors_sha},
            DOCUMENTS_FILE: {"bytes": len(documents), "sha256": hashlib.sha256(documents).hexdigest()},
        },
    }
    write_json_atomic(folder / CONFIG_FILE, config)


def _recover_folder(path: Path) -> Path:
    """``path``, or the previous index a writer moved aside mid-swap (:func:`~metaembed_rag.atomic.readable_folder`)."""
    found = readable_folder(path, INDEX_KIND)
    if found is None:
        raise IndexFormatError(f"no saved index at {path}")
    return found


def _read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise IndexFormatError(f"{folder} is not a saved MultiVectorIndex (no {CONFIG_FILE})")
    try:
        config = read_json(config_path)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{config_path} is not valid JSON (truncated or tampered): {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{config_path} does not describe a {FORMAT_NAME} folder")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise IndexFormatError(f"{config_path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"{folder} was written in index format version {version} by a newer metaembed_rag "
            f"({config.get('library_version', '?')}); this version ({__version__}) reads format {FORMAT_VERSION}. "
            "Upgrade metaembed_rag to load it."
        )
    for key in ("dim", "stored_vectors", "count"):
        if type(config.get(key)) is not int or config[key] < 0:
            raise IndexFormatError(f"{config_path}: {key!r} must be a non-negative integer")
    files = config.get("files")
    if not isinstance(files, dict) or not all(isinstance(files.get(n), dict) for n in (VECTORS_FILE, DOCUMENTS_FILE)):
        raise IndexFormatError(f"{config_path} lacks the file table (sizes and hashes)")
    return config


def _check_file(folder: Path, name: str, expected: dict[str, Any], verify: bool) -> Path:
    file = folder / name
    if not file.is_file():
        raise IndexFormatError(f"index file missing: {file}")
    size = file.stat().st_size
    if size != expected.get("bytes"):
        raise IndexFormatError(f"{file} has {size} bytes, {expected.get('bytes')} expected: truncated or tampered")
    if verify and _sha256(file) != expected.get("sha256"):
        raise IndexFormatError(f"{file} does not match its recorded SHA-256: the index was modified after saving")
    return file


def _mapped_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped (copy-on-write) rather than read."""
    with open(file, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise IndexFormatError(f"{file} is truncated")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > 100 * 1024 * 1024:
            raise IndexFormatError(f"{file} has a corrupt header (claims {header_len} bytes)")
        try:
            header = parse_json(handle.read(header_len), f"the header of {file}")
        except ValueError as exc:
            raise IndexFormatError(f"{file} has a corrupt header: {exc}") from exc
    if not isinstance(header, dict):
        raise IndexFormatError(f"{file} has a corrupt header (not a JSON object)")
    size = file.stat().st_size
    base = 8 + header_len
    by_code = {code: dtype for dtype, code in _SAFETENSORS_DTYPES.items()}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = by_code.get(info.get("dtype")) if isinstance(info, dict) else None
        if dtype is None:
            raise IndexFormatError(f"{file}: tensor {name!r} has an unsupported or missing dtype")
        try:
            start, stop = (int(v) for v in info["data_offsets"])
            shape = tuple(int(v) for v in info["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{file}: tensor {name!r} has a malformed entry ({exc})") from exc
        if min(shape, default=0) < 0 or not 0 <= start <= stop or base + stop > size:
            raise IndexFormatError(f"{file}: tensor {name!r} lies outside the file")
        if stop - start != int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size():
            raise IndexFormatError(f"{file}: tensor {name!r} size does not match its shape")
        if stop == start:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        array = np.memmap(file, dtype=np.uint8, mode="c", offset=base + start, shape=(stop - start,))
        tensors[name] = torch.from_numpy(array).view(dtype).view(shape)
    return tensors


def load_index(path: str | os.PathLike, *, mmap: bool = False, verify: bool = True) -> IndexData:
    """Read and check a saved index folder.

    ``verify`` checks the vectors file against its recorded SHA-256 (streamed, also with ``mmap``: a flipped
    bit is caught even where it leaves the size unchanged); every vector is checked to be finite either way.
    """
    folder = _recover_folder(Path(path))
    config = _read_config(folder)
    try:
        storage = StorageFormat.parse(config.get("dtype", ""))
    except ValueError as exc:
        raise IndexFormatError(f"{folder}: {exc}") from exc
    files = config["files"]
    documents_file = _check_file(folder, DOCUMENTS_FILE, files[DOCUMENTS_FILE], verify=True)
    vectors_file = _check_file(folder, VECTORS_FILE, files[VECTORS_FILE], verify=verify)
    try:
        documents = parse_json(documents_file.read_bytes(), str(documents_file))
        ids, metadatas = documents["ids"], documents["metadatas"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexFormatError(f"{documents_file} is not a valid documents file: {exc}") from exc
    count, dim, stored = config["count"], config["dim"], config["stored_vectors"]
    if not (isinstance(ids, list) and isinstance(metadatas, list) and len(ids) == len(metadatas) == count):
        raise IndexFormatError(f"{documents_file} does not list {count} documents")
    if len(set(ids)) != count or not all(isinstance(i, str) and i for i in ids):
        raise IndexFormatError(f"{documents_file} has duplicate or invalid ids")
    if not all(isinstance(m, dict) for m in metadatas):
        raise IndexFormatError(f"{documents_file}: every metadata entry must be an object")
    try:
        if mmap:
            tensors = _mapped_tensors(vectors_file)
        else:
            from safetensors.torch import load_file

            tensors = load_file(str(vectors_file))
    except IndexFormatError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise IndexFormatError(f"cannot read {vectors_file}: {exc}") from exc
    values = tensors.get("vectors")
    if values is None or tuple(values.shape) != (stored, count, dim) or values.dtype != storage.dtype:
        got = None if values is None else (tuple(values.shape), values.dtype)
        raise IndexFormatError(
            f"{vectors_file}: 'vectors' should be {storage.name} {(stored, count, dim)}, found {got}"
        )
    scales = tensors.get("scales")
    if storage.quantised and (
        scales is None or tuple(scales.shape) != (stored, count) or scales.dtype != torch.float32
    ):
        raise IndexFormatError(f"{vectors_file}: int8 index without valid 'scales' of shape {(stored, count)}")
    _check_finite_slabs(vectors_file, values)
    if storage.quantised:
        _check_finite_slabs(vectors_file, scales)
    return IndexData(
        dim=dim,
        stored_vectors=stored,
        storage=storage,
        ids=list(ids),
        metadatas=metadatas,
        values=values,
        scales=scales if storage.quantised else None,
        model_identity=config.get("model"),
    )


def _check_finite_slabs(file: Path, values: torch.Tensor) -> None:
    """Refuse NaN/Inf stored values, one slab at a time (bounded memory on the mmap path)."""
    if not values.is_floating_point() or values.numel() == 0:
        return
    rows = max(1, (64 << 20) // max(1, values[0].numel() * values.element_size()))
    for start in range(0, values.shape[0], rows):
        if not bool(torch.isfinite(values[start : start + rows]).all()):
            raise IndexFormatError(f"{file} holds NaN or infinite values: the file is damaged or was modified")


def read_index_config(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``index.json`` of a saved index (without reading the vectors)."""
    return _read_config(_recover_folder(Path(path)))
