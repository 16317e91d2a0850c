"""What the command-line tests share: ``lookalike`` in process, through click's CliRunner.

The data they start from (``data_dir``, ``untrained_data_dir``, ``indexed``, ``collection``)
is set up through the library, in tests/conftest.py.
"""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from web.cli import cli


def invoke(data_dir: Path, *args: str):
    """``lookalike --data-dir DATA_DIR -q ARGS`` through click's CliRunner; its result.

    Exceptions the command does not turn into an exit status propagate.
    """
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "-q", *args],
                              catch_exceptions=False)


def run(data_dir: Path, *args: str, ok: bool = True):
    """:func:`invoke`, asserting exit status 0 unless *ok* is false."""
    result = invoke(data_dir, *args)
    if ok:
        assert result.exit_code == 0, result.output
    return result
