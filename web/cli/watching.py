"""``lookalike watch``: keep the collection current on a box without the web app
(``indexer.watch``; ``lookalike serve --watch`` runs the same beside the app)."""
from __future__ import annotations

import time
from datetime import datetime

import click

from indexer.watch import Watcher, WatchStatus, watched_folders

from .context import Context, model_option, pass_ctx
from .encoders import load_encoder


@click.command()
@model_option("Checkpoint to encode with")
@click.option("--once", is_flag=True, help="One pass, then exit (files still being written "
                                           "are left for the next).")
@pass_ctx
def watch(obj: Context, model, once: bool) -> None:
    """Keep the collection current: index new, changed, moved and deleted files as they come.

    Watches LOOKALIKE_INDEX_FOLDERS, or the folders indexed into the data
    dir: a scan every LOOKALIKE_WATCH_INTERVAL seconds (sooner when the
    system reports file events), indexing a file once it has not changed for
    LOOKALIKE_WATCH_SETTLE seconds. Stop it with Ctrl-C.
    """
    store = obj.existing_store()
    encoder = load_encoder(obj, model)
    settings = obj.settings
    watcher = Watcher(store, lambda: encoder, watched_folders(store, settings.index_folders),
                      settings.watch_interval, settings.watch_settle, settings.database_url,
                      on_pass=lambda status, results: _said(obj, status))
    if once:
        watcher.one_pass()
        if watcher.status.state == "waiting":
            raise click.ClickException(watcher.status.note or "the data dir is busy")
        return
    obj.echo(f"watching {', '.join(watcher.folders()) or 'no folder yet'}: a scan every "
             f"{settings.watch_interval:g} s, files settled for {settings.watch_settle:g} s "
             "(Ctrl-C stops)")
    watcher.start()
    try:
        while watcher.status.state != "stopped":
            time.sleep(0.5)
    except KeyboardInterrupt:
        obj.echo("stopping after the current pass")
    finally:
        watcher.stop(wait=600)


def _said(obj: Context, status: WatchStatus) -> None:
    """One line a pass, when it changed something or left files for later."""
    changed = {k: v for k, v in status.last_changes.items() if v}
    if not changed and not status.settling:
        return
    at = datetime.fromtimestamp(status.last_pass_at or time.time()).strftime("%H:%M:%S")
    parts = [f"{k} {v}" for k, v in changed.items()]
    if status.settling:
        parts.append(f"{status.settling} still being written")
    obj.echo(f"{at} {', '.join(parts)}")
