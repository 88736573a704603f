"""The public names: ``__all__`` is what ``metaembed_rag`` exports, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import metaembed_rag


def test_every_name_in_all_resolves():
    for name in metaembed_rag.__all__:
        assert getattr(metaembed_rag, name) is not None, name
    assert set(metaembed_rag.__all__) <= set(dir(metaembed_rag))


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchThing"):
        metaembed_rag.NoSuchThing  # noqa: B018


def test_importing_the_package_loads_no_heavy_module():
    code = (
        "import sys, metaembed_rag\n"
        "metaembed_rag.Budget.parse('8,16')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'pymupdf', 'langchain_core', 'llama_index')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_lazy_names_load_on_first_use():
    code = (
        "import sys, metaembed_rag\n"
        "assert 'metaembed_rag.index.memory' not in sys.modules\n"
        "index = metaembed_rag.MultiVectorIndex(dim=4, stored_vectors=2)\n"
        "print('metaembed_rag.index.memory' in sys.modules, len(index))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True 0"
