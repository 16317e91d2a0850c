"""Commands for the other autoencoder applications: denoise, anomalies, compress, explore.

Registered on the ``lookalike`` group by ``indexer.cli``.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from PIL import Image
from sqlalchemy import select

from search.catalog import ImageRecord, ModelRecord

from .cli import Context, checked_engine, cli, load_encoder, pass_ctx
from .compression import (
    DTYPES,
    CompressionError,
    ProductQuantizer,
    compress_code,
    decompress_code,
    psnr,
)
from .encoder import TorchEncoder
from .images import ImageDecodeError, load_image
from .latent import arithmetic, interpolate, sample_prior
from .plots import save_grid

_model_option = click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
                             help="Checkpoint (default: DATA_DIR/model.pt).")


def _load(path: Path, size: int) -> np.ndarray:
    try:
        return load_image(path, size)
    except ImageDecodeError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write (at the model's input size).")
@_model_option
@pass_ctx
def denoise(obj: Context, image: Path, output: Path, model: Path | None) -> None:
    """Remove noise from IMAGE with the model (best with one trained with --kind dae)."""
    encoder = load_encoder(obj, model)
    if encoder.kind != "dae":
        obj.echo(f"note: this model is a {encoder.kind!r}, not a denoising autoencoder "
                 "(train one with --kind dae)", err=True)
    Image.fromarray(encoder.reconstruct(_load(image, encoder.image_size)[None])[0]).save(output, "PNG")
    obj.echo(f"denoised: {output}")


@cli.command()
@click.option("--top", type=click.IntRange(1), help="List the N most unusual images.")
@click.option("--threshold", type=click.FloatRange(0),
              help="List images whose reconstruction MSE is above T "
                   "(default: the model's held-out 99th percentile).")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a PNG of their thumbnails.")
@click.option("--json", "as_json", is_flag=True)
@_model_option
@pass_ctx
def anomalies(obj: Context, top: int | None, threshold: float | None, sheet: Path | None,
              as_json: bool, model: Path | None) -> None:
    """The collection's outliers: images the model reconstructs worst."""
    encoder = load_encoder(obj, model)
    with obj.existing_store().sessions() as s:
        query = (select(ImageRecord).join(ModelRecord)
                 .where(ModelRecord.checkpoint_sha256 == encoder.sha256)
                 .order_by(ImageRecord.recon_error.desc()))
        if top is None:
            threshold = threshold if threshold is not None else encoder.anomaly_threshold
            if threshold is None:
                raise click.ClickException("this checkpoint has no anomaly threshold; pass "
                                           "--threshold T or --top N")
            query = query.where(ImageRecord.recon_error > threshold)
        else:
            query = query.limit(top)
        rows = list(s.scalars(query))
    if as_json:
        click.echo(json.dumps({"threshold": threshold, "anomalies": [
            {"id": r.id, "path": r.path, "error": r.recon_error} for r in rows]}, indent=2))
    else:
        if threshold is not None:
            obj.echo(f"{len(rows)} image(s) above reconstruction MSE {threshold:.5f}")
        for r in rows:
            click.echo(f"{r.recon_error:10.5f}  {r.path}")
    if sheet and rows:
        thumbs = []
        for r in rows[:64]:
            try:
                thumbs.append(load_image(r.path, 96))
            except ImageDecodeError:
                thumbs.append(np.full((96, 96, 3), 255, np.uint8))
        save_grid(np.stack(thumbs), sheet)
        obj.echo(f"sheet: {sheet}", err=as_json)


def _pq_path(obj: Context, encoder: TorchEncoder) -> Path:
    return obj.data_dir / f"pq-{encoder.sha256[:16]}.faiss"


