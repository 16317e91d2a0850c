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
    server = create_server(app, host=host, port=port, threads=threads,
                           **server_limits(app.config.get("MAX_CONTENT_LENGTH")))
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


def server_limits(max_content_length: int | None) -> dict[str, int]:
    """waitress's cap on a request body, and how much of one it keeps in memory.

    waitress reads a whole body before the app runs, by default up to
    1 GiB, so without a cap near the app's limit any client could make it
    store a gigabyte per connection only to be told 413. The cap is twice
    ``MAX_CONTENT_LENGTH``: bodies up to that still get the app's JSON 413,
    longer ones waitress's plain-text 413 as soon as it sees they are too
    long. Bodies under the cap stay in memory (waitress would spool those
    over 512 KB to a temp file), because uploads must never touch the disk;
    the price is up to twice the limit in RAM per connection uploading.
    """
    if not max_content_length:
        return {}
    cap = 2 * max_content_length
    return {"max_request_body_size": cap, "inbuf_overflow": cap}


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
