"""A compiled CPU MaxSim kernel over vector-major storage (float32, bfloat16, int8), through numba.

Torch answers one query's MaxSim with a few matrix products whose shapes (2–16 query rows against thousands of
documents) suit general GEMM poorly: it reaches 20–60 % of the machine's floor. This kernel streams each stored
vector once from memory and, while it sits in L1, takes its dot products with the query rows in register blocks
(4 rows × 3 documents: 12 running sums per step, written as LLVM vector code in :mod:`._maxsim_kernels`), keeping
the running maximum of every (query row, document) pair of a block of documents in cache; the sum over query
vectors follows per block. bfloat16 vectors are widened to float32 inside the loop (exactly, by a 16-bit shift),
int8 too (exactly, then the per-vector scale), so compressed storage reads 2–4x fewer bytes *and* multiplies at
the float32 rate: faster than float32 storage where reading bounds a search, as fast where arithmetic does.

Products and sums are float32; the sum of each dot product is reassociated into SIMD lanes (as any BLAS does),
so scores match :func:`~metaembed_rag.scoring.maxsim_vector_major`'s torch path to float32 rounding (a few ulp),
not bit for bit. Figures: ``benchmarks/results/scoring.md``.

The kernel compiles on first use (3–4 s per storage dtype) into numba's on-disk cache; a later process
pays about 0.5 s at its first search to import numba and load it. Calls are serialised by a lock (each
already uses the torch thread count), because numba's default thread pool must not be entered from two threads
at once. :func:`available` is ``False`` when numba cannot be imported or ``METAEMBED_CPU_KERNEL=torch``;
callers then use the torch path.

Example:
    >>> import torch
    >>> v = torch.nn.functional.normalize(torch.randn(4, 300, 8), dim=-1)
    >>> q = torch.nn.functional.normalize(torch.randn(2, 3, 8), dim=-1)
    >>> if available():
    ...     got = maxsim_compiled(q.reshape(6, 8), v, None, n_q=2, r_q=3)
    ...     want = torch.einsum("id,jnd->jin", q.reshape(6, 8), v).amax(0).view(2, 3, 300).sum(1)
    ...     assert torch.allclose(got, want, atol=1e-5)
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time

import torch

from .errors import InvalidInputError

logger = logging.getLogger(__name__)

KERNEL_ENV = "METAEMBED_CPU_KERNEL"
"""Environment variable: ``auto`` (the compiled kernel where numba imports, the default) or ``torch``."""

BLOCK_BYTES = 64 * 1024
"""Bytes of running maxima (``documents × query rows`` float32) per block of documents: they stay in L2 while the
block's vectors stream past, one sequential run per prefix position (blocks of 128 documents measured up to 7 %
slower for float32 storage; the number of blocks is rounded to a multiple of the threads)."""

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.int8)

MIN_AUTO_VALUES = 1 << 20
"""Stored values (``r_c·n·d``) from which ``strategy="auto"`` picks this kernel: below (about 4 MB of float32),
torch answers in about a millisecond, less than a process pays once to import numba and load the kernel
(0.5 s, ``benchmarks/results/cold_start.md``), so small one-off searches (a CLI call over a few pages) do not pay it."""

MAX_AUTO_ROWS = 256
"""Query vectors (``n_q·r_q``) up to which ``strategy="auto"`` picks this kernel: above, torch's GEMM is as fast
(measured, 32 queries over 10k × 384, this kernel's time / torch's: 0.23–0.99 up to 256 query vectors for
every storage dtype; at 512, 0.90 for float32, 1.05 for bfloat16 and 1.06 for int8;
``benchmarks/results/scoring_kernel_choice.md``)."""

MAX_AUTO_QUERY_VALUES = 256 * 1024
"""...and, for float32 storage, up to this many query values (``n_q·r_q·d``, 1 MiB): every stored vector is
dotted with all query rows, which then no longer stay in L2 (32 queries over 10k × 3584 in float32: 0.36–0.73
of torch's time up to 64 query vectors, 1.02 at 128, 1.09 at 256). bfloat16 and int8 storage have no such
limit: torch converts them to float32 first, which costs more (there, at 128 and 256 query vectors, this
kernel's time / torch's: bfloat16 0.82 and 0.78, int8 0.98 and 0.97)."""

_LOCK = threading.Lock()


def kernel_mode() -> str:
    """``auto`` or ``torch``, from ``METAEMBED_CPU_KERNEL`` (default ``auto``)."""
    mode = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "torch"):
        raise InvalidInputError(f"{KERNEL_ENV} must be auto or torch, got {mode!r}")
    return mode


@functools.lru_cache(maxsize=1)
def _numba_importable() -> bool:
    try:
        import numba  # noqa: F401
    except Exception as error:  # an ImportError, or numba refusing this numpy version
        logger.info("numba unavailable (%s): MaxSim on the CPU uses torch matrix products", error)
        return False
    return True


def available() -> bool:
    """Whether the compiled kernel is used for CPU MaxSim (numba importable and not switched off)."""
    return kernel_mode() == "auto" and _numba_importable()


def preferred(vectors: torch.Tensor, query_rows: int) -> bool:
    """Whether ``strategy="auto"`` scores ``vectors`` ``[r_c, n, d]`` with this kernel for ``query_rows`` query
    vectors in all: enough stored values to be worth loading it, few enough query vectors to beat GEMM."""
    query_values = query_rows * vectors.shape[-1]
    in_cache = vectors.dtype != torch.float32 or query_values <= MAX_AUTO_QUERY_VALUES
    few_queries = query_rows <= MAX_AUTO_ROWS and in_cache
    return vectors.numel() >= MIN_AUTO_VALUES and few_queries and supports(vectors)


def supports(vectors: torch.Tensor) -> bool:
    """Whether ``vectors`` can go through the kernel: on the CPU, float32 / bfloat16 / int8, and :func:`available`."""
    return vectors.device.type == "cpu" and vectors.dtype in SUPPORTED_DTYPES and available()


@functools.lru_cache(maxsize=1)
def _kernel():
    started = time.perf_counter()
    from ._maxsim_kernels import maxsim_kernel

    logger.debug("compiled MaxSim kernel imported in %.2f s", time.perf_counter() - started)
    return maxsim_kernel


def warm_up(dtype: torch.dtype) -> None:
    """Import numba and load (the first time on a machine: compile) the kernel for storage ``dtype``.

    A search does this itself at its first call; a process that knows a search will follow can do it earlier
    in a thread, while it loads a model (:func:`warm_up_in_background`). No-op where the kernel is unavailable.
    """
    if dtype not in SUPPORTED_DTYPES or not available():
        return
    vectors = torch.zeros(1, 1, 1).to(dtype)
    maxsim_compiled(torch.zeros(1, 1), vectors, torch.ones(1, 1) if dtype == torch.int8 else None, n_q=1, r_q=1)


def warm_up_in_background(dtype: torch.dtype) -> threading.Thread:
    """:func:`warm_up` in a daemon thread (started, returned); a failure is logged, the search then loads it."""

    def work() -> None:
        started = time.perf_counter()
        try:
            warm_up(dtype)
        except Exception:  # the search itself will raise it, with its own context
            logger.warning("loading the compiled MaxSim kernel in the background failed", exc_info=True)
            return
        logger.debug("compiled MaxSim kernel ready for %s in %.2f s", dtype, time.perf_counter() - started)

    thread = threading.Thread(target=work, name="metaembed-kernel-warm-up", daemon=True)
    thread.start()
    return thread


def _as_numpy(tensor: torch.Tensor):
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy()
    return tensor.numpy()


def _row_major_base(tensor: torch.Tensor) -> torch.Tensor:
    """A C-contiguous tensor whose first ``n`` rows (axis 1) are ``tensor`` ``[R, n]`` or ``[R, n, d]``.

    No copy when ``tensor`` is the first ``n`` rows of a longer contiguous buffer (the index's snapshot case):
    the view then covers the whole buffer and the kernel is told ``n``. The kernel needs contiguous arrays for
    its SIMD code. Anything else is copied.
    """
    if tensor.is_contiguous():
        return tensor
    row = tensor.shape[2] if tensor.ndim == 3 else 1
    inner = (row, 1) if tensor.ndim == 3 else (1,)
    stride0 = tensor.stride(0)
    if tuple(tensor.stride()[1:]) == inner and stride0 % row == 0 and stride0 // row >= tensor.shape[1]:
        rows = stride0 // row
        end = (tensor.storage_offset() + tensor.shape[0] * stride0) * tensor.element_size()
        if end <= tensor.untyped_storage().nbytes():
            shape = (tensor.shape[0], rows, *tensor.shape[2:])
            return torch.as_strided(tensor, shape, (stride0, *inner))
    return tensor.contiguous()


def maxsim_compiled(
    flat_queries: torch.Tensor,
    vectors: torch.Tensor,
    scales: torch.Tensor | None,
    *,
    n_q: int,
    r_q: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """MaxSim ``[n_q, n]`` of ``flat_queries`` ``[n_q·r_q, d]`` against vector-major ``vectors`` ``[r_c, n, d]``.

    ``vectors`` are the budget's prefix already (every one of the ``r_c`` is used); ``scales`` ``[r_c, n]`` are
    int8's per-vector factors. Raw sums (not divided by ``r_q``), written into ``out`` (a contiguous float32
    ``[n_q, n]`` CPU tensor) when given.
    """
    if not supports(vectors):
        raise InvalidInputError(
            f"the compiled kernel takes CPU float32/bfloat16/int8 vectors with numba available, got {vectors.dtype} "
            f"on {vectors.device}"
        )
    n, dim = vectors.shape[1:]
    if flat_queries.shape != (n_q * r_q, dim):
        raise InvalidInputError(f"queries must be [{n_q * r_q}, {dim}], got {tuple(flat_queries.shape)}")
    if (vectors.dtype == torch.int8) != (scales is not None):
        raise InvalidInputError("int8 vectors need their per-vector scales, and only int8 vectors take scales")
    if out is None:
        out = torch.empty(n_q, n, dtype=torch.float32)
    elif out.shape != (n_q, n) or out.dtype != torch.float32 or out.device.type != "cpu" or not out.is_contiguous():
        raise InvalidInputError(f"out must be a contiguous float32 CPU tensor [{n_q}, {n}], got {tuple(out.shape)}")
    if n == 0 or n_q == 0:
        return out
    queries = flat_queries.to(device="cpu", dtype=torch.float32).contiguous()
    base = _row_major_base(vectors)
    scale_array = torch.ones(1, 1) if scales is None else _row_major_base(scales.to(torch.float32))
    kernel = _kernel()
    import numba

    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    with _LOCK:
        numba.set_num_threads(threads)
        kernel(queries.numpy(), _as_numpy(base), scale_array.numpy(), n, r_q, threads, out.numpy())
    return out
