"""Exact top-k MaxSim through a fast low-precision pass and a guaranteed float32 re-score.

On CPUs with native bfloat16 products (AVX512-BF16 or AMX), a bfloat16 GEMM with float32 accumulation runs
about 2.4× faster than the float32 one, and bfloat16 / int8 storage can be multiplied without converting it
to float32 first (int8 values are exact in bfloat16). Its scores are not exact, so they only *select*:

1. one pass over the index scores every document approximately, ``s̃``;
2. the best ``C`` documents per query by ``s̃`` are re-scored exactly (float32, the same function as
   :func:`~metaembed_rag.scoring.maxsim_vector_major`); ``τ`` is the ``k``-th best exact score among them;
3. every further document with ``s̃ ≥ τ - E`` is re-scored exactly too, where ``E`` is a proven bound on
   ``|s̃ - s|`` (below); the top ``k`` of the exact scores is returned.

A document left out has ``s ≤ s̃ + E < τ``, below ``k`` exactly scored ones: the result is the exact top-k
(up to float32 rounding, as the default path). The bound, per query vector ``q_i``, with ``u = 2⁻⁸`` the unit
roundoff of bfloat16 and ``c`` any stored vector: rounding ``q_i`` costs ``≤ u‖q_i‖‖c‖``, the float32 sum over
``d`` terms ``≤ d·2⁻²⁴‖q_i‖‖c‖``, rounding the product to bfloat16 ``≤ u(1+u)‖q_i‖‖c‖``; a maximum over
``j`` does not grow an error, and the sum over ``i`` adds them: ``E = (2.5u + 2d·2⁻²⁴)·max‖c‖·Σ_i ‖q_i‖``
(the 0.5u and the factor 2 are margin). ``max‖c‖`` is the largest stored vector norm, measured.

:func:`low_precision_mode` decides where this runs: ``auto`` (native bfloat16 CPUs, bfloat16/int8 storage;
int8 storage on x86 CPUs without the compiled kernel, below), or forced ``on`` / ``off`` with the environment
variable ``METAEMBED_LOW_PRECISION``. Where the CPU lacks native bfloat16 (AVX2 machines) bfloat16 GEMMs are
emulated and far slower, so ``auto`` keeps the exact float32 path for bfloat16 storage — and, where
:mod:`~metaembed_rag.compiled_maxsim` is available, for int8 storage too: its kernel reads int8 and multiplies
in float32 exactly, 1.6–4.8x faster than the two integer passes below at d = 384 and 1.6–2.8x at d = 3584
(``benchmarks/results/scoring_kernel_choice.md``).

**int8 storage through integer GEMM** (:func:`approximate_scores_int8`, CPUs without native bfloat16, used
where the compiled kernel is not — numba missing or ``METAEMBED_CPU_KERNEL=torch``, :func:`int8_path`): the
stored int8 vectors and their per-vector scales are exactly a per-channel quantised weight, so they are
prepacked once for FBGEMM (PyTorch's x86 quantised engine; AVX2 ``vpmaddubsw``) and each query is multiplied
as dynamically quantised 7-bit activations (``reduce_range``: no int16 saturation), with int32 accumulation,
in two passes: the query rounded onto a grid the quantiser reproduces exactly, then the residual. Only the
residual's rounding is left (``≤ s₂`` per component, ``s₂`` about 1/127 of the query's own step), so a product
is off by ``≤ s₂·‖c‖₁``: ``E = 1.01·r_q·s₂·max‖c‖₁`` plus float32 rounding (see
:func:`approximate_scores_int8`). The same threshold step then makes the top-k exact.

Example:
    >>> import torch
    >>> v = torch.nn.functional.normalize(torch.randn(4, 50, 8), dim=-1).transpose(0, 1).contiguous()
    >>> q = torch.nn.functional.normalize(torch.randn(2, 2, 8), dim=-1)
    >>> from metaembed_rag.scoring import maxsim_vector_major
    >>> values, rows, _ = exact_topk(q, v.bfloat16(), (2, 4), 3, max_norm=1.01)
    >>> exact = maxsim_vector_major(q, v.bfloat16(), (2, 4)).topk(3).indices
    >>> bool((rows == exact).all())
    True
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

from . import compiled_maxsim
from .budget import BudgetLike, resolve_budget
from .errors import InvalidInputError
from .scoring import maxsim_vector_major

MODE_ENV = "METAEMBED_LOW_PRECISION"
"""Environment variable: ``auto`` (default), ``on`` or ``off``."""

BF16_UNIT_ROUNDOFF = 2.0**-8
FP32_UNIT_ROUNDOFF = 2.0**-24
FIRST_CANDIDATES = 128
"""Documents per query re-scored exactly before the threshold step (at least ``4 k``)."""

SLICE_BYTES = 4 * 1024 * 1024
"""Bytes of the ``[r_c, rows, chunk]`` products of one approximate chunk (kept in cache)."""


@functools.lru_cache(maxsize=1)
def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux ``/proc/cpuinfo`` flags avx512_bf16 or amx_bf16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def low_precision_mode() -> str:
    """``auto``, ``on`` or ``off``, from ``METAEMBED_LOW_PRECISION`` (default ``auto``)."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise InvalidInputError(f"{MODE_ENV} must be auto, on or off, got {mode!r}")
    return mode


