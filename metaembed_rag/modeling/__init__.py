"""The MetaEmbed encoder, its checkpoint format and its backbone families."""

from .config import MetaEmbedConfig
from .model import MetaEmbedModel, PreparedBatch

__all__ = ["MetaEmbedConfig", "MetaEmbedModel", "PreparedBatch"]
