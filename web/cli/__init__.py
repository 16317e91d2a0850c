"""The ``lookalike`` command line: every command, named here, and the console entry point.

Commands only parse options, call ``indexer``/``search`` (``serve`` the
web app) and print; the work lives in those rooms, shared with the web
API. The group names every command in this one module, so what it holds never
depends on which module was imported first, and imports a command's module only
when that command runs (click's lazy group): ``lookalike stats`` loads no web
framework and no torch, ``lookalike serve`` loads Flask.
"""
from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

import click

from search.settings import Settings

from .context import Context, unwritable_data_dir

# name → "module:function" of each command, its module relative to this package.
COMMANDS = {
    "train": "training:train", "eval": "training:eval_command",
    "index": "collection:index", "search": "searching:search", "demo": "collection:demo",
    "stats": "catalog:stats", "check": "collection:check", "remove": "catalog:remove",
    "exclusions": "catalog:exclusions", "reindex": "collection:reindex",
    "denoise": "tools:denoise", "anomalies": "tools:anomalies", "compress": "tools:compress",
    "decompress": "tools:decompress", "sample": "tools:sample",
    "interpolate": "tools:interpolate_cmd", "arithmetic": "tools:arithmetic_cmd",
    "duplicates": "duplicates:duplicates", "serve": "serving:serve", "trash": "catalog:trash",
    "watch": "watching:watch",
}


class Lookalike(click.Group):
    """The command group; a data dir that cannot take a write ends any command with the one
    sentence that says so (and exit status 2), never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, name = COMMANDS[cmd_name].partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``lookalike --help``'s list, from each command's docstring read as text: importing
        every command's module to ask it would load torch and Flask, three seconds."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, click.Command(name, help=docstring(name)).get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            settings = getattr(ctx.obj, "settings", None)
            # A command may have said it already, as a ClickException: its cause decides.
            cause = exc.__cause__ if isinstance(exc, click.ClickException) else exc
            known = unwritable_data_dir(cause, settings.database_url if settings else None)
            if known is None:
                raise
            raise known from exc


def docstring(name: str) -> str:
    """The docstring of command *name*'s function, read from its module's source."""
    module, _, function = COMMANDS[name].partition(":")
    return docstrings_of(module)[function]


@functools.cache
def docstrings_of(module: str) -> dict[str, str]:
    """Each top-level function's docstring in this package's *module*, parsed once (one
    module holds up to seven commands)."""
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    return {node.name: ast.get_docstring(node) or "" for node in tree.body
            if isinstance(node, ast.FunctionDef)}


@click.group(cls=Lookalike)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the catalog, index and model live [default: $LOOKALIKE_DATA_DIR, "
                   "instance/config.py's, or lookalike-data].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or chatter; results only.")
@click.version_option(package_name="lookalike")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path, quiet: bool) -> None:
    """Lookalike: find images that look like this one, with a model trained on your collection."""
    overrides = {"LOOKALIKE_DATA_DIR": str(data_dir)} if data_dir is not None else {}
    try:
        settings = Settings.load(overrides)
    except (ValueError, OSError, SyntaxError) as exc:
        raise click.ClickException(f"bad settings: {exc}") from exc
    ctx.obj = Context(settings, quiet)


def main() -> None:
    cli()
