import subprocess
import sys

from metaembed_rag import __version__
from metaembed_rag.cli import main


def test_version_and_help(capsys):
    assert main([]) == 0
    assert "metaembed-rag" in capsys.readouterr().out
    out = subprocess.run(
        [sys.executable, "-m", "metaembed_rag.cli", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"metaembed-rag {__version__}"
