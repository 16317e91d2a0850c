"""Commands over the catalog alone: what the data dir holds, and taking images out of the
collection (what the operator's ``/api/admin`` endpoints do, from a shell).

None of them needs the model, so this module loads no torch and no web framework.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import click

from search.catalog import ID_MAX
from search.exclusions import lift_exclusion, list_exclusions, remove_image
from search.library import collect_stats
from search.store import NotFound
from search.trash import (Restored, Trashed, TrashError, empty_trash, list_trash, restore_images,
                          trash_images)

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


@click.command()
@click.argument("image_ids", nargs=-1, type=click.IntRange(0, ID_MAX))
@click.option("--list", "listing", is_flag=True, help="What the trash holds.")
@click.option("--restore", is_flag=True, help="Move IMAGE_IDS back from the trash, same ids.")
@click.option("--empty", is_flag=True, help="Delete the trashed files for good.")
@click.option("--older-than", "older_than", type=click.FloatRange(0), metavar="DAYS",
              help="With --empty: only files trashed more than DAYS ago.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def trash(obj: Context, image_ids: tuple[int, ...], listing: bool, restore: bool, empty: bool,
          older_than: float | None, as_json: bool) -> None:
    """Move images IMAGE_IDS to the trash, on their own disk; nothing is deleted.

    A trashed image leaves the index at once. `--restore` brings it back
    under the same id, with its decisions and its code; only `--empty`
    deletes files.
    """
    actions = sum((listing, restore, empty))
    if actions > 1:
        raise click.UsageError("choose one of --list, --restore and --empty")
    if older_than is not None and not empty:
        raise click.UsageError("--older-than goes with --empty")
    if (listing or empty) and image_ids:
        raise click.UsageError("--list and --empty take no IMAGE_IDS")
    if not (listing or empty) and not image_ids:
        raise click.UsageError("name the images (IMAGE_IDS), or use --list or --empty")
    store = obj.existing_store()
    if listing:
        shown = list_trash(store)
        verb = ""
    else:
        lock_data_dir(obj, "moving files to or from the trash of")
        try:
            with writing(obj):
                if empty:
                    shown, verb = empty_trash(store, older_than), "deleted"
                elif restore:
                    shown, verb = restore_images(store, image_ids), "restored"
                else:
                    shown, verb = trash_images(store, image_ids), "trashed"
        except (NotFound, TrashError) as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([asdict(t) if verb == "restored" else t.as_dict() for t in shown],
                              indent=2))
        return
    for t in shown:
        click.echo(_trash_line(t, verb))
    if not obj.quiet and not shown:
        click.echo("the trash is empty" if listing or empty else "nothing moved")


def _trash_line(item: Trashed | Restored, verb: str) -> str:
    if isinstance(item, Restored):
        later = " (its code is another model's: the next `lookalike index` encodes it)"
        return f"restored {item.id:6d}  {item.path}{later if item.reencode else ''}"
    missing = "" if item.present else "  (file missing from the trash)"
    words = f"{verb} " if verb else ""
    return f"{words}{item.id:6d}  {item.path}  -> {item.trash_path}{missing}"
