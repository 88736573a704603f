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


def test_help_and_version_do_not_import_torch():
    probe = (
        "import sys\n"
        "from metaembed_rag.cli import main\n"
        "for argv in (['--help'], ['search', '--help'], ['train', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'fitz') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_search_arguments_are_checked_before_anything_loads(tmp_path, capsys):
    missing = str(tmp_path / "no-such-index")  # would fail to open: the options must be refused first
    assert main(["search", "q", "--index", missing, "--k", "10", "--cascade", "1,1:5"]) == 2
    assert "--cascade keeps 5 pages but --k asks for 10" in capsys.readouterr().err
    assert main(["search", "q", "--index", missing, "--budget", "2,4", "--cascade", "4,8:50"]) == 2
    assert "must not exceed --budget" in capsys.readouterr().err
    assert main(["search", "q", "--index", missing, "--budget", "9,x"]) == 2
    assert main(["search", "q", "--index", missing]) == 2
    assert "no index at" in capsys.readouterr().err


def test_progress_logs_lines_when_not_a_terminal(caplog):
    import logging

    from metaembed_rag.progress import LogProgress, progress

    bar = progress(10, "indexing", "page")  # pytest's stderr is not a terminal
    assert isinstance(bar, LogProgress)
    with (
        caplog.at_level(logging.INFO, logger="metaembed_rag.progress"),
        LogProgress(10, "indexing", "page", interval_s=0.0) as bar,
    ):
        bar.set_postfix_str("a.pdf")
        bar.update(4)
        bar.update(6)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("indexing: 4/10 pages so far") and "a.pdf" in lines[0]
    assert lines[-1].startswith("indexing: 10/10 pages done")
    silent = progress(5, "x", "page", enabled=False)
    with caplog.at_level(logging.INFO, logger="metaembed_rag.progress"):
        caplog.clear()
        with silent:
            silent.update(5)
    assert not caplog.records
