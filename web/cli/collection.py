"""Commands that read the collection's images with its model: index, demo, check (catalog,
index, files and model agree) and reindex (``indexer.job``); search has its own module."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

import indexer
from indexer.check import check_data_dir, repair_data_dir
from indexer.encoding import ENCODINGS, EncodingError, make_encoding
from indexer.images import load_image
from indexer.job import index_folder, reindex_all, reindex_folders
from indexer.train import DEFAULT_MODEL, TrainConfig
from search.engine import SearchEngine
from search.vector_index import INDEX_TYPES

from .context import Context, lock_data_dir, model_option, pass_ctx, report_failures, writing
from .encoders import load_encoder
from .searching import write_sheet
from .training import run_training, training_configs, training_options

SAMPLE_COLLECTION = Path(indexer.__file__).resolve().parent / "sample"


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option("Checkpoint to encode with")
@click.option("--reencode", is_flag=True, help="Encode every image again (after a model change).")
@click.option("--encode-batch", type=click.IntRange(1), default=128, show_default=True,
              help="Images encoded per step.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Decoding processes (default: one per core).")
@click.option("--index-type", type=click.Choice(INDEX_TYPES), default=None,
              help="auto: exact (flat) below 200k images, IVF up to 2M, IVF-PQ (re-ranked "
                   "with the catalog's codes) above; or force one. Remembered by the data dir "
                   "until changed (default: its choice so far, at first auto).")
@click.option("--save-every", type=click.FloatRange(0), default=60, show_default=True,
              help="Seconds between index saves during a run, so searches see progress.")
@click.option("--prune", is_flag=True,
              help="Remove the rows of missing files even when more than half of the folder's "
                   "images are missing (otherwise kept: the disk may only be unmounted).")
@click.option("--follow-symlinks/--no-follow-symlinks", default=None,
              help="Index symlinks that lead outside FOLDER, and enter symlinked folders. "
                   "Remembered by the data dir (default: its choice so far, at first no).")
@click.option("--engine", "encoding_name", type=click.Choice(ENCODINGS), default="local", show_default=True,
              help="Who decodes and encodes: this machine's processes, or a Ray cluster "
                   "(Ray Data; this process still writes the catalog and the index).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="The Ray cluster to join (auto, or ray://HOST:10001); default: start a "
                   "local one on this machine's cores.")
@click.option("--ray-actors", type=click.IntRange(1), default=None,
              help="Encoding actors, one CPU each (default: one per CPU of the cluster).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@training_options
@pass_ctx
def index(obj: Context, folder: Path, model: Path | None, reencode: bool, encode_batch: int,
          workers: int | None, index_type: str | None, save_every: float, prune: bool,
          follow_symlinks: bool | None, encoding_name: str, ray_address: str | None,
          ray_actors: int | None, as_json: bool, **kw) -> None:
    """Index (or re-index, incrementally) the images under FOLDER.

    With no model yet, one is trained on FOLDER first with the training options given.
    """
    lock_data_dir(obj, "indexing")
    if model is None and not obj.store.model_path.exists():
        obj.echo(f"no model at {obj.store.model_path} yet: training one on {folder} first")
        run_training(obj, folder, obj.store.model_path, *training_configs(obj, kw))
    encoder = load_encoder(obj, model, kw["device"])
    try:
        encoding = make_encoding(encoding_name, encoder, encode_batch, workers, ray_address, ray_actors)
    except EncodingError as exc:
        raise click.ClickException(str(exc)) from exc
    with writing(obj, EncodingError):
        summary = index_folder(obj.store, folder, encoder, progress=not obj.quiet,
                               reencode=reencode, save_every=save_every, index_choice=index_type,
                               follow_symlinks=follow_symlinks, prune=prune,
                               encoding=encoding).as_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)


def print_summary(summary: dict, prefix: str = "") -> None:
    """An indexing run's summary (``IndexSummary.as_dict``), its skips and warnings first."""
    report_failures([(f["path"], f["reason"]) for f in summary["failures"]])
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    excluded = f"excluded {summary['excluded']}, " if summary["excluded"] else ""
    excluded += f"kept {summary['kept']} missing, " if summary["kept"] else ""
    click.echo(
        f"{prefix}added {summary['added']}, updated {summary['updated']}, moved "
        f"{summary['moved']}, removed {summary['removed']}, unchanged {summary['unchanged']}, "
        f"{excluded}failed {summary['failed']}; encoded {summary['encoded']} images in "
        f"{summary['seconds']:.1f} s ({summary['images_per_second']:.1f} images/s)")


