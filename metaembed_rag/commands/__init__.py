"""Sub-commands of ``metaembed-rag``: one module each, with ``register(subparsers)``."""
