"""numba code behind :mod:`metaembed_rag.compiled_maxsim` (imported only when first used: numba is slow to import).

The inner loop is written by hand as LLVM vector code (numba intrinsics, :func:`_register_block`), because the
loop numba generates from Python leaves the CPU's multipliers idle: a block of 4 query rows × 3 stored vectors
keeps 12 running 8-lane sums in registers (enough independent sums to cover the multiply-add latency, while each
loaded vector feeds 3 or 4 of them), so a step issues 7 loads for 12 fused multiply-adds. Stored bfloat16 and int8
are widened inside that loop (a 16-bit shift, an integer conversion: both exact); the per-vector int8 scale
multiplies each finished dot product. Then the 12 sums are folded across lanes together (7 additions for 8 of
them) and merged into the running maxima. The first row block of each group prefetches the stored vectors two
groups ahead into L2, which is what keeps the memory stream busy (without it searches ran 1.3-2x slower).

Documents go in blocks spread over the threads, each block's running maxima (``[documents, query rows]``
float32, about ``BLOCK_BYTES``) staying in L2 while the block's vectors stream past once per prefix position.
``fastmath`` is limited to reassociation and contraction: no assumption about NaN or infinity, since the maxima
start at ``-inf``. Any change here recompiles (numba's cache is keyed on this file), so the intrinsics live here.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .compiled_maxsim import BLOCK_BYTES

_FASTMATH = {"reassoc", "contract"}
LANES = 8
"""float32 lanes of one vector register (AVX2; LLVM splits or joins them on other CPUs)."""
PREFETCH_GROUPS = 2
"""How many document groups ahead the first row block prefetches (measured best of 2, 4, 6, 8, 16 and 32)."""

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VECTOR = ir.VectorType(_F32, LANES)
_BYTE_POINTER = ir.IntType(8).as_pointer()
_STORAGE = {types.float32: (_F32, 4), types.int16: (ir.IntType(16), 2), types.int8: (ir.IntType(8), 1)}
"""Storage dtype → (LLVM element type, alignment). int16 holds bfloat16 bits."""


def _to_float32(builder, value, dtype, width):
    """A loaded storage value (a scalar, or a vector of ``width``) as float32, exactly."""
    if dtype == types.float32:
        return value
    as_int = _I32 if width == 1 else ir.VectorType(_I32, width)
    as_float = _F32 if width == 1 else ir.VectorType(_F32, width)
    if dtype == types.int16:  # bfloat16: the top half of a float32
        shift = ir.Constant(as_int, 16 if width == 1 else [16] * width)
        return builder.bitcast(builder.shl(builder.zext(value, as_int), shift), as_float)
    return builder.sitofp(builder.sext(value, as_int), as_float)


def _load_float32(builder, pointer, dtype, width):
    element, align = _STORAGE[dtype]
    if width == 1:
        return _to_float32(builder, builder.load(pointer), dtype, 1)
    vector = builder.bitcast(pointer, ir.VectorType(element, width).as_pointer())
    return _to_float32(builder, builder.load(vector, align=align), dtype, width)


def _fold_lanes(builder, vectors):
    """Lane sums of ``vectors`` (a multiple of 8 of them): result ``g`` holds the sums of ``vectors[8g : 8g + 8]``,
    in the lanes :func:`_folded_lanes` names. Each step adds the even and odd lanes of a pair of vectors."""
    even = ir.Constant(ir.VectorType(_I32, LANES), list(range(0, 2 * LANES, 2)))
    odd = ir.Constant(ir.VectorType(_I32, LANES), list(range(1, 2 * LANES, 2)))
    folded = []
    for group in range(0, len(vectors), LANES):
        level = vectors[group : group + LANES]
        while len(level) > 1:
            level = [
                builder.fadd(builder.shuffle_vector(a, b, even), builder.shuffle_vector(a, b, odd))
                for a, b in zip(level[::2], level[1::2], strict=True)
            ]
        folded.append(level[0])
    return folded


def _folded_lanes() -> list[int]:
    """Lane of :func:`_fold_lanes`' result holding the sum of its input vector ``k`` (0-7), by tracing labels."""
    level = [[k] * LANES for k in range(LANES)]
    while len(level) > 1:
        level = [(a + b)[::2] for a, b in zip(level[::2], level[1::2], strict=True)]
    return [level[0].index(k) for k in range(LANES)]