@functools.lru_cache(maxsize=1)
def int8_gemm_available() -> bool:
    """Whether PyTorch's x86 quantised engine (FBGEMM: dynamically quantised int8 linear) is usable here."""
    engines = torch.backends.quantized.supported_engines
    return ("fbgemm" in engines or "x86" in engines) and hasattr(torch.ops.quantized, "linear_dynamic")


def int8_path(vectors: torch.Tensor, r_q: int | None = None) -> bool:
    """Whether int8 ``vectors`` are selected by integer GEMM: no native bfloat16 CPU, FBGEMM available, and no
    compiled kernel (:mod:`~metaembed_rag.compiled_maxsim`), which is faster in every case measured (one query
    over 10k × 3584, its time / integer GEMM's: 0.41–0.62 from (1,1) to (8,16); 32 queries 0.36–0.58;
    ``benchmarks/results/scoring_kernel_choice.md``). ``r_q`` is accepted for the callers' symmetry."""
    if vectors.dtype != torch.int8 or native_bf16_cpu() or not int8_gemm_available():
        return False
    return not compiled_maxsim.supports(vectors)


def use_low_precision(vectors: torch.Tensor, documents: int, k: int, r_q: int | None = None) -> bool:
    """Whether an exhaustive top-``k`` over ``documents`` stored as ``vectors`` (``r_q`` query vectors, where
    known) should take this path."""
    mode = low_precision_mode()
    if mode == "off" or vectors.device.type != "cpu" or vectors.dtype not in (torch.bfloat16, torch.int8):
        return False
    if mode == "on":
        return True
    return (native_bf16_cpu() or int8_path(vectors, r_q)) and documents >= 8 * max(FIRST_CANDIDATES, 4 * k)


