"""``lookalike train`` and ``lookalike eval``: a model from a folder, and how well it retrieves."""
from __future__ import annotations

import json
from pathlib import Path

import click

from indexer.augment import DEFAULT_EDITS, EDITS, MIN_CROP
from indexer.model import KINDS, NOISES, AEConfig, ModelConfigError
from indexer.retrieval import EvaluationError, evaluate_collection
from indexer.train import (DEFAULT_BUDGET, DEFAULT_COPY_PART, DEFAULT_INVARIANCE, DEFAULT_LATENT,
                           VALIDATIONS, TrainConfig, TrainingError, train_folder)
from search.checkpoints import keep_current_model

from .context import Context, lock_data_dir, model_option, pass_ctx, report_failures
from .encoders import load_encoder


def training_options(f):
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
        click.option("--latent-dim", type=click.IntRange(1), default=DEFAULT_LATENT,
                     show_default=True, help="Numbers in a code; search compares them all."),
        click.option("--copy-dim", type=click.IntRange(0), default=DEFAULT_COPY_PART,
                     show_default=True,
                     help="The code's first numbers that the invariance term acts on and "
                          "duplicate grouping reads (its copy part): at most half the code, "
                          "the rest keeping the detail the decoder needs. 0, and always with "
                          "λ = 0: the whole code."),
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


def training_configs(kw: dict) -> tuple[AEConfig, TrainConfig]:
    try:
        widths = tuple(int(w) for w in str(kw.get("widths") or "32,64,128,256").split(","))
    except ValueError as exc:
        raise click.BadParameter("--widths must be comma-separated integers, e.g. 32,64,128") from exc
    invariance = kw.get("invariance", DEFAULT_INVARIANCE)
    # The copy part takes at most half the code: the rest keeps the detail reconstructions need.
    copy_dim = (min(kw.get("copy_dim", DEFAULT_COPY_PART), kw["latent_dim"] // 2)
                if invariance > 0 else 0)
    model = AEConfig(image_size=kw["image_size"], latent_dim=kw["latent_dim"], widths=widths,
                     kind=kw.get("kind", "ae"), tied=kw.get("tied", False), copy_dim=copy_dim)
    edits = tuple(e.strip() for e in str(kw.get("edits", ",".join(DEFAULT_EDITS))).split(",")
                  if e.strip())
    try:
        train = TrainConfig(epochs=kw.get("epochs"), budget=kw.get("budget", DEFAULT_BUDGET),
                            batch_size=kw["batch_size"], lr=kw["lr"],
                            weight_decay=kw["weight_decay"], patience=kw["patience"],
                            seed=kw["seed"], device=kw["device"],
                            invariance=invariance, edits=edits,
                            min_crop=kw.get("min_crop", MIN_CROP), head=kw.get("head", False),
                            beta=kw.get("beta", 1.0),
                            noise=kw.get("noise", "gaussian"), noise_level=kw.get("noise_level", 0.3))
    except TrainingError as exc:  # checked before thousands of files are decoded
        raise click.UsageError(str(exc)) from exc
    return model, train


def run_training(obj: Context, folder: Path, output: Path, kw: dict) -> None:
    model_config, train_config = training_configs(kw)
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
    run_training(obj, folder, target, kw)
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


