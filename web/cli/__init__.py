"""The ``lookalike`` command line: every command, registered here, and the console entry point.

Commands only parse options, call ``indexer``/``search`` (``serve`` the
web app) and print; the work lives in those rooms, shared with the web
API. The group is assembled in this one module from the commands of its
siblings, so what it holds never depends on which module was imported first.
"""
from __future__ import annotations

from pathlib import Path

import click

from indexer.settings import Settings

from . import collection, serving, tools, training
from .context import Context, unwritable_data_dir


class Lookalike(click.Group):
    """The command group; a data dir that cannot take a write ends any command with the one
    sentence that says so (and exit status 2), never a traceback."""

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


COMMANDS = (
    training.train, collection.index, collection.search, training.eval_command, collection.stats,
    collection.check, collection.demo, collection.remove, collection.exclusions,
    collection.reindex, tools.denoise, tools.anomalies, tools.compress, tools.decompress,
    tools.sample, tools.interpolate_cmd, tools.arithmetic_cmd, tools.duplicates, serving.serve,
)
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli()
