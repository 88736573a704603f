"""numba kernels behind :mod:`metaembed_rag.compiled_maxsim` (imported only when first used: numba is slow to import).

One kernel, compiled per storage dtype; ``_widen`` gives a stored vector the dot products can read as float32:
float32 and int8 as they are (int8 values are converted inside the dot products, exactly, which measured 1.1–1.25x
faster than widening into a buffer first; the per-vector scale multiplies each dot product), bfloat16 with its 16
bits shifted into the top of a float32 buffer (exact; numba has no scalar bit cast). Documents are processed in
blocks of ``BLOCK_DOCUMENTS`` spread over the threads; within a block, vector ``j`` of each document is loaded once
and dotted with the query rows four (then two, then one) at a time; the running maxima stay in a per-block array.
``fastmath`` is limited to reassociation and contraction (SIMD sums, FMA): no assumption about NaN or infinity,
since the maxima start at ``-inf``."""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .compiled_maxsim import BLOCK_DOCUMENTS

_FASTMATH = {"reassoc", "contract"}


def _widen(vectors, j, doc, scratch_bits, scratch):
    """Vector ``j`` of document ``doc``, readable as float32 (typed per storage dtype by the overload below)."""
    raise NotImplementedError  # only its numba overload runs


@overload(_widen, inline="always")
def _widen_overload(vectors, j, doc, scratch_bits, scratch):
    if vectors.dtype == types.float32:

        def widen_float32(vectors, j, doc, scratch_bits, scratch):
            return vectors[j, doc]

        return widen_float32
    if vectors.dtype == types.int16:  # bfloat16 bits

        def widen_bfloat16(vectors, j, doc, scratch_bits, scratch):
            source = vectors[j, doc]
            for k in range(source.shape[0]):
                scratch_bits[k] = np.uint32(np.uint16(source[k])) << np.uint32(16)
            return scratch

        return widen_bfloat16
    if vectors.dtype == types.int8:

        def widen_int8(vectors, j, doc, scratch_bits, scratch):
            return vectors[j, doc]

        return widen_int8
    return None


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def maxsim_kernel(queries, vectors, scales, scaled, n, r_q, out):
    """``out[q, doc] = Σ_i max_j <queries[i], widen(vectors[j, doc])> · scale`` over rows ``i`` of query ``q``."""
    rows, dim = queries.shape
    r_c = vectors.shape[0]
    n_q = rows // r_q
    blocks = (n + BLOCK_DOCUMENTS - 1) // BLOCK_DOCUMENTS
    for block in prange(blocks):
        first = block * BLOCK_DOCUMENTS
        width = min(n, first + BLOCK_DOCUMENTS) - first
        best = np.full((rows, BLOCK_DOCUMENTS), -np.inf, dtype=np.float32)
        scratch_bits = np.empty(dim, np.uint32)
        scratch = scratch_bits.view(np.float32)
        for j in range(r_c):
            for b in range(width):
                vec = _widen(vectors, j, first + b, scratch_bits, scratch)
                scale = scales[j, first + b] if scaled else np.float32(1.0)
                i = 0
                while i + 4 <= rows:
                    s0 = np.float32(0.0)
                    s1 = np.float32(0.0)
                    s2 = np.float32(0.0)
                    s3 = np.float32(0.0)
                    for k in range(dim):
                        x = np.float32(vec[k])
                        s0 += queries[i, k] * x
                        s1 += queries[i + 1, k] * x
                        s2 += queries[i + 2, k] * x
                        s3 += queries[i + 3, k] * x
                    best[i, b] = max(best[i, b], s0 * scale)
                    best[i + 1, b] = max(best[i + 1, b], s1 * scale)
                    best[i + 2, b] = max(best[i + 2, b], s2 * scale)
                    best[i + 3, b] = max(best[i + 3, b], s3 * scale)
                    i += 4
                if i + 2 <= rows:
                    s0 = np.float32(0.0)
                    s1 = np.float32(0.0)
                    for k in range(dim):
                        x = np.float32(vec[k])
                        s0 += queries[i, k] * x
                        s1 += queries[i + 1, k] * x
                    best[i, b] = max(best[i, b], s0 * scale)
                    best[i + 1, b] = max(best[i + 1, b], s1 * scale)
                    i += 2
                if i < rows:
                    s0 = np.float32(0.0)
                    for k in range(dim):
                        s0 += queries[i, k] * np.float32(vec[k])
                    best[i, b] = max(best[i, b], s0 * scale)
        for q in range(n_q):
            for b in range(width):
                total = np.float32(0.0)
                for i in range(q * r_q, (q + 1) * r_q):
                    total += best[i, b]
                out[q, first + b] = total