@click.command()
@click.option("--repair", is_flag=True,
              help="Fix what can be fixed without losing data (takes the writer lock).")
@model_option("Checkpoint the codes should come from")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def check(obj: Context, repair: bool, model: Path | None, as_json: bool) -> None:
    """Check that catalog, vector index, files on disk and model agree; exit 1 if not."""
    if not obj.data_dir.is_dir():
        raise click.ClickException(f"no data dir at {obj.data_dir}")
    if repair:
        swept = lock_data_dir(obj, "repairing").swept
        report = repair_data_dir(obj.store, model, swept)
    else:
        report = check_data_dir(obj.store, model)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.render())
    if not report.ok:
        sys.exit(1)


@click.command()
@click.option("--epochs", type=click.IntRange(1), default=60, show_default=True)
@click.option("-k", type=click.IntRange(1, 100), default=8, show_default=True)
@pass_ctx
def demo(obj: Context, epochs: int, k: int) -> None:
    """Train on the bundled sample collection, index it and run a sample query.

    The sample is 400 Fashion-MNIST images (MIT licence), 40 per class; a
    model at 32×32 trains in about two minutes on two CPU cores.
    """
    folder = SAMPLE_COLLECTION / "fashion-mnist"
    lock_data_dir(obj, "indexing")
    store = obj.store
    if not store.model_path.exists():
        obj.echo(f"training a model on the sample collection ({folder})")
        run_training(obj, folder, store.model_path, replace(DEFAULT_MODEL, image_size=32),
                     TrainConfig(epochs=epochs, patience=10, device=obj.settings.device))
    encoder = load_encoder(obj, None)
    summary = index_folder(store, folder, encoder, progress=not obj.quiet)
    click.echo(f"indexed the sample: added {summary.added}, unchanged {summary.unchanged}, "
               f"removed {summary.removed}, failed {summary.failed}")
    query = sorted((folder / "sneaker").glob("*.png"))[0]
    engine = SearchEngine(store, encoder)
    pixels = load_image(query, encoder.image_size)
    code, hits = engine.search_pixels(pixels, k + 1)
    hits = [h for h in hits if h.path != str(query.resolve())][:k]
    click.echo(f"\nimages most like {query.relative_to(folder)}:")
    for rank, h in enumerate(hits, 1):
        click.echo(f"{rank:3d}  {h.score:7.4f}  {Path(h.path).relative_to(folder)}")
    sheet = store.data_dir / "demo-results.png"
    write_sheet(engine, pixels, code, hits, sheet)
    click.echo(f"result sheet (query, hits; reconstructions below): {sheet}")


@click.command()
@model_option("Checkpoint to encode with")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def reindex(obj: Context, model: Path | None, as_json: bool) -> None:
    """Re-index every folder of the collection (LOOKALIKE_INDEX_FOLDERS, or the folders
    indexed into this data dir); a folder that is not there is skipped and its images kept."""
    store = obj.existing_store()
    lock_data_dir(obj, "re-indexing")
    encoder = load_encoder(obj, model)
    folders = reindex_folders(obj.settings.index_folders, store)
    if not folders:
        raise click.ClickException("nothing to re-index: no LOOKALIKE_INDEX_FOLDERS are "
                                   "configured and the catalog is empty")
    with writing(obj):
        results = reindex_all(store, folders, encoder, workers=None, progress=not obj.quiet)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for r in results:
        if r["status"] == "skipped":
            click.echo(f"skipped {r['folder']}: {r['reason']}", err=True)
        else:
            print_summary(r, prefix=f"{r['folder']}: ")
