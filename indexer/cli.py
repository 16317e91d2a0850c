"""The ``lookalike`` command line: train, index, search, eval, check, stats, demo.

The other autoencoder applications (denoise, anomalies, compress, explore)
live in ``cli_apps``.

Domain errors become ``click.ClickException`` here, at the edge, and
nowhere else. ``web.cli`` adds ``serve`` and is the console entry point,
so the dependency arrows stay web → indexer → search.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError

from search.database import CATALOG_FILE, SchemaError, describe_database_error
from search.engine import ModelMismatch, SearchEngine
from search.store import Store
from search.vector_index import VectorIndexError

from .encoder import TorchEncoder
from .images import ImageDecodeError, load_image
from .lock import DataDirBusy, WriterLock
from .model import KINDS, AEConfig, CheckpointError, ModelConfigError
from .settings import Settings
from .augment import DEFAULT_EDITS, EDITS, MIN_CROP
from .train import (DEFAULT_BUDGET, DEFAULT_INVARIANCE, NOISES, VALIDATIONS, TrainConfig,
                    TrainingError, train_folder)

SAMPLE_COLLECTION = Path(__file__).resolve().parent / "sample"


class Context:
    """What every command shares: the settings (paths already absolute) and the store."""

    def __init__(self, settings: Settings, quiet: bool):
        self.settings = settings
        self.data_dir = settings.data_dir
        self.quiet = quiet
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The data dir's store, made (folder, catalog) if it is not there yet: for writers."""
        if self._store is None:
            try:
                self._store = self.settings.open_store()
            except SchemaError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._store

    def existing_store(self) -> Store:
        """The store for commands that only read it.

        A mistyped --data-dir must get an error, not a new empty data dir
        that then answers "0 images".
        """
        if self._store is None and not self.has_catalog:
            raise click.ClickException(
                f"nothing indexed in {self.data_dir} yet (no {CATALOG_FILE} there). Index a "
                f"folder first: lookalike --data-dir {self.data_dir} index FOLDER")
        return self.store

    @property
    def has_catalog(self) -> bool:
        return self.settings.has_catalog

    @property
    def model_path(self) -> Path:
        """The checkpoint the settings name (DATA_DIR/model.pt by default); creates nothing."""
        return self.settings.model_path

    def echo(self, message: str = "", err: bool = False) -> None:
        if not self.quiet:
            click.echo(message, err=err)


pass_ctx = click.make_pass_decorator(Context)


def _lock_data_dir(obj: Context, doing: str) -> WriterLock:
    """Hold the data dir's writer lock until the command ends, or refuse at once.

    Two writers would each keep an index in memory that misses the
    other's commits; see indexer.lock.
    """
    try:
        return click.get_current_context().with_resource(WriterLock(obj.data_dir, doing))
    except DataDirBusy as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
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


