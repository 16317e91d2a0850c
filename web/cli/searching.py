"""``lookalike search``: the K indexed images most like one image, and the result sheet that
``lookalike demo`` also draws. A module of its own: a search loads the model, the index and
the catalog, not the indexing and training machinery."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from indexer.images import ImageDecodeError, load_image
from indexer.plots import save_result_sheet, tile_of
from search.engine import SearchEngine
from search.vector_index import omp_threads

from .context import Context, model_option, pass_ctx
from .encoders import checked_engine, serving_encoder


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", type=click.IntRange(1, 1000), default=10, show_default=True)
@model_option()
@click.option("--json", "as_json", is_flag=True)
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: query, its reconstruction, and each hit with its reconstruction.")
@pass_ctx
def search(obj: Context, image: Path, k: int, model: Path | None, as_json: bool,
           sheet: Path | None) -> None:
    """Find the K indexed images most like IMAGE."""
    encoder = serving_encoder(obj, model)
    engine = checked_engine(obj, encoder)
    try:
        # Read whole: the query is named by the user, so a FIFO (/dev/stdin) is fine here.
        pixels = load_image(image.read_bytes(), encoder.image_size)
        # One query gains nothing from more OpenMP threads, and on a busy machine the
        # idle ones' spinning turned a 0.1 ms FAISS search into ~25 ms (measured).
        with omp_threads(1):
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


def write_sheet(engine: SearchEngine, pixels, code, hits, path: Path) -> None:
    encoder = engine.encoder
    # Codes of this model only: during a switch to a new model, re-encoded rows hold the
    # new one's, which this decoder would turn into noise (or fail on, at another size).
    stored = engine.store.codes_of([h.id for h in hits], encoder.sha256)
    blank = np.zeros_like(code)
    recons = encoder.decode(np.stack([code] + [stored.get(h.id, blank) for h in hits]))
    tiles = []
    for h, recon in zip(hits, recons[1:]):
        tiles.append((tile_of(h.path, encoder.image_size), recon,
                      f"{h.score:.3f} {Path(h.path).name}"))
    save_result_sheet(pixels, recons[0], tiles, path)
