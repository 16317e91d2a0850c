"""Console entry point: the indexer's commands plus ``serve``."""
from __future__ import annotations

import click
from click.core import ParameterSource

from indexer.cli import cli


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves the whole network.")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="0 picks a free port.")
@click.option("--threads", type=click.IntRange(1), default=4, show_default=True,
              help="Requests handled at once.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """Serve the search page and JSON API with waitress, a production WSGI server.

    Settings come from instance/config.py and LOOKALIKE_* environment
    variables; --data-dir, when given, overrides them.
    """
    from waitress import create_server

    from web import create_app

    overrides = {}
    root = ctx.find_root()
    if root.get_parameter_source("data_dir") not in (None, ParameterSource.DEFAULT):
        overrides["LOOKALIKE_DATA_DIR"] = str(ctx.obj.data_dir)
    app = create_app(overrides)
    backend = app.extensions["lookalike"]
    message = backend.readiness()  # loads the model now, not on the first request
    server = create_server(app, host=host, port=port, threads=threads)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Lookalike serving {backend.data_dir} at http://{shown}:{server.effective_port}/")
    if message:
        click.echo(f"not ready yet: {message}", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        backend.close()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