def _model_options(f):
    options = [
        click.option("--budget", type=click.IntRange(1), default=DEFAULT_BUDGET, show_default=True,
                     help="Optimizer steps; larger collections are sampled, so any trains in "
                          "bounded time."),
        click.option("--epochs", type=click.IntRange(1),
                     help="At most this many passes over the images (default: the budget decides)."),
        click.option("--invariance", type=click.FloatRange(0), default=DEFAULT_INVARIANCE,
                     show_default=True,
                     help="λ: weight of the term that gives edited copies of an image one code "
                          "(0: plain autoencoder, reconstruction only)."),
        click.option("--edits", default=",".join(DEFAULT_EDITS), show_default=True,
                     help=f"Edits the training views get when λ > 0: any of {', '.join(EDITS)}."),
        click.option("--head/--no-head", default=False, show_default=True,
                     help="--head: the invariance term acts through a small projection head, as "
                          "in SimCLR, instead of on the search code itself (worse for search: "
                          "BENCHMARKS.md)."),
        click.option("--min-crop", type=click.FloatRange(0, 1, min_open=True), default=MIN_CROP,
                     show_default=True, help="Smallest random crop, as a fraction of the area."),
        click.option("--latent-dim", type=click.IntRange(1), default=64, show_default=True),
        click.option("--image-size", type=click.IntRange(4), default=64, show_default=True,
                     help="Images are resized to this square; must divide by 2^layers."),
        click.option("--widths", default="32,64,128,256", show_default=True,
                     help="Channels of each encoder layer (each layer halves the size)."),
        click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True),
        click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-3, show_default=True),
        click.option("--weight-decay", type=click.FloatRange(0), default=1e-4, show_default=True),
        click.option("--patience", type=click.IntRange(1), default=5, show_default=True,
                     help="Stop after this many validations without a better loss "
                          f"(one every pass or every 1/{VALIDATIONS} of the budget)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True),
        click.option("--kind", type=click.Choice(list(KINDS)), default="ae", show_default=True,
                     help="ae plain, dae denoising, vae variational, linear (the PCA baseline)."),
        click.option("--tied", is_flag=True, help="Decoder reuses the encoder's weights transposed."),
        click.option("--beta", type=click.FloatRange(0), default=1.0, show_default=True,
                     help="VAE: weight of the KL term."),
        click.option("--noise", type=click.Choice(list(NOISES)), default="gaussian",
                     show_default=True, help="DAE: input corruption used in training."),
        click.option("--noise-level", type=click.FloatRange(0, 1), default=0.3, show_default=True,
                     help="DAE: σ for gaussian, else the fraction of pixels hit."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _configs(kw: dict) -> tuple[AEConfig, TrainConfig]:
    try:
        widths = tuple(int(w) for w in str(kw.get("widths") or "32,64,128,256").split(","))
    except ValueError as exc:
        raise click.BadParameter("--widths must be comma-separated integers, e.g. 32,64,128") from exc
    model = AEConfig(image_size=kw["image_size"], latent_dim=kw["latent_dim"], widths=widths,
                     kind=kw.get("kind", "ae"), tied=kw.get("tied", False))
    edits = tuple(e.strip() for e in str(kw.get("edits", ",".join(DEFAULT_EDITS))).split(",")
                  if e.strip())
    try:
        train = TrainConfig(epochs=kw.get("epochs"), budget=kw.get("budget", DEFAULT_BUDGET),
                            batch_size=kw["batch_size"], lr=kw["lr"],
                            weight_decay=kw["weight_decay"], patience=kw["patience"],
                            seed=kw["seed"], device=kw["device"],
                            invariance=kw.get("invariance", DEFAULT_INVARIANCE), edits=edits,
                            min_crop=kw.get("min_crop", MIN_CROP), head=kw.get("head", False),
                            beta=kw.get("beta", 1.0),
                            noise=kw.get("noise", "gaussian"), noise_level=kw.get("noise_level", 0.3))
    except TrainingError as exc:  # checked before thousands of files are decoded
        raise click.UsageError(str(exc)) from exc
    return model, train


def _run_training(obj: Context, folder: Path, output: Path, kw: dict) -> None:
    model_config, train_config = _configs(kw)
    try:
        result = train_folder(folder, output, model_config, train_config, progress=not obj.quiet)
    except (TrainingError, ModelConfigError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    facts = result["facts"]
    _report_failures(obj, [(str(d.path), d.error) for d in result["failures"]])
    sampled = (f" (a sample of the {facts['n_found']} found)"
               if facts["n_found"] > facts["n_images"] else "")
    recipe = facts["recipe"]
    obj.echo(f"trained on {facts['n_train']} images{sampled} ({facts['n_val']} held out), "
             f"λ = {recipe['invariance']:g}, for {facts['steps_run']} of {facts['steps_planned']} "
             f"steps ({facts['epochs_run']:g} epochs) in {facts['seconds']:.0f} s; best "
             f"validation loss {facts['best_val_loss']:.5f} at check {facts['best_round']} "
             f"of {facts['rounds_run']}")
    obj.echo(f"checkpoint:      {result['checkpoint']}")
    obj.echo(f"loss curve:      {result['loss_curve']}")
    obj.echo(f"reconstructions: {result['reconstructions']}")


def _report_failures(obj: Context, failures: list[tuple[str, str]]) -> None:
    if not failures:
        return
    click.echo(f"skipped {len(failures)} file(s):", err=True)
    for path, reason in failures:
        click.echo(f"  {path}: {reason}", err=True)


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint path (default: DATA_DIR/model.pt).")
@_model_options
@pass_ctx
def train(obj: Context, folder: Path, output: Path | None, **kw) -> None:
    """Train an autoencoder on the images under FOLDER."""
    if output is None or output.resolve().parent == obj.data_dir.resolve():
        _lock_data_dir(obj, "training a model for")
    _run_training(obj, folder, output or obj.store.model_path, kw)


def load_encoder(obj: Context, model: Path | None, device: str = "auto") -> TorchEncoder:
    path = model or obj.model_path
    try:
        return TorchEncoder.from_path(path, device)
    except CheckpointError as exc:
        raise click.ClickException(
            f"{exc}. Train one first: lookalike --data-dir {obj.data_dir} train FOLDER") from exc


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint to encode with (default: DATA_DIR/model.pt).")
@click.option("--reencode", is_flag=True, help="Encode every image again (after a model change).")
@click.option("--encode-batch", type=click.IntRange(1), default=128, show_default=True,
              help="Images encoded per step.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Decoding processes (default: one per core).")
@click.option("--index-type", type=click.Choice(["auto", "flat", "ivf"]), default=None,
              help="auto: exact (flat) below 200k images, IVF above; or force one. Remembered "
                   "by the data dir until changed (default: its choice so far, at first auto).")
@click.option("--save-every", type=click.FloatRange(0), default=60, show_default=True,
              help="Seconds between index saves during a run, so searches see progress.")
@click.option("--prune", is_flag=True,
              help="Remove the rows of missing files even when more than half of the folder's "
                   "images are missing (otherwise kept: the disk may only be unmounted).")
@click.option("--follow-symlinks/--no-follow-symlinks", default=None,
              help="Index symlinks that lead outside FOLDER, and enter symlinked folders. "
                   "Remembered by the data dir (default: its choice so far, at first no).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_model_options
@pass_ctx
def index(obj: Context, folder: Path, model: Path | None, reencode: bool, encode_batch: int,
          workers: int | None, index_type: str | None, save_every: float, prune: bool,
          follow_symlinks: bool | None, as_json: bool, **kw) -> None:
    """Index (or re-index, incrementally) the images under FOLDER.

    With no model yet, one is trained on FOLDER first with the training options given.
    """
    from .job import index_folder

    _lock_data_dir(obj, "indexing")
    if model is None and not obj.store.model_path.exists():
        obj.echo(f"no model at {obj.store.model_path} yet: training one on {folder} first")
        _run_training(obj, folder, obj.store.model_path, kw)
    encoder = load_encoder(obj, model, kw["device"])
    try:
        summary = index_folder(obj.store, folder, encoder, batch_size=encode_batch,
                               workers=workers, progress=not obj.quiet, reencode=reencode,
                               save_every=save_every, index_type=index_type,
                               follow_symlinks=follow_symlinks, prune=prune)
    except (VectorIndexError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OperationalError as exc:
        raise click.ClickException(
            describe_database_error(exc, obj.settings.database_url)) from exc
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
        return
    _report_failures(obj, summary.failures)
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    excluded = f"excluded {summary.excluded}, " if summary.excluded else ""
    excluded += f"kept {summary.kept} missing, " if summary.kept else ""
    click.echo(
        f"added {summary.added}, updated {summary.updated}, moved {summary.moved}, "
        f"removed {summary.removed}, unchanged {summary.unchanged}, {excluded}"
        f"failed {summary.failed}; "
        f"encoded {summary.encoded} images in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.1f} images/s)")


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: query, its reconstruction, and each hit with its reconstruction.")
@pass_ctx
def search(obj: Context, image: Path, k: int, model: Path | None, as_json: bool,
           sheet: Path | None) -> None:
    """Find the K indexed images most like IMAGE."""
    import faiss

    # One query gains nothing from more OpenMP threads, and on a busy machine the
    # idle ones' spinning turned a 0.1 ms FAISS search into ~25 ms (measured).
    faiss.omp_set_num_threads(1)
    encoder = load_encoder(obj, model)
    engine = checked_engine(obj, encoder)
    try:
        # Read whole: the query is named by the user, so a FIFO (/dev/stdin) is fine here.
        pixels = load_image(image.read_bytes(), encoder.image_size)
        code, hits = engine.search_pixels(pixels, k)
    except ImageDecodeError as exc:
        raise click.ClickException(f"{image}: {exc}") from exc
    if as_json:
        click.echo(json.dumps({"query": str(image), "results": [
            {"id": h.id, "path": h.path, "similarity": round(h.score, 6)} for h in hits]}, indent=2))
    else:
        for rank, h in enumerate(hits, 1):
            click.echo(f"{rank:3d}  {h.score:7.4f}  {h.path}")
    if sheet:
        write_sheet(engine, pixels, code, hits, sheet)
        obj.echo(f"sheet: {sheet}", err=as_json)


def checked_engine(obj: Context, encoder: TorchEncoder) -> SearchEngine:
    """A search engine over the data dir's index, refused when another model built it."""
    engine = SearchEngine(obj.existing_store(), encoder)
    try:
        engine.check_index(engine.index())
    except VectorIndexError as exc:
        raise click.ClickException(
            f"{exc}. Index a folder first: lookalike --data-dir {obj.data_dir} index FOLDER"
        ) from exc
    except ModelMismatch as exc:
        raise click.ClickException(
            f"{exc}. Re-encode with: lookalike --data-dir {obj.data_dir} index --reencode "
            "FOLDER (or pass --model with the checkpoint that built it)") from exc
    return engine


def write_sheet(engine: SearchEngine, pixels, code, hits, path: Path) -> None:
    import numpy as np

    from search.engine import code_of

    from .plots import save_result_sheet

    encoder = engine.encoder
    codes = np.stack([code] + [code_of(engine.record(h.id)) for h in hits])
    recons = encoder.decode(codes)
    tiles = []
    for h, recon in zip(hits, recons[1:]):
        try:
            original = load_image(h.path, encoder.image_size)
        except ImageDecodeError:
            original = recon * 0
        tiles.append((original, recon, f"{h.score:.3f} {Path(h.path).name}"))
    save_result_sheet(pixels, recons[0], tiles, path)


@cli.command(name="eval")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--queries", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A second labelled folder whose images query FOLDER (they are not indexed).")
@click.option("--query-fraction", type=float, default=0.1, show_default=True,
              help="Without --queries: this seeded share of FOLDER queries the rest.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mode", type=click.Choice(["classes", "copies"]), default="classes",
              show_default=True,
              help="classes: relevant = same class sub-folder, baselines pixels and PCA. "
                   "copies: relevant = same source photo (its sub-folder, or the stem of a "
                   "file right in FOLDER), baselines colour histogram and perceptual hashes.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also score the mode's baselines on the same split.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def evaluate(obj: Context, folder: Path, queries: Path | None, query_fraction: float, seed: int,
             mode: str, baselines: bool, model: Path | None, as_json: bool) -> None:
    """Retrieval quality on a labelled FOLDER (label = sub-folder): mAP, P@1, P@10, kNN-10."""
    from .evaluate import EvaluationError, evaluate_collection

    encoder = load_encoder(obj, model)
    try:
        report = evaluate_collection(obj.store, encoder, folder, queries, query_fraction, seed,
                                     baselines, progress=not obj.quiet, mode=mode)
    except EvaluationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.table())


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def stats(obj: Context, as_json: bool) -> None:
    """What the data dir holds: images, model, index."""
    from .status import collect_stats

    info = collect_stats(obj.existing_store())
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key:>16}: {value}")


@cli.command()
@click.option("--repair", is_flag=True,
              help="Fix what can be fixed without losing data (takes the writer lock).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint the codes should come from (default: DATA_DIR/model.pt).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def check(obj: Context, repair: bool, model: Path | None, as_json: bool) -> None:
    """Check that catalog, vector index, files on disk and model agree; exit 1 if not."""
    from .check import check_data_dir, repair_data_dir

    if not obj.data_dir.is_dir():
        raise click.ClickException(f"no data dir at {obj.data_dir}")
    if repair:
        swept = _lock_data_dir(obj, "repairing").swept
        report = repair_data_dir(obj.store, model, swept)
    else:
        report = check_data_dir(obj.store, model)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.render())
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--epochs", type=click.IntRange(1), default=60, show_default=True)
@click.option("-k", type=click.IntRange(1, 100), default=8, show_default=True)
@pass_ctx
def demo(obj: Context, epochs: int, k: int) -> None:
    """Train on the bundled sample collection, index it and run a sample query.

    The sample is 400 Fashion-MNIST images (MIT licence), 40 per class; a
    model at 32×32 trains in about two minutes on two CPU cores.
    """
    from .job import index_folder

    folder = SAMPLE_COLLECTION / "fashion-mnist"
    _lock_data_dir(obj, "indexing")
    store = obj.store
    if not store.model_path.exists():
        obj.echo(f"training a model on the sample collection ({folder})")
        _run_training(obj, folder, store.model_path,
                      dict(image_size=32, latent_dim=64, epochs=epochs, batch_size=64, lr=2e-3,
                           weight_decay=1e-4, patience=10, seed=0, device="auto"))
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


# Registers denoise, anomalies, compress, decompress, sample, interpolate, arithmetic.
from . import cli_apps  # noqa: E402,F401
