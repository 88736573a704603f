"""BM25 as Qdrant sparse vectors: the page side holds the term-frequency part, Qdrant's IDF modifier the rest.

The score of a page for a query is then, as in :class:`metaembed_rag.lexical.LexicalIndex` (bm25s, Lucene
variant), ``sum_t count_q(t) * idf(t) * tf / (tf + k1 * (1 - b + b * len / avg_tokens))`` with
``idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))`` computed by Qdrant over the points that have the vector.
Tokens are those of :func:`metaembed_rag.lexical.tokenize`; a token's dimension is a 32-bit hash of it, so no
vocabulary is stored (two distinct tokens sharing a hash, rare among 2**32 dimensions, count as one).

Example:
    >>> q = query_vector("cat cat mat")
    >>> sorted(q.values)
    [1.0, 2.0]
    >>> page = page_vector("the cat sat on the mat", k1=1.2, b=0.75, avg_tokens=6)
    >>> len(page.indices), round(max(page.values), 3)
    (5, 0.625)
"""

from __future__ import annotations

import hashlib
from collections import Counter

from ...lexical import tokenize
from .schema import Sparse


def token_index(token: str) -> int:
    """The sparse dimension of a token: the first 4 bytes of its BLAKE2b hash (stable across runs).

    Example:
        >>> token_index("cat") == token_index("cat") != token_index("cats")
        True
    """
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def _counts(text: str) -> tuple[Counter[int], int]:
    tokens = tokenize(text)
    return Counter(token_index(t) for t in tokens), len(tokens)


def token_count(text: str) -> int:
    """How many BM25 tokens ``text`` has."""
    return len(tokenize(text))


def page_vector(text: str, *, k1: float, b: float, avg_tokens: float) -> Sparse | None:
    """The page side of BM25 for ``text`` (``None`` when it has no token)."""
    counts, length = _counts(text)
    if not counts:
        return None
    norm = k1 * (1 - b + b * length / avg_tokens)
    indices = sorted(counts)
    return Sparse(tuple(indices), tuple(counts[i] / (counts[i] + norm) for i in indices))


def query_vector(text: str) -> Sparse | None:
    """The query side: each token's count in the query (``None`` when it has no token)."""
    counts, _ = _counts(text)
    if not counts:
        return None
    indices = sorted(counts)
    return Sparse(tuple(indices), tuple(float(counts[i]) for i in indices))
