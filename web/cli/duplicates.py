"""``lookalike duplicates``: the duplicate review from a shell, as the /duplicates page does
it: list the groups, export them as CSV, keep a copy in every pending group by a rule,
and move the others to the trash."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from indexer.plots import save_grid, tile_of
from search.decisions import list_decisions
from search.duplicates import (DEFAULT_THRESHOLD, STATUSES, Group, TooManyPairs, find_duplicates,
                               model_threshold, with_status, write_csv)
from search.keep_rules import RULE_HELP, BadRule, Keep, KeepRule, apply_keeps, plan_keeps
from search.store import NotFound
from search.trash import TrashError, trash_images

from .context import Context, lock_data_dir, model_option, pass_ctx, writing
from .encoders import serving_encoder


@click.command()
@click.option("--threshold", type=click.FloatRange(-1, 1),
              help="Cosine similarity of the codes' copy parts every pair in a group "
                   "reaches (exact copies: always) [default: the model's copy threshold, "
                   "calibrated when it was trained; 0.9999, identical images only, when it could "
                   f"not tell copies from look-alikes; {DEFAULT_THRESHOLD} for older models].")
@click.option("--min-size", type=click.IntRange(2), default=2, show_default=True,
              help="Smallest group listed.")
@click.option("--status", type=click.Choice(STATUSES), default="pending", show_default=True,
              help="Groups still to review, those settled by a decision on the /duplicates "
                   "page (with it, the kept image first), or all.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True,
              help="CSV, a row per image: group, image, path, bytes, width, height, pixels, "
                   "similarity_to_first, decision.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a PNG: a row of thumbnails per group (the first 32 groups).")
@click.option("--keep", "rule", metavar="RULE",
              help=f"Choose the copy to keep in every pending group: {RULE_HELP}. Shows what "
                   "it would do; --apply does it.")
@click.option("--apply", "apply_rule", is_flag=True,
              help="With --keep: record the choices as decisions (as “Keep this one” does).")
@click.option("--trash", "to_trash", is_flag=True,
              help="With --keep: record them and move the other copies to the trash "
                   "(`lookalike trash --restore` brings any back).")
@model_option()
@pass_ctx
def duplicates(obj: Context, threshold: float | None, min_size: int, status: str,
               as_json: bool, as_csv: bool, sheet: Path | None, rule: str | None,
               apply_rule: bool, to_trash: bool, model: Path | None) -> None:
    """Groups of near-duplicates in the catalog: edits, re-saves, resized copies; the one
    to keep (most pixels, then largest file, or the one a reviewer kept) first."""
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    if (apply_rule or to_trash) and rule is None:
        raise click.UsageError("--apply and --trash go with --keep RULE")
    if rule is not None and status != "pending":
        raise click.UsageError("--keep chooses in the pending groups only")
    try:
        keep_rule = KeepRule.parse(rule) if rule is not None else None
    except BadRule as exc:
        raise click.BadParameter(str(exc), param_hint="--keep") from exc
    encoder = serving_encoder(obj, model)
    if threshold is None:
        threshold = model_threshold(encoder.copy_threshold, encoder.separates_copies)
    store = obj.existing_store()
    try:
        every = find_duplicates(store, encoder.sha256, threshold, min_size, list_decisions(store))
    except TooManyPairs as exc:
        raise click.ClickException(str(exc)) from exc
    groups = with_status(every, status)
    if keep_rule is not None:
        _keep_by_rule(obj, store, groups, keep_rule, apply_rule or to_trash, to_trash,
                      as_json)
    elif as_json:
        click.echo(json.dumps({"threshold": threshold, "status": status,
                               "groups": [g.as_dict() for g in groups]}, indent=2))
    elif as_csv:
        write_csv(groups, sys.stdout)
    else:
        _print_groups(obj, groups, threshold, len(with_status(every, "reviewed")), status)
    if sheet and groups:
        _duplicate_sheet(groups[:32], sheet)
        obj.echo(f"sheet: {sheet}", err=as_json or as_csv)


def _keep_by_rule(obj: Context, store, groups: list[Group], rule: KeepRule, apply: bool,
                  to_trash: bool, as_json: bool) -> None:
    """Show (and with *apply*, record; with *to_trash*, also carry out) what *rule* keeps."""
    plans = plan_keeps(store, groups, rule)
    decided, trashed = [], []
    if apply:
        decided = [d.id for d in apply_keeps(store, plans)]
    if to_trash:
        lock_data_dir(obj, "moving files to the trash of")
        try:
            with writing(obj):
                trashed = [t.id for t in trash_images(
                    store, [i for plan in plans for i in plan.others])]
        except (NotFound, TrashError) as exc:
            raise click.ClickException(f"{len(decided)} decision(s) recorded, but: {exc}") \
                from exc
    if as_json:
        click.echo(json.dumps({"rule": rule.text, "plans": [p.as_dict() for p in plans],
                               "decisions": decided, "trashed": trashed}, indent=2))
        return
    for plan in plans:
        _print_plan(plan)
    others = sum(len(p.others) for p in plans)
    if to_trash:
        obj.echo(f"{len(decided)} decision(s) recorded; {len(trashed)} copies moved to the "
                 "trash (`lookalike trash --list`)")
    elif apply:
        obj.echo(f"{len(decided)} decision(s) recorded; the {others} other copies are untouched "
                 "(--trash moves them to the trash)")
    else:
        obj.echo(f"{len(plans)} group(s) with “{rule.text}”: {others} other copies. Nothing "
                 "done yet: --apply records the choices, --trash also moves the others to the "
                 "trash")


def _print_plan(plan: Keep) -> None:
    by_id = {m.id: m for m in plan.group.members}
    kept = by_id[plan.keep]
    click.echo(f"group {plan.group.id}: keep {kept.id} {kept.path}")
    for i in plan.others:
        click.echo(f"    other {i} {by_id[i].path}")


def _print_groups(obj: Context, groups: list, threshold: float, reviewed: int,
                  status: str) -> None:
    copies = sum(len(g.members) - 1 for g in groups)
    obj.echo(f"{len(groups)} group(s), {copies} copies (cosine ≥ {threshold:g})")
    if status == "pending" and reviewed:
        obj.echo(f"{reviewed} more group(s) already reviewed (--status reviewed lists them)")
    for g in groups:
        decided = f", {g.decision.kind} (decision {g.decision.id})" if g.decision else ""
        click.echo(f"group {g.id}{' (exact copies)' if g.exact else ''}{decided}:")
        for m in g.members:
            click.echo(f"  {m.similarity_to_first:7.4f}  {m.width}×{m.height}  {m.path}")


def _duplicate_sheet(groups: list, path: Path, per_row: int = 8) -> None:
    blank = np.full((96, 96, 3), 255, np.uint8)
    rows = [[tile_of(m.path, 96) for m in g.members[:per_row]] for g in groups]
    tiles = [t for row in rows for t in row + [blank] * (per_row - len(row))]
    save_grid(np.stack(tiles), path, nrow=per_row)