def max_vector_norm(
    vectors: torch.Tensor, scales: torch.Tensor | None, start: int = 0, stop: int | None = None, *, ord: int = 2
) -> float:
    """The largest L2 (or, with ``ord=1``, L1) norm among stored vectors ``[R, start:stop, d]`` (dequantised)."""
    stop = vectors.shape[1] if stop is None else stop
    best = 0.0
    step = max(1, (16 * 1024 * 1024) // max(1, vectors.shape[0] * vectors.shape[2] * 4))
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        norms = torch.linalg.vector_norm(vectors[:, lo:hi].to(torch.float32), ord=ord, dim=-1)
        if scales is not None:
            norms = norms * scales[:, lo:hi].to(torch.float32)
        if norms.numel():
            best = max(best, float(norms.max()))
    return best


def error_bound(queries: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``E`` per query (``[n_q]``, raw score units) for ``queries`` ``[n_q, r_q, d]`` (see the module doc)."""
    dim = queries.shape[-1]
    per_unit = 2.5 * BF16_UNIT_ROUNDOFF + 2 * dim * FP32_UNIT_ROUNDOFF
    norms = torch.linalg.vector_norm(queries.to(torch.float32), dim=-1).sum(dim=1)
    return norms * (per_unit * max_norm)


INT8_QUERY_LEVELS = 127
"""Quantisation steps of a query under ``reduce_range`` (7 bits), as FBGEMM's dynamic linear uses them."""


def _on_grid(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``flat`` rounded onto a 7-bit grid that FBGEMM's dynamic quantisation reproduces without loss: the grid
    ``s·(u - z)``, ``u = 0 … 127``, whose both ends are present (an extra row holds them), so the range FBGEMM
    measures gives back ``s`` and ``z``. Returns (the rounded rows, the input with the extra row, ``s``)."""
    low, high = min(float(flat.min()), 0.0), max(float(flat.max()), 0.0)
    step = (high - low) / INT8_QUERY_LEVELS if high > low else 1.0
    zero = round(-low / step)
    levels = torch.clamp(torch.round(flat / step) + zero, 0, INT8_QUERY_LEVELS)
    rounded = (levels - zero) * step
    ends = torch.zeros(1, flat.shape[1])
    ends[0, 0], ends[0, 1 % flat.shape[1]] = (INT8_QUERY_LEVELS - zero) * step, -zero * step
    return rounded, torch.cat([rounded, ends]), step


def _reproduced(values: torch.Tensor, rounded: torch.Tensor) -> bool:
    """Whether dynamic 7-bit quantisation (the routine FBGEMM's linear uses) keeps ``values``'s first rows
    exactly ``rounded``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        quantised = torch.quantize_per_tensor_dynamic(values, torch.quint8, True)
    return torch.equal(quantised.dequantize()[: rounded.shape[0]], rounded)


def pack_int8(vectors: torch.Tensor, scales: torch.Tensor, r_c: int, width: int) -> list[tuple[int, int, object]]:
    """Stored int8 vectors ``[R_c, n_c, d]`` with per-vector scales as FBGEMM weights: one packed block per
    ``width`` documents, rows ordered ``(vector, document)``; ``[(start, stop, packed)]``."""
    blocks = []
    n_c = vectors.shape[1]
    for start in range(0, n_c, width):
        stop = min(start + width, n_c)
        block = vectors[:r_c, start:stop].reshape(-1, vectors.shape[2])
        block_scales = scales[:r_c, start:stop].reshape(-1).to(torch.float64).clamp(min=1e-30)
        with warnings.catch_warnings():  # quantised tensors are deprecated in favour of torchao; still supported
            warnings.simplefilter("ignore", UserWarning)
            weight = torch._make_per_channel_quantized_tensor(
                block, block_scales, torch.zeros(block.shape[0], dtype=torch.long), 0
            )
            blocks.append((start, stop, torch.ops.quantized.linear_prepack(weight, None)))
    return blocks


INT8_BLOCK_DOCUMENTS = 2048
"""Documents per packed int8 block (its products, ``[n_q·r_q, r_c·2048]`` floats, stay in a few MB)."""


INT8_MAX_QUERY_ROWS = 16
"""Query vectors per search (``n_q · r_q``) up to which the int8 path is faster than float32: above it a float32
GEMM is as fast as two integer passes on AVX2 and the union of candidates grows (measured, ``scoring.md``)."""

INT8_PASSES = 2
"""Integer GEMM passes: the queries, then their residual (~127x finer; its rounding bounds the error)."""


def approximate_scores_int8(
    queries: torch.Tensor,
    packed: list[tuple[int, int, object]],
    n_c: int,
    r_q: int,
    r_c: int,
    *,
    max_l1: float,
    max_norm: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw MaxSim ``[n_q, n_c]`` from integer GEMM over :func:`pack_int8` blocks, and its error bound ``[n_q]``.

    All queries go through each block at once, in :data:`INT8_PASSES` passes: the queries on a 7-bit grid that
    FBGEMM reproduces exactly (checked), then their residual, quantised by FBGEMM itself. Only that last
    rounding (one step ``s`` per component) is left: ``E = 1.01·r_q·s·max‖c‖₁``, plus float32 rounding
    ``2·passes·d·2⁻²⁴·Σ‖q_i‖·max‖c‖₂``. A first pass that is not reproduced exactly adds its own step to ``s``
    (the bound stays correct, only looser). ``max_l1`` / ``max_norm``: the largest stored L1 / L2 norm.
    """
    n_q, dim = queries.shape[0], queries.shape[-1]
    flat = queries[:, :r_q].to(torch.float32).reshape(n_q * r_q, dim).contiguous()
    inputs, steps, left = [], 0.0, flat
    for _ in range(INT8_PASSES - 1):
        rounded, extended, step = _on_grid(left)
        inputs.append(extended)
        steps += 0.0 if _reproduced(extended, rounded) else step
        left = (left - rounded).contiguous()
    inputs.append(left)
    low, high = min(float(left.min()), 0.0), max(float(left.max()), 0.0)
    steps += (high - low) / INT8_QUERY_LEVELS
    out = torch.empty(n_q, n_c, dtype=torch.float32)
    rows = n_q * r_q
    for start, stop, weights in packed:
        products = torch.ops.quantized.linear_dynamic(inputs[0], weights, True)[:rows]
        for extra in inputs[1:]:
            products += torch.ops.quantized.linear_dynamic(extra, weights, True)[:rows]
        out[:, start:stop] = products.view(n_q, r_q, r_c, stop - start).amax(dim=2).sum(dim=1)
    norms = torch.linalg.vector_norm(flat, dim=-1).view(n_q, r_q).sum(dim=1)
    rounding = 2 * INT8_PASSES * dim * FP32_UNIT_ROUNDOFF * norms * max_norm
    return out, 1.01 * r_q * steps * max_l1 + rounding


def approximate_scores(
    queries: torch.Tensor, vectors: torch.Tensor, scales: torch.Tensor | None, r_q: int, r_c: int
) -> torch.Tensor:
    """Raw MaxSim ``[n_q, n_c]`` with bfloat16 products (float32 accumulation), one pass over ``vectors``."""
    n_q, dim = queries.shape[0], queries.shape[-1]
    n_c = vectors.shape[1]
    flat = queries[:, :r_q].reshape(n_q * r_q, dim).to(torch.bfloat16)
    rows = flat.shape[0]
    out = torch.empty(n_q, n_c, dtype=torch.float32)
    width = max(64, SLICE_BYTES // max(1, r_c * rows * 2))
    for start in range(0, n_c, width):
        stop = min(start + width, n_c)
        block = vectors[:r_c, start:stop]
        if block.dtype != torch.bfloat16:
            block = block.to(torch.bfloat16)  # int8 values are exact in bfloat16
        products = torch.matmul(flat, block.transpose(1, 2))  # [r_c, rows, w], bfloat16
        if scales is not None:
            best = (products.to(torch.float32) * scales[:r_c, None, start:stop]).amax(dim=0)
        else:
            best = products.amax(dim=0).to(torch.float32)
        torch.sum(best.view(n_q, r_q, stop - start), dim=1, out=out[:, start:stop])
    return out


def exact_topk(
    queries: torch.Tensor,
    vectors: torch.Tensor,
    budget: BudgetLike,
    k: int,
    *,
    scales: torch.Tensor | None = None,
    normalize: bool = False,
    max_norm: float | None = None,
    packed: list[tuple[int, int, object]] | None = None,
    max_l1: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The exact top-``k`` ``(values [n_q, k'], rows [n_q, k'], re-scored)`` over vector-major ``vectors``.

    ``k' = min(k, n_c)``; ``re-scored`` is how many documents were scored exactly (the rest only
    approximately). ``max_norm`` (the largest stored vector norm) is measured when not given. On the int8
    path (:func:`int8_path`), ``packed`` (:func:`pack_int8` at this budget's ``r_c``) and ``max_l1`` (the
    largest stored L1 norm) are made here when not given; callers that search often keep them.
    """
    b = resolve_budget(budget, max_query=queries.shape[1], max_candidate=vectors.shape[0])
    n_q, n_c = queries.shape[0], vectors.shape[1]
    k = min(k, n_c)
    if n_q == 0 or n_c == 0 or k == 0:
        empty = torch.empty(n_q, 0)
        return empty, empty.long(), 0
    queries = queries[:, : b.r_q].to(torch.float32)
    if int8_path(vectors, b.r_q) and scales is not None:
        if max_l1 is None:
            max_l1 = max_vector_norm(vectors[: b.r_c], scales[: b.r_c], ord=1)
        if max_norm is None:
            max_norm = max_vector_norm(vectors[: b.r_c], scales[: b.r_c])
        if packed is None:
            packed = pack_int8(vectors, scales, b.r_c, INT8_BLOCK_DOCUMENTS)
        approx, bound = approximate_scores_int8(queries, packed, n_c, b.r_q, b.r_c, max_l1=max_l1, max_norm=max_norm)
    else:
        if max_norm is None:
            max_norm = max_vector_norm(vectors[: b.r_c], scales[: b.r_c] if scales is not None else None)
        approx = approximate_scores(queries, vectors, scales, b.r_q, b.r_c)
        bound = error_bound(queries, max_norm)  # [n_q]
    first = min(n_c, max(FIRST_CANDIDATES, 4 * k))
    picked = approx.topk(first, dim=1).indices  # [n_q, first]
    union = torch.unique(picked)
    exact = _exact(queries, vectors, scales, b, union)  # [n_q, |union|]
    # tau: the k-th best exact score among each query's own first candidates
    position = torch.searchsorted(union, picked)
    own = exact.gather(1, position)
    tau = own.topk(k, dim=1).values[:, -1]
    needed = approx >= (tau - bound)[:, None]  # documents that could still beat tau
    needed[:, union] = False
    extra = needed.any(dim=0).nonzero().flatten()
    if extra.numel():
        union = torch.cat([union, extra])
        exact = torch.cat([exact, _exact(queries, vectors, scales, b, extra)], dim=1)
    values, columns = exact.topk(k, dim=1)
    rows = union[columns]
    # equal exact scores: lower row first, as the default path (torch.topk order is not specified for ties)
    order = torch.argsort(rows + 0, dim=1, stable=True)
    rows, values = rows.gather(1, order), values.gather(1, order)
    order = torch.argsort(-values, dim=1, stable=True)
    rows, values = rows.gather(1, order), values.gather(1, order)
    if normalize:
        values = values / b.r_q
    return values, rows, int(union.numel())


def _exact(queries, vectors, scales, budget, rows: torch.Tensor) -> torch.Tensor:
    picked = vectors[: budget.r_c].index_select(1, rows)
    picked_scales = scales[: budget.r_c].index_select(1, rows) if scales is not None else None
    return maxsim_vector_major(queries, picked, budget, scales=picked_scales)
