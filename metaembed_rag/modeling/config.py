"""The checkpoint configuration, stored as ``metaembed_config.json``.

Example:
    >>> cfg = MetaEmbedConfig(backbone="bert-base-uncased", family="bert", hidden_size=768)
    >>> MetaEmbedConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .._version import __version__
from ..atomic import FolderKind
from ..budget import MATRYOSHKA_GROUPS
from ..errors import CheckpointError

CONFIG_NAME = "metaembed_config.json"
META_TOKENS_NAME = "meta_tokens.safetensors"
PROJECTION_NAME = "projection.safetensors"
ADAPTER_DIR = "adapter"
PROCESSOR_DIR = "processor"
FORMAT_VERSION = 1
LAYOUT = "input;meta_query;meta_candidate"
CHECKPOINT_KIND = FolderKind("checkpoint", CONFIG_NAME, LAYOUT, format_key="layout")
"""How a MetaEmbed checkpoint folder is recognised (and so may be replaced by a new save)."""


@dataclass
class MetaEmbedConfig:
    """Everything needed to rebuild a :class:`~metaembed_rag.MetaEmbedModel` around its backbone."""

    backbone: str
    family: str
    hidden_size: int
    backbone_revision: str | None = None
    num_query_tokens: int = 16
    num_candidate_tokens: int = 64
    projection_dim: int | None = None
    query_prompt: str = "Query: "
    document_prompt: str = ""
    max_length: int = 512
    layout: str = LAYOUT
    trained_groups: list[list[int]] = field(default_factory=list)
    has_adapter: bool = False
    has_processor: bool = False
    name: str | None = None
    library_version: str = __version__
    format_version: int = FORMAT_VERSION

    @property
    def embedding_dim(self) -> int:
        """Dimension of the output vectors."""
        return self.projection_dim or self.hidden_size

    @property
    def groups(self) -> list[tuple[int, int]]:
        """Budgets trained with MMR, or the paper's groups that fit the token counts."""
        if self.trained_groups:
            return [tuple(g) for g in self.trained_groups]
        return [g for g in MATRYOSHKA_GROUPS if g[0] <= self.num_query_tokens and g[1] <= self.num_candidate_tokens]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["embedding_dim"] = self.embedding_dim
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetaEmbedConfig:
        if not isinstance(data, dict):
            raise CheckpointError("metaembed_config.json must hold a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint format version {version!r} is not supported by this metaembed_rag "
                f"(supports {FORMAT_VERSION}); upgrade metaembed-rag to read it"
            )
        known = {f.name for f in fields(cls)}
        missing = [n for n in ("backbone", "family", "hidden_size") if n not in data]
        if missing:
            raise CheckpointError(f"metaembed_config.json lacks required fields {missing}")
        config = cls(**{k: v for k, v in data.items() if k in known})
        if data.get("layout", LAYOUT) != LAYOUT:
            raise CheckpointError(f"unsupported token layout {data['layout']!r}; expected {LAYOUT!r}")
        return config
