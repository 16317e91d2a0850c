"""Commands over the catalog alone: what the data dir holds, and taking images out of the
collection (what the operator's ``/api/admin`` endpoints do, from a shell).

None of them needs the model, so this module loads no torch and no web framework.
"""
from __future__ import annotations

import json

import click

from search.catalog import ID_MAX
from search.exclusions import lift_exclusion, list_exclusions, remove_image
from search.library import collect_stats
from search.store import NotFound

from .context import Context, lock_data_dir, pass_ctx, writing


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def stats(obj: Context, as_json: bool) -> None:
    """What the data dir holds: images, model, index."""
    info = collect_stats(obj.existing_store())
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key:>16}: {value}")


@click.command()
@click.argument("image_id", type=click.IntRange(0, ID_MAX))
@click.option("--exclude/--no-exclude", default=True, show_default=True,
              help="Also keep re-indexing from adding the file (or its content) back.")
@pass_ctx
def remove(obj: Context, image_id: int, exclude: bool) -> None:
    """Remove image IMAGE_ID from the catalog and the index; its file stays on disk."""
    store = obj.existing_store()
    lock_data_dir(obj, "removing an image from")
    try:
        with writing(obj):
            removal = remove_image(store, image_id, exclude)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    lifted = (f" (excluded: lift with `lookalike exclusions --lift {removal.exclusion_id}`)"
              if removal.exclusion_id is not None else "")
    click.echo(f"removed {removal.id}: {removal.path}{lifted}")


@click.command()
@click.option("--lift", "lift_id", type=click.IntRange(0, ID_MAX),
              help="Lift this exclusion: the next re-index adds the file again.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def exclusions(obj: Context, lift_id: int | None, as_json: bool) -> None:
    """The images re-indexing skips (removed with `lookalike remove` or the admin API)."""
    store = obj.existing_store()
    if lift_id is not None:
        lock_data_dir(obj, "lifting an exclusion in")
        try:
            shown = [lift_exclusion(store, lift_id)]
        except NotFound as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        shown = list_exclusions(store)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in shown], indent=2))
        return
    verb = "lifted " if lift_id is not None else ""
    for e in shown:
        click.echo(f"{verb}{e.id:6d}  {e.sha256[:12]}  {e.path}")
