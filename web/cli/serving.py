"""``lookalike serve``: the web app under waitress (``web.server``)."""
from __future__ import annotations

from dataclasses import replace

import click

from search.settings import LOOPBACK_HOSTS, Settings

from ..app import create_app
from ..security import trusted_hosts_for
from ..server import make_server
from ..watching import start_watching


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves the whole network.")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="0 picks a free port.")
@click.option("--threads", type=click.IntRange(1), default=4, show_default=True,
              help="Requests handled at once.")
@click.option("--watch", is_flag=True,
              help="Keep the collection current: index new, changed, moved and deleted files "
                   "as they come (a scan every LOOKALIKE_WATCH_INTERVAL seconds, sooner on "
                   "file events), as `lookalike watch` does.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int, watch: bool) -> None:
    """Serve the search page and JSON API with waitress, a production WSGI server.

    Settings come from instance/config.py and LOOKALIKE_* environment
    variables; --data-dir, when given, overrides them.
    """
    hosts = trusted_hosts_for(host, ctx.obj.settings.trusted_hosts)
    settings = replace(ctx.obj.settings, trusted_hosts=hosts or ("*",))
    app = create_app(settings=settings)
    _warn_about_exposure(host, hosts, settings)
    backend = app.extensions["lookalike"]
    message = backend.readiness()  # loads the model now, not on the first request
    server = make_server(app, host, port, threads, settings)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Lookalike serving {backend.data_dir} at http://{shown}:{server.effective_port}/")
    if message:
        click.echo(f"not ready yet: {message}", err=True)
    watcher = start_watching(app) if watch else None
    if watcher is not None:
        click.echo(f"watching the collection's folders: a scan every "
                   f"{settings.watch_interval:g} s, files settled for {settings.watch_settle:g} s")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if watcher is not None:
            watcher.stop()
        server.close()
        backend.close()


def _warn_about_exposure(host: str, hosts: tuple[str, ...] | None, settings: Settings) -> None:
    """Say so when the library is open to the network without a read token or host list."""
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    if not loopback and not settings.read_token:
        click.echo(f"warning: serving {host} without LOOKALIKE_READ_TOKEN: anyone who can "
                   "reach this port can browse and download the whole library", err=True)
    if hosts is None:
        click.echo("warning: bound to every address with no LOOKALIKE_TRUSTED_HOSTS: any Host "
                   "header is answered (set it to the names clients use)", err=True)