def _register_block(rows: int, docs: int, prefetch: int = 0):
    """An intrinsic ``block(queries, i, vectors, j, doc, best, b, scales)``: for query rows ``i + r`` (``r < rows``)
    and vector ``j`` of documents ``doc + c`` (``c < docs``), ``best[b + c, i + r] = max(best[b + c, i + r],
    <queries[i + r], vectors[j, doc + c]> · scale)``. With ``prefetch``, it also prefetches the same vector of the
    documents ``prefetch`` groups ahead into L2. Arrays are C-contiguous; the caller keeps indices in range."""

    @intrinsic
    def block(typingctx, queries, i, vectors, j, doc, best, b, scales):
        signature = types.void(queries, i, vectors, j, doc, best, b, scales)
        dtype = vectors.dtype
        lanes = _folded_lanes()

        def codegen(context, builder, sig, args):
            queries_arg, i, vectors_arg, j, doc, best_arg, b, scales_arg = args
            intp = context.get_value_type(types.intp)

            def at(base, offset):
                return builder.gep(base, [offset])

            def const(x):
                return ir.Constant(intp, x)

            q = context.make_array(sig.args[0])(context, builder, queries_arg)
            v = context.make_array(sig.args[2])(context, builder, vectors_arg)
            best = context.make_array(sig.args[5])(context, builder, best_arg)
            dim = cgutils.unpack_tuple(builder, q.shape, 2)[1]
            stored_per_position = cgutils.unpack_tuple(builder, v.shape, 3)[1]
            best_stride = cgutils.unpack_tuple(builder, best.shape, 2)[1]
            query_rows = [at(q.data, builder.mul(builder.add(i, const(r)), dim)) for r in range(rows)]
            first = builder.add(builder.mul(j, stored_per_position), doc)
            stored = [at(v.data, builder.mul(builder.add(first, const(c)), dim)) for c in range(docs)]
            ahead = [at(p, builder.mul(const(prefetch * docs), dim)) for p in stored] if prefetch else []
            zero = ir.Constant(_VECTOR, None)
            sums = [[cgutils.alloca_once_value(builder, zero) for _ in range(rows)] for _ in range(docs)]
            module = builder.module
            fma = cgutils.get_or_insert_function(module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), "llvm.fmuladd.v8f32")
            fma1 = cgutils.get_or_insert_function(module, ir.FunctionType(_F32, [_F32] * 3), "llvm.fmuladd.f32")
            prefetcher = cgutils.get_or_insert_function(
                module, ir.FunctionType(ir.VoidType(), [_BYTE_POINTER, _I32, _I32, _I32]), "llvm.prefetch.p0"
            )
            read, to_l2, data_cache = ir.Constant(_I32, 0), ir.Constant(_I32, 2), ir.Constant(_I32, 1)
            steps = builder.sdiv(dim, const(LANES))
            with cgutils.for_range(builder, steps) as loop:
                k = builder.mul(loop.index, const(LANES))
                columns = [_load_float32(builder, at(p, k), dtype, LANES) for p in stored]
                for p in ahead:
                    builder.call(prefetcher, [builder.bitcast(at(p, k), _BYTE_POINTER), read, to_l2, data_cache])
                for r in range(rows):
                    row = _load_float32(builder, at(query_rows[r], k), types.float32, LANES)
                    for c in range(docs):
                        builder.store(builder.call(fma, [row, columns[c], builder.load(sums[c][r])]), sums[c][r])
            vector_end = builder.mul(steps, const(LANES))
            lane0 = ir.Constant(_I32, 0)
            not_a_multiple = builder.icmp_signed("<", vector_end, dim)  # d % 8 values left: one at a time
            with (
                builder.if_then(not_a_multiple, likely=False),
                cgutils.for_range_slice(builder, vector_end, dim, const(1), inc=True) as (k, _),
            ):
                columns = [_load_float32(builder, at(p, k), dtype, 1) for p in stored]
                for r in range(rows):
                    value = builder.load(at(query_rows[r], k))
                    for c in range(docs):
                        total = builder.load(sums[c][r])
                        lane = builder.call(fma1, [value, columns[c], builder.extract_element(total, lane0)])
                        builder.store(builder.insert_element(total, lane, lane0), sums[c][r])
            flat = [builder.load(sums[c][r]) for c in range(docs) for r in range(rows)]
            folded = _fold_lanes(builder, flat + [zero] * (-len(flat) % LANES))
            if dtype == types.int8:
                s = context.make_array(sig.args[7])(context, builder, scales_arg)
                scale_first = builder.add(builder.mul(j, cgutils.unpack_tuple(builder, s.shape, 2)[1]), doc)
            value_type = _F32 if rows == 1 else ir.VectorType(_F32, rows)
            for c in range(docs):
                source = folded[c * rows // LANES]
                picks = [lanes[(c * rows + r) % LANES] for r in range(rows)]
                if rows == 1:
                    dots = builder.extract_element(source, ir.Constant(_I32, picks[0]))
                else:
                    dots = builder.shuffle_vector(source, source, ir.Constant(ir.VectorType(_I32, rows), picks))
                if dtype == types.int8:
                    scale = builder.load(at(s.data, builder.add(scale_first, const(c))))
                    if rows > 1:  # the same factor in every lane
                        scale = builder.shuffle_vector(
                            builder.insert_element(ir.Constant(value_type, None), scale, lane0),
                            ir.Constant(value_type, None),
                            ir.Constant(ir.VectorType(_I32, rows), [0] * rows),
                        )
                    dots = builder.fmul(dots, scale)
                slot = at(best.data, builder.add(builder.mul(builder.add(b, const(c)), best_stride), i))
                slot = builder.bitcast(slot, value_type.as_pointer())
                old = builder.load(slot, align=4)
                builder.store(builder.select(builder.fcmp_ordered(">", dots, old), dots, old), slot, align=4)
            return context.get_dummy_value()

        return signature, codegen

    return block


def _row_group(docs: int, widest: int):
    """All query rows against vector ``j`` of ``docs`` documents, in register blocks of ``widest`` (4, 2 or 1) rows
    then smaller ones for the rest; the first block prefetches. Needs ``rows >= widest``."""
    first = _register_block(widest, docs, PREFETCH_GROUPS)
    wide = _register_block(widest, docs)
    two = _register_block(2, docs)
    one = _register_block(1, docs)

    @njit(inline="always", fastmath=_FASTMATH)
    def group(queries, vectors, scales, j, doc, best, b):
        rows = queries.shape[0]
        first(queries, 0, vectors, j, doc, best, b, scales)
        i = widest
        while i + widest <= rows:
            wide(queries, i, vectors, j, doc, best, b, scales)
            i += widest
        if widest > 2 and i + 2 <= rows:
            two(queries, i, vectors, j, doc, best, b, scales)
            i += 2
        if widest > 1 and i < rows:
            one(queries, i, vectors, j, doc, best, b, scales)

    return group


_FOUR_ROWS = _row_group(3, 4)
"""4 rows × 3 documents: 12 sums (queries with 4 or more vectors)."""
_TWO_ROWS = _row_group(6, 2)
"""2 rows × 6 documents: 12 sums (2 or 3 query vectors)."""
_ONE_ROW = _row_group(8, 1)
"""1 row × 8 documents (one query vector)."""
_LEFTOVER = _row_group(1, 1)
"""The last documents of a block that fill no group."""


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def maxsim_kernel(queries, vectors, scales, n, r_q, threads, out):
    """``out[q, doc] = Σ_i max_j <queries[i], vectors[j, doc]> (· scales[j, doc] for int8)`` over rows ``i`` of
    query ``q``; ``vectors`` ``[r_c, ≥ n, d]`` (float32, bfloat16 bits as int16, int8), ``queries`` float32;
    ``threads`` as set for numba (blocks are a multiple of it)."""
    rows = queries.shape[0]
    r_c = vectors.shape[0]
    per_block = max(8, BLOCK_BYTES // (4 * rows))
    blocks = threads * ((n + threads * per_block - 1) // (threads * per_block))  # a multiple of the threads
    per_block = (n + blocks - 1) // blocks
    for block in prange(blocks):
        start = block * per_block
        width = max(0, min(n, start + per_block) - start)
        best = np.full((per_block, rows), -np.inf, dtype=np.float32)
        for j in range(r_c):
            b = 0
            if rows >= 4:
                while b + 3 <= width:
                    _FOUR_ROWS(queries, vectors, scales, j, start + b, best, b)
                    b += 3
            elif rows >= 2:
                while b + 6 <= width:
                    _TWO_ROWS(queries, vectors, scales, j, start + b, best, b)
                    b += 6
            else:
                while b + 8 <= width:
                    _ONE_ROW(queries, vectors, scales, j, start + b, best, b)
                    b += 8
            while b < width:
                _LEFTOVER(queries, vectors, scales, j, start + b, best, b)
                b += 1
        for q in range(rows // r_q):
            for b in range(width):
                total = np.float32(0.0)
                for i in range(q * r_q, (q + 1) * r_q):
                    total += best[b, i]
                out[q, start + b] = total