def _product_quantizer(obj: Context, encoder: TorchEncoder, train: bool) -> ProductQuantizer:
    """The collection's PQ codebook for this model, trained on first use from indexed codes."""
    path = _pq_path(obj, encoder)
    if path.exists():
        return ProductQuantizer.load(path)
    if not train:
        raise click.ClickException(f"no product quantiser at {path}; compress with --dtype pq first")
    with obj.existing_store().sessions() as s:
        codes = [np.frombuffer(c, np.float32) for c in s.scalars(
            select(ImageRecord.code).join(ModelRecord)
            .where(ModelRecord.checkpoint_sha256 == encoder.sha256))]
    if len(codes) < 32:
        raise click.ClickException("PQ needs at least 32 indexed images to learn its codebook; "
                                   "run lookalike index FOLDER first")
    pq = ProductQuantizer.train(np.stack(codes))
    pq.save(path)
    return pq


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dtype", type=click.Choice(DTYPES), default="float16", show_default=True)
@_model_option
@pass_ctx
def compress(obj: Context, image: Path, output: Path, dtype: str, model: Path | None) -> None:
    """Store IMAGE as its latent code; prints sizes and the round-trip PSNR."""
    encoder = load_encoder(obj, model)
    pixels = _load(image, encoder.image_size)
    code = encoder.encode(pixels[None])[0]
    pq = _product_quantizer(obj, encoder, train=True) if dtype == "pq" else None
    blob = compress_code(code, dtype, encoder.sha256, pq)
    output.write_bytes(blob)
    restored = encoder.decode(decompress_code(blob, encoder.sha256, pq)[None])[0]
    buf = _png_bytes(pixels)
    click.echo(f"{output}: {len(blob)} bytes ({dtype}); source file {image.stat().st_size} bytes "
               f"({image.stat().st_size / len(blob):.0f}x), PNG at {encoder.image_size}px "
               f"{len(buf)} bytes ({len(buf) / len(blob):.0f}x); PSNR {psnr(pixels, restored):.1f} dB")


def _png_bytes(pixels: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", optimize=True)
    return buf.getvalue()


@cli.command()
@click.argument("code", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_model_option
@pass_ctx
def decompress(obj: Context, code: Path, output: Path, model: Path | None) -> None:
    """Decode a code file written by `lookalike compress` back to a PNG."""
    encoder = load_encoder(obj, model)
    blob = code.read_bytes()
    is_pq = blob[4:5] == bytes([DTYPES.index("pq")])
    pq = _product_quantizer(obj, encoder, train=False) if is_pq else None
    try:
        z = decompress_code(blob, encoder.sha256, pq)
    except CompressionError as exc:
        raise click.ClickException(f"{code}: {exc}") from exc
    Image.fromarray(encoder.decode(z[None])[0]).save(output, "PNG")
    obj.echo(f"decoded: {output}")


@cli.command()
@click.option("-n", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_model_option
@pass_ctx
def sample(obj: Context, n: int, seed: int | None, output: Path, model: Path | None) -> None:
    """Decode N codes drawn from the prior N(0, I) (meaningful for --kind vae)."""
    encoder = load_encoder(obj, model)
    save_grid(encoder.decode(sample_prior(encoder.dim, n, seed)), output)
    obj.echo(f"samples: {output}")


@cli.command(name="interpolate")
@click.argument("image_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("image_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--steps", type=click.IntRange(2, 64), default=8, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_model_option
@pass_ctx
def interpolate_cmd(obj: Context, image_a: Path, image_b: Path, steps: int, output: Path,
                    model: Path | None) -> None:
    """A strip of STEPS images decoded along the line between two images' codes."""
    encoder = load_encoder(obj, model)
    codes = encoder.encode(np.stack([_load(image_a, encoder.image_size),
                                     _load(image_b, encoder.image_size)]))
    save_grid(encoder.decode(interpolate(codes[0], codes[1], steps)), output)
    obj.echo(f"interpolation: {output}")


@cli.command(name="arithmetic")
@click.argument("image_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("image_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("image_c", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_model_option
@pass_ctx
def arithmetic_cmd(obj: Context, image_a: Path, image_b: Path, image_c: Path, k: int,
                   output: Path, model: Path | None) -> None:
    """Decode A − B + C and list its K nearest indexed images."""
    encoder = load_encoder(obj, model)
    codes = encoder.encode(np.stack([_load(p, encoder.image_size)
                                     for p in (image_a, image_b, image_c)]))
    result = arithmetic(*codes)
    save_grid(encoder.decode(np.concatenate([codes, result[None]])), output)
    obj.echo(f"a, b, c, a − b + c: {output}")
    if not obj.has_catalog:
        return  # nothing indexed: the decoded picture is the whole answer
    hits = checked_engine(obj, encoder).search_code(result, k)
    for rank, h in enumerate(hits, 1):
        click.echo(f"{rank:3d}  {h.score:7.4f}  {h.path}")
