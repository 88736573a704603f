"""Stored vector formats of the in-process index: float32, float16, bfloat16, or int8 with a scale per vector.

Vectors are kept vector-major, ``[R_c, rows, d]``: vector ``j`` of every document is one contiguous block, so
the budget prefix ``r_c`` is the contiguous slab ``[:r_c]`` and scoring never gathers strided rows.

int8 stores ``round(x / s)`` with ``s = max|x| / 127`` per vector; the reconstruction error per component is at
most ``s / 2`` (about 0.4 % of the largest component).

Example:
    >>> import torch
    >>> fmt = StorageFormat.parse("int8")
    >>> values, scales = fmt.encode(torch.ones(2, 4, 8) / 8 ** 0.5)
    >>> values.shape, values.dtype, scales.shape
    (torch.Size([4, 2, 8]), torch.int8, torch.Size([4, 2]))
    >>> fmt.decode(values, scales).shape
    torch.Size([2, 4, 8])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidInputError

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
}
_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class StorageFormat:
    """How vectors are stored: ``name`` is one of ``float32``, ``float16``, ``bfloat16``, ``int8``."""

    name: str

    @classmethod
    def parse(cls, value: str | torch.dtype | StorageFormat) -> StorageFormat:
        """Accept a name (``"bf16"``, ``"int8"`` …), a torch dtype, or a format."""
        if isinstance(value, StorageFormat):
            return value
        if isinstance(value, torch.dtype):
            for name, dtype in _DTYPES.items():
                if dtype == value:
                    return cls(name)
            raise InvalidInputError(f"unsupported storage dtype {value}; use one of {sorted(_DTYPES)}")
        if isinstance(value, str):
            name = _ALIASES.get(value.lower(), value.lower())
            if name in _DTYPES:
                return cls(name)
        raise InvalidInputError(f"unsupported storage dtype {value!r}; use one of {sorted(_DTYPES)}")

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.name]

    @property
    def quantised(self) -> bool:
        return self.name == "int8"

    @property
    def bytes_per_value(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    def bytes_per_document(self, vectors: int, dim: int) -> int:
        """Index bytes one document takes at ``vectors`` stored vectors (scales included)."""
        return vectors * dim * self.bytes_per_value + (vectors * 4 if self.quantised else 0)

    def encode(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[n, R, d]`` float embeddings -> vector-major ``[R, n, d]`` values and ``[R, n]`` scales (int8)."""
        major = embeddings.detach().to(torch.float32).transpose(0, 1)
        if not self.quantised:
            return major.to(self.dtype).contiguous(), None
        peak = major.abs().amax(dim=-1)
        scales = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
        values = torch.round(major / scales.unsqueeze(-1)).clamp_(-127, 127).to(torch.int8)
        return values.contiguous(), scales.contiguous()

    def decode(self, values: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        """Vector-major ``[R, n, d]`` values (and scales) -> document-major float32 ``[n, R, d]``."""
        out = values.to(torch.float32)
        if self.quantised:
            out = out * scales.to(torch.float32).unsqueeze(-1)
        return out.transpose(0, 1).contiguous()
