"""``LexicalIndex``: BM25 over whole page texts (through ``bm25s``), kept beside a multi-vector index.

The searcher keeps one next to its store and updates it on every add, upsert and delete, so a hybrid search
(:mod:`metaembed_rag.fusion`) can fuse the lexical ranking with the multi-vector one. Pages are scored whole
(not per window): BM25 already handles long texts through its length normalisation.

Tokens: lower-cased runs of letters and digits; a character of a script written without spaces (Chinese,
Japanese kana, Thai) is a token on its own, so such text is searchable too. No stemming, no stop words.

Persistence (no pickle): a folder with ``lexical.json`` (format, version, BM25 parameters, page ids, vocabulary)
and ``tokens.safetensors`` (every page's token ids as one int32 array plus int64 offsets). The BM25 matrix itself
is rebuilt from them on load (fast: bm25s builds it with a few sparse-matrix passes). The folder is derived data:
when it is missing or does not match the stored pages, the searcher rebuilds it from the pages' stored text.

Example:
    >>> lexical = LexicalIndex()
    >>> lexical.add(["a", "b"], ["the cat sat on the mat", "dogs chase cats"])
    >>> [page for page, _ in lexical.search("cat mat", k=2)]
    ['a']
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError, InvalidInputError, MissingDependencyError

logger = logging.getLogger(__name__)

FORMAT_NAME = "metaembed_rag.LexicalIndex"
FORMAT_VERSION = 1
CONFIG_FILE = "lexical.json"
TOKENS_FILE = "tokens.safetensors"

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0e7f]|[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """The lexical tokens of ``text``.

    Example:
        >>> tokenize("Hello, World! 東京 مرحبا 3.14")
        ['hello', 'world', '東', '京', 'مرحبا', '3', '14']
    """
    return [m.group(0).lower() for m in _TOKEN.finditer(text or "")]


def ids_digest(ids: Iterable[str]) -> str:
    """A short hash of a set of page ids (to check a saved lexical side matches its index)."""
    digest = hashlib.sha256()
    for doc_id in sorted(ids):
        digest.update(doc_id.encode("utf-8") + b"\0")
    return digest.hexdigest()[:32]


class LexicalIndex:
    """BM25 (Lucene variant by default) over page texts, with upserts and deletes.

    Args:
        k1, b: the BM25 parameters.
        method: a ``bm25s`` scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, method: str = "lucene") -> None:
        if not (isinstance(k1, (int, float)) and k1 > 0 and isinstance(b, (int, float)) and 0 <= b <= 1):
            raise InvalidInputError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1!r}, b={b!r}")
        self.k1, self.b, self.method = float(k1), float(b), str(method)
        self._vocab: dict[str, int] = {"": 0}
        self._docs: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()
        self._engine: Any = None
        self._order: list[str] = []

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._docs

    @property
    def ids(self) -> list[str]:
        return list(self._docs)

    def __repr__(self) -> str:
        return f"LexicalIndex(pages={len(self)}, vocabulary={len(self._vocab)}, method={self.method!r})"

    # ---------------------------------------------------------------------------------------------- writes
    def _token_ids(self, text: str, grow: bool) -> np.ndarray:
        ids = []
        for token in tokenize(text):
            index = self._vocab.get(token)
            if index is None:
                if not grow:
                    continue
                index = self._vocab[token] = len(self._vocab)
            ids.append(index)
        return np.asarray(ids, dtype=np.int32)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Insert or replace pages."""
        if len(ids) != len(texts):
            raise InvalidInputError(f"got {len(ids)} ids but {len(texts)} texts")
        with self._lock:
            for doc_id, text in zip(ids, texts, strict=True):
                self._docs.pop(doc_id, None)  # a replaced page moves to the end, as in the store
                self._docs[doc_id] = self._token_ids(text or "", grow=True)
            self._engine = None

    def delete(self, ids: Iterable[str]) -> None:
        """Remove pages (ids it does not hold are ignored: the store has checked them)."""
        with self._lock:
            for doc_id in ids:
                self._docs.pop(doc_id, None)
            self._engine = None

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()
            self._vocab = {"": 0}
            self._engine = None

    # ----------------------------------------------------------------------------------------------- reads
    def _built(self) -> tuple[Any, list[str]]:
        with self._lock:
            if self._engine is None and self._docs:
                try:
                    import bm25s
                    from bm25s.tokenization import Tokenized
                except ImportError as exc:  # pragma: no cover - a core dependency
                    raise MissingDependencyError("hybrid search needs bm25s (pip install bm25s)") from exc
                order = list(self._docs)
                corpus = Tokenized(ids=[self._docs[i].tolist() for i in order], vocab=dict(self._vocab))
                engine = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
                quiet = logging.getLogger("bm25s")
                level = quiet.level
                quiet.setLevel(logging.ERROR)
                try:
                    engine.index(corpus, show_progress=False)
                finally:
                    quiet.setLevel(level)
                self._engine, self._order = engine, order
            return self._engine, self._order

    def scores(self, query: str) -> tuple[list[str], np.ndarray]:
        """BM25 of every page for ``query``: ``(page ids, scores)`` in the same order."""
        engine, order = self._built()
        if engine is None:
            return [], np.zeros(0, dtype=np.float32)
        with self._lock:
            ids = self._token_ids(query, grow=False).tolist()
        if not ids:
            return order, np.zeros(len(order), dtype=np.float32)
        return order, np.asarray(engine.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best pages with a positive score, best first (ties keep insertion order)."""
        order, scores = self.scores(query)
        ranked = np.argsort(-scores, kind="stable")[:k]
        return [(order[i], float(scores[i])) for i in ranked if scores[i] > 0]

    def ranking(self, query: str) -> list[tuple[str, float]]:
        """Every page with a positive score, best first."""
        return self.search(query, k=len(self._docs))

    # ----------------------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the lexical side to the folder ``path`` atomically."""
        import torch
        from safetensors.torch import save_file

        from .atomic import FolderKind, atomic_directory, write_json_atomic

        path = Path(path)
        with self._lock:
            order = list(self._docs)
            arrays = [self._docs[i] for i in order]
            vocab = sorted(self._vocab, key=self._vocab.__getitem__)
        lengths = np.asarray([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(arrays).astype(np.int32) if arrays else np.zeros(0, dtype=np.int32)
        with atomic_directory(path, FolderKind("lexical index", CONFIG_FILE, FORMAT_NAME)) as staging:
            save_file(
                {"tokens": torch.from_numpy(flat), "offsets": torch.from_numpy(offsets)}, str(staging / TOKENS_FILE)
            )
            write_json_atomic(
                staging / CONFIG_FILE,
                {
                    "format": FORMAT_NAME,
                    "version": FORMAT_VERSION,
                    "k1": self.k1,
                    "b": self.b,
                    "method": self.method,
                    "ids": order,
                    "ids_sha256": ids_digest(order),
                    "vocabulary": vocab,
                },
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LexicalIndex:
        """Read a saved lexical side; a malformed one raises :class:`IndexFormatError`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from .atomic import read_format_file

        path = Path(path)
        config = read_format_file(path / CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, what="lexical index")
        try:
            arrays = load_file(str(path / TOKENS_FILE))
            lexical = cls(k1=config["k1"], b=config["b"], method=config["method"])
            ids, vocab = list(config["ids"]), list(config["vocabulary"])
            tokens, offsets = arrays["tokens"], arrays["offsets"]
        except (OSError, KeyError, TypeError, SafetensorError) as exc:
            raise IndexFormatError(f"the lexical index at {path} is damaged: {exc}") from exc
        if len(offsets) != len(ids) + 1 or (len(tokens) and int(tokens.max()) >= len(vocab)) or not vocab:
            raise IndexFormatError(f"the lexical index at {path} is inconsistent (ids, offsets and vocabulary)")
        lexical._vocab = {token: i for i, token in enumerate(vocab)}
        lexical._docs = {doc_id: tokens[offsets[i] : offsets[i + 1]].astype(np.int32) for i, doc_id in enumerate(ids)}
        return lexical
