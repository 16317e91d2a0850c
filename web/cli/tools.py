"""The model as a tool: denoise, anomalies, compress, decompress, sample, interpolate,
arithmetic (the same concerns the web app's tool pages call)."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from PIL import Image

from indexer.compression import (DTYPES, Codebooks, CompressionError, ProductQuantizer,
                                 TooFewCodes, code_dtype, compress_code, decompress_code, psnr,
                                 smallest_png)
from indexer.encoding import TorchEncoder
from indexer.model import arithmetic, interpolate, sample_prior
from indexer.plots import save_grid, tile_of
from search.anomalies import NoThreshold, find_outliers
from search.store import codebook_path

from .context import Context, model_option, pass_ctx
from .encoders import checked_engine, load_encoder, read_image, serving_encoder


def input_file(name: str):
    """An argument naming a file that must exist (an image, a code file)."""
    return click.argument(name, type=click.Path(exists=True, dir_okay=False, path_type=Path))


def output_option(help: str | None = None):
    return click.option("-o", "--output", required=True, help=help,
                        type=click.Path(dir_okay=False, path_type=Path))


@click.command()
@input_file("image")
@output_option("PNG to write (at the model's input size).")
@model_option()
@pass_ctx
def denoise(obj: Context, image: Path, output: Path, model: Path | None) -> None:
    """Remove noise from IMAGE with the model (best with one trained with --kind dae)."""
    encoder = load_encoder(obj, model)
    if encoder.kind != "dae":
        obj.echo(f"note: this model is a {encoder.kind!r}, not a denoising autoencoder "
                 "(train one with --kind dae)", err=True)
    Image.fromarray(encoder.reconstruct(read_image(image, encoder.image_size)[None])[0]).save(output, "PNG")
    obj.echo(f"denoised: {output}")


@click.command()
@click.option("--top", type=click.IntRange(1), help="List the N most unusual images.")
@click.option("--threshold", type=click.FloatRange(0),
              help="List images whose reconstruction MSE is above T "
                   "(default: the model's held-out 99th percentile).")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a PNG of their thumbnails.")
@click.option("--json", "as_json", is_flag=True)
@model_option()
@pass_ctx
def anomalies(obj: Context, top: int | None, threshold: float | None, sheet: Path | None,
              as_json: bool, model: Path | None) -> None:
    """The collection's outliers: images the model reconstructs worst (both options: the N
    worst above T)."""
    encoder = load_encoder(obj, model)
    try:
        found = find_outliers(obj.existing_store(), encoder.sha256, top, threshold,
                              encoder.anomaly_threshold)
    except NoThreshold as exc:
        raise click.ClickException("this checkpoint has no anomaly threshold; pass "
                                   "--threshold T or --top N") from exc
    rows = found.rows
    if as_json:
        click.echo(json.dumps({"threshold": found.threshold, "total": found.total, "anomalies": [
            {"id": r.id, "path": r.path, "reconstruction_error": r.reconstruction_error}
            for r in rows]}, indent=2))
    else:
        if found.threshold is not None:
            obj.echo(f"{found.total} image(s) above reconstruction MSE {found.threshold:.5f}")
        for r in rows:
            click.echo(f"{r.reconstruction_error:10.5f}  {r.path}")
    if sheet and rows:
        save_grid(np.stack([tile_of(r.path, 96) for r in rows[:64]]), sheet)
        obj.echo(f"sheet: {sheet}", err=as_json)


def _codebook(obj: Context, encoder: TorchEncoder) -> ProductQuantizer:
    """The collection's PQ codebook, trained on first use; it must reach the disk, since
    the codes written with it decode only with it."""
    try:
        return Codebooks(obj.data_dir, obj.existing_store).get_or_train(encoder.sha256,
                                                                        must_save=True)
    except TooFewCodes as exc:
        raise click.ClickException(f"{exc}; run lookalike index FOLDER first") from exc
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc


def _saved_codebook(obj: Context, encoder: TorchEncoder) -> ProductQuantizer:
    """The codebook a PQ code needs: only its file, not the catalog."""
    pq = Codebooks(obj.data_dir, obj.existing_store).find(encoder.sha256)
    if pq is None:
        raise click.ClickException(f"no product quantiser at "
                                   f"{codebook_path(obj.data_dir, encoder.sha256)}; compress "
                                   "with --dtype pq first")
    return pq


@click.command()
@input_file("image")
@output_option()
@click.option("--dtype", type=click.Choice(DTYPES), default="float16", show_default=True)
@model_option()
@pass_ctx
def compress(obj: Context, image: Path, output: Path, dtype: str, model: Path | None) -> None:
    """Store IMAGE as its latent code; prints sizes and the round-trip PSNR."""
    encoder = load_encoder(obj, model)
    pixels = read_image(image, encoder.image_size)
    code = encoder.encode(pixels[None])[0]
    pq = _codebook(obj, encoder) if dtype == "pq" else None
    blob = compress_code(code, dtype, encoder.sha256, pq)
    output.write_bytes(blob)
    restored = encoder.decode(decompress_code(blob, encoder.sha256, pq)[None])[0]
    buf = smallest_png(pixels)
    click.echo(f"{output}: {len(blob)} bytes ({dtype}); source file {image.stat().st_size} bytes "
               f"({image.stat().st_size / len(blob):.0f}x), PNG at {encoder.image_size}px "
               f"{len(buf)} bytes ({len(buf) / len(blob):.0f}x); PSNR {psnr(pixels, restored):.1f} dB")


@click.command()
@input_file("code")
@output_option()
@model_option()
@pass_ctx
def decompress(obj: Context, code: Path, output: Path, model: Path | None) -> None:
    """Decode a code file written by `lookalike compress` back to a PNG."""
    encoder = load_encoder(obj, model)
    blob = code.read_bytes()
    pq = _saved_codebook(obj, encoder) if code_dtype(blob) == "pq" else None
    try:
        z = decompress_code(blob, encoder.sha256, pq)
    except CompressionError as exc:
        raise click.ClickException(f"{code}: {exc}") from exc
    Image.fromarray(encoder.decode(z[None])[0]).save(output, "PNG")
    obj.echo(f"decoded: {output}")


@click.command()
@click.option("-n", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--seed", type=int, default=None)
@output_option()
@model_option()
@pass_ctx
def sample(obj: Context, n: int, seed: int | None, output: Path, model: Path | None) -> None:
    """Decode N codes drawn from the prior N(0, I) (meaningful for --kind vae)."""
    encoder = load_encoder(obj, model)
    save_grid(encoder.decode(sample_prior(encoder.dim, n, seed)), output)
    obj.echo(f"samples: {output}")


@click.command(name="interpolate")
@input_file("image_a")
@input_file("image_b")
@click.option("--steps", type=click.IntRange(2, 64), default=8, show_default=True)
@output_option()
@model_option()
@pass_ctx
def interpolate_cmd(obj: Context, image_a: Path, image_b: Path, steps: int, output: Path,
                    model: Path | None) -> None:
    """A strip of STEPS images decoded along the line between two images' codes."""
    encoder = load_encoder(obj, model)
    codes = encoder.encode(np.stack([read_image(image_a, encoder.image_size),
                                     read_image(image_b, encoder.image_size)]))
    save_grid(encoder.decode(interpolate(codes[0], codes[1], steps)), output)
    obj.echo(f"interpolation: {output}")


@click.command(name="arithmetic")
@input_file("image_a")
@input_file("image_b")
@input_file("image_c")
@click.option("-k", type=click.IntRange(1, 100), default=5, show_default=True)
@output_option()
@model_option()
@pass_ctx
def arithmetic_cmd(obj: Context, image_a: Path, image_b: Path, image_c: Path, k: int,
                   output: Path, model: Path | None) -> None:
    """Decode A − B + C and list its K nearest indexed images."""
    encoder = serving_encoder(obj, model)
    codes = encoder.encode(np.stack([read_image(p, encoder.image_size)
                                     for p in (image_a, image_b, image_c)]))
    result = arithmetic(*codes)
    save_grid(encoder.decode(np.concatenate([codes, result[None]])), output)
    obj.echo(f"a, b, c, a − b + c: {output}")
    if not obj.settings.has_catalog:
        return  # nothing indexed: the decoded picture is the whole answer
    hits = checked_engine(obj, encoder).search_code(result, k)
    for rank, h in enumerate(hits, 1):
        click.echo(f"{rank:3d}  {h.score:7.4f}  {h.path}")
