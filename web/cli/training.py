"""``lookalike train`` and ``lookalike eval``: a model from a folder, and how well it retrieves."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from indexer.augment import EDITS
from indexer.model import KINDS, NOISES, AEConfig, ModelConfigError
from indexer.retrieval import EvaluationError, evaluate_collection
from indexer.train import DEFAULT_MODEL, VALIDATIONS, TrainConfig, TrainingError, train_folder
from search.checkpoints import keep_current_model

from .context import Context, lock_data_dir, model_option, pass_ctx, report_failures
from .encoders import load_encoder


def training_options(f):
    """The options of a training run; their defaults are the dataclasses' (``DEFAULT_MODEL``,
    ``TrainConfig``), read here, so that a default is written in one place."""
    model, run = DEFAULT_MODEL, TrainConfig()
    options = [
        click.option("--budget", type=click.IntRange(1), default=run.budget, show_default=True,
                     help="Optimizer steps; larger collections are sampled, so any trains in "
                          "bounded time."),
        click.option("--epochs", type=click.IntRange(1), default=run.epochs,
                     help="At most this many passes over the images (default: the budget decides)."),
        click.option("--invariance", type=click.FloatRange(0), default=run.invariance,
                     show_default=True,
                     help="λ: weight of the term that gives edited copies of an image one code "
                          "(0: plain autoencoder, reconstruction only)."),
        click.option("--edits", default=",".join(run.edits), show_default=True,
                     help=f"Edits the training views get when λ > 0: any of {', '.join(EDITS)}."),
        click.option("--head/--no-head", default=run.head, show_default=True,
                     help="--head: the invariance term acts through a small projection head, as "
                          "in SimCLR, instead of on the search code itself (worse for search: "
                          "BENCHMARKS.md)."),
        click.option("--min-crop", type=click.FloatRange(0, 1, min_open=True),
                     default=run.min_crop, show_default=True,
                     help="Smallest random crop, as a fraction of the area."),
        click.option("--latent-dim", type=click.IntRange(1), default=model.latent_dim,
                     show_default=True, help="Numbers in a code; search compares them all."),
        click.option("--copy-dim", type=click.IntRange(0), default=model.copy_dim,
                     show_default=True,
                     help="The code's first numbers that the invariance term acts on and "
                          "duplicate grouping reads (its copy part): at most half the code, "
                          "the rest keeping the detail the decoder needs. 0, and always with "
                          "λ = 0: the whole code."),
        click.option("--image-size", type=click.IntRange(4), default=model.image_size,
                     show_default=True,
                     help="Images are resized to this square; must divide by 2^layers."),
        click.option("--widths", default=",".join(map(str, model.widths)), show_default=True,
                     help="Channels of each encoder layer (each layer halves the size)."),
        click.option("--batch-size", type=click.IntRange(1), default=run.batch_size,
                     show_default=True),
        click.option("--lr", type=click.FloatRange(0, min_open=True), default=run.lr,
                     show_default=True),
        click.option("--weight-decay", type=click.FloatRange(0), default=run.weight_decay,
                     show_default=True),
        click.option("--patience", type=click.IntRange(1), default=run.patience,
                     show_default=True,
                     help="Stop after this many validations without a better loss "
                          f"(one every pass or every 1/{VALIDATIONS} of the budget)."),
        click.option("--seed", type=int, default=run.seed, show_default=True),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                     help="Where to train [default: LOOKALIKE_DEVICE, or auto: CUDA when "
                          "present]."),
        click.option("--kind", type=click.Choice(list(KINDS)), default=model.kind,
                     show_default=True,
                     help="ae plain, dae denoising, vae variational, linear (the PCA baseline)."),
        click.option("--tied", is_flag=True, default=model.tied,
                     help="Decoder reuses the encoder's weights transposed."),
        click.option("--beta", type=click.FloatRange(0), default=run.beta, show_default=True,
                     help="VAE: weight of the KL term."),
        click.option("--noise", type=click.Choice(list(NOISES)), default=run.noise,
                     show_default=True, help="DAE: input corruption used in training."),
        click.option("--noise-level", type=click.FloatRange(0, 1), default=run.noise_level,
                     show_default=True, help="DAE: σ for gaussian, else the fraction of pixels hit."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def training_configs(obj: Context, kw: dict) -> tuple[AEConfig, TrainConfig]:
    """The configs the options of :func:`training_options` (all of them, in *kw*) ask for."""
    try:
        widths = tuple(int(w) for w in str(kw["widths"]).split(","))
    except ValueError as exc:
        raise click.BadParameter("--widths must be comma-separated integers, e.g. 32,64,128") from exc
    # The copy part takes at most half the code: the rest keeps the detail reconstructions need.
    copy_dim = min(kw["copy_dim"], kw["latent_dim"] // 2) if kw["invariance"] > 0 else 0
    model = replace(DEFAULT_MODEL, image_size=kw["image_size"], latent_dim=kw["latent_dim"],
                    widths=widths, kind=kw["kind"], tied=kw["tied"], copy_dim=copy_dim)
    edits = tuple(e.strip() for e in str(kw["edits"]).split(",") if e.strip())
    try:
        train = TrainConfig(epochs=kw["epochs"], budget=kw["budget"],
                            batch_size=kw["batch_size"], lr=kw["lr"],
                            weight_decay=kw["weight_decay"], patience=kw["patience"],
                            seed=kw["seed"], device=kw["device"] or obj.settings.device,
                            invariance=kw["invariance"], edits=edits, min_crop=kw["min_crop"],
                            head=kw["head"], beta=kw["beta"], noise=kw["noise"],
                            noise_level=kw["noise_level"])
    except TrainingError as exc:  # checked before thousands of files are decoded
        raise click.UsageError(str(exc)) from exc
    return model, train


def run_training(obj: Context, folder: Path, output: Path, model_config: AEConfig,
                 train_config: TrainConfig) -> None:
    try:
        result = train_folder(folder, output, model_config, train_config, progress=not obj.quiet)
    except (TrainingError, ModelConfigError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    facts = result["facts"]
    report_failures([(str(d.path), d.error) for d in result["failures"]])
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


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint path (default: DATA_DIR/model.pt).")
@training_options
@pass_ctx
def train(obj: Context, folder: Path, output: Path | None, **kw) -> None:
    """Train an autoencoder on the images under FOLDER.

    Into a data dir that has an index, the model that built it is kept
    (DATA_DIR/models/), and searches go on using it until `lookalike reindex`
    has re-encoded every image with the new one.
    """
    if output is None or output.resolve().parent == obj.data_dir.resolve():
        lock_data_dir(obj, "training a model for")
    target = output or obj.store.model_path
    # LOOKALIKE_MODEL is the operator's own file: searches load it as it is, nothing is kept.
    replacing = (target.resolve() == obj.settings.model_path.resolve()
                 and not obj.settings.model_is_explicit)
    kept = keep_current_model(obj.store) if replacing else None
    run_training(obj, folder, target, *training_configs(obj, kw))
    if kept is not None:
        click.echo(f"the index was built by the previous model, kept at {kept}: searches use "
                   "it until every image is re-encoded with the new one. Next: lookalike "
                   f"--data-dir {obj.data_dir} reindex")


@click.command(name="eval")
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
@model_option()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def eval_command(obj: Context, folder: Path, queries: Path | None, query_fraction: float, seed: int,
             mode: str, baselines: bool, model: Path | None, as_json: bool) -> None:
    """Retrieval quality on a labelled FOLDER (label = sub-folder): mAP, P@1, P@10, kNN-10."""
    encoder = load_encoder(obj, model)
    try:
        report = evaluate_collection(obj.store, encoder, folder, queries, query_fraction, seed,
                                     baselines, progress=not obj.quiet, mode=mode)
    except EvaluationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.table())


