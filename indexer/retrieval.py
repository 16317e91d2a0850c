"""Retrieval quality on a labelled collection, against classic baselines.

Labels are sub-folder names (torchvision ImageFolder layout). Queries rank
the whole database; an image is relevant when it shares the query's label.
The baselines run in the same call on the same images and split: raw
pixels at the model's input size (L2) and PCA with the latent's dimension
(L2 and cosine).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import imagehash
import numpy as np
import torch
from PIL import Image
from sqlalchemy import select
from tqdm import tqdm

from search.catalog import ImageRecord, ModelRecord, path_under
from search.store import Store

from .encoding import TorchEncoder
from .images import decode_many, walk_images


class EvaluationError(ValueError):
    """The collection cannot be evaluated (no labels, nothing indexed...)."""


@dataclass
class Metrics:
    mAP: float
    p_at_1: float
    p_at_10: float
    knn10_accuracy: float
    queries: int
    database: int


MODES = ("classes", "copies")
# How a ranking compares two feature vectors (the metrics are what it is scored by: mAP, P@k).
SIMILARITIES = ("cosine", "l2", "chi2")


def _scores(q: torch.Tensor, db: torch.Tensor, similarity: str) -> torch.Tensor:
    if similarity == "cosine":
        return q @ db.T
    if similarity == "chi2":
        return -chi2_distances(q, db)
    # −‖q − d‖² up to a per-query constant, which does not change the ranking;
    # on 0/1 bit vectors that is the Hamming distance.
    return 2 * q @ db.T - (db * db).sum(1)[None, :]


def chi2_distances(q, db, block: int = 1 << 24) -> torch.Tensor:
    """χ² distance Σ (q − d)² / (q + d) between histograms, in blocks that fit in memory."""
    q, db = torch.as_tensor(q), torch.as_tensor(db)
    step = max(1, block // max(1, q.shape[0] * q.shape[1]))
    out = []
    for i in range(0, len(db), step):
        d = db[i:i + step][None]
        num = (q[:, None] - d).pow(2)
        out.append((num / (q[:, None] + d).clamp(min=1e-12)).sum(2))
    return torch.cat(out, 1)


def retrieval_metrics(queries: np.ndarray, query_labels: Sequence, database: np.ndarray,
                      database_labels: Sequence, similarity: str = "cosine", chunk: int = 256,
                      progress: bool = False, desc: str = "ranking") -> Metrics:
    """mAP over the full ranking, P@1, P@10 and kNN-10 accuracy (majority vote)."""
    classes = {c: i for i, c in enumerate(sorted(set(database_labels) | set(query_labels)))}
    ql = torch.tensor([classes[c] for c in query_labels])
    dl = torch.tensor([classes[c] for c in database_labels])
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    db = torch.from_numpy(np.ascontiguousarray(database, dtype=np.float32))
    if similarity == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        db = torch.nn.functional.normalize(db, dim=1)
    n_rel_total = torch.bincount(dl, minlength=len(classes)).float()
    ap_sum = p1 = p10 = knn = 0.0
    k = min(10, len(db))
    for start in tqdm(range(0, len(q), chunk), desc=desc, unit="chunk", disable=not progress):
        s = _scores(q[start:start + chunk], db, similarity)
        order = torch.argsort(s, dim=1, descending=True, stable=True)  # ties: database order
        labels = ql[start:start + chunk]
        rel = (dl[order] == labels[:, None]).float()
        hits = rel.cumsum(1)
        ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float32)
        ap = (hits / ranks * rel).sum(1) / n_rel_total[labels].clamp(min=1)
        ap_sum += ap.sum().item()
        p1 += rel[:, 0].sum().item()
        p10 += rel[:, :k].mean(1).sum().item()
        votes = torch.nn.functional.one_hot(dl[order[:, :k]], len(classes)).sum(1)
        knn += (votes.argmax(1) == labels).float().sum().item()
    n = len(q)
    return Metrics(ap_sum / n, p1 / n, p10 / n, knn / n, n, len(db))


def label_of(path: str, root: Path, mode: str = "classes") -> str:
    """The class (``classes``) or source photo (``copies``) an image belongs to.

    Both read the first sub-folder. In ``copies`` mode an image right in
    *root* is a source of its own, named by its file stem, so originals may
    lie flat beside folders of their copies (``cat.jpg``, ``cat/crop.jpg``).
    """
    rel = Path(path).relative_to(root)
    if len(rel.parts) >= 2:
        return rel.parts[0]
    if mode == "copies":
        return rel.stem
    raise EvaluationError(f"{path} is not inside a class sub-folder of {root}")


def colour_histograms(pixels: np.ndarray, bins: int = 8) -> np.ndarray:
    """(N, S·S·3) uint8 → (N, bins³) joint RGB histograms that sum to 1: the χ² baseline."""
    q = pixels.reshape(len(pixels), -1, 3).astype(np.int64) * bins // 256
    flat = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = np.stack([np.bincount(row, minlength=bins ** 3) for row in flat]).astype(np.float32)
    return hist / hist.sum(1, keepdims=True)


def perceptual_hashes(pixels: np.ndarray, size: int, hash_name: str) -> np.ndarray:
    """64-bit pHash or dHash (the ``imagehash`` library) of each image, as 0/1 floats."""
    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash}[hash_name]
    return np.stack([fn(Image.fromarray(p.reshape(size, size, 3))).hash.reshape(-1)
                     for p in pixels]).astype(np.float32)


def pca_projection(train: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-*dim* principal axes of *train* (rows are samples), via the covariance."""
    x = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32)).double()
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / max(len(x) - 1, 1)
    _, vecs = torch.linalg.eigh(cov)
    axes = vecs[:, -dim:].flip(1)
    return mean.float().numpy(), axes.float().numpy()


@dataclass
class EvalReport:
    model: Metrics
    baselines: dict[str, Metrics]
    latent_dim: int
    image_size: int

    def as_dict(self) -> dict:
        return {"latent_dim": self.latent_dim, "image_size": self.image_size,
                "results": {"autoencoder (cosine)": asdict(self.model),
                            **{k: asdict(v) for k, v in self.baselines.items()}}}

    def table(self) -> str:
        lines = [f"{'method':<24}{'mAP':>8}{'P@1':>8}{'P@10':>8}{'kNN-10':>8}"]
        for name, m in [("autoencoder (cosine)", self.model), *self.baselines.items()]:
            lines.append(f"{name:<24}{m.mAP:8.4f}{m.p_at_1:8.4f}{m.p_at_10:8.4f}"
                         f"{m.knn10_accuracy:8.4f}")
        return "\n".join(lines)


def _indexed(store: Store, root: Path, encoder: TorchEncoder) -> tuple[list[str], np.ndarray]:
    with store.sessions() as s:
        model = s.scalar(select(ModelRecord).where(ModelRecord.checkpoint_sha256 == encoder.sha256))
        if model is None:
            raise EvaluationError("nothing was indexed with the current model; run lookalike index")
        rows = s.execute(select(ImageRecord.path, ImageRecord.code)
                         .where(ImageRecord.model_id == model.id)
                         .where(path_under(ImageRecord.path, str(root)))
                         .order_by(ImageRecord.path)).all()
    if not rows:
        raise EvaluationError(f"no images under {root} are indexed with the current model; "
                              f"run: lookalike index {root}")
    return [r[0] for r in rows], np.stack([np.frombuffer(r[1], np.float32) for r in rows])


def _pixels(paths: Sequence[str], size: int, progress: bool, workers: int | None) -> np.ndarray:
    out = np.zeros((len(paths), size * size * 3), np.uint8)
    for i, d in enumerate(tqdm(decode_many([Path(p) for p in paths], size, workers),
                               total=len(paths), desc="decoding", unit="img",
                               disable=not progress)):
        if d.pixels is None:
            raise EvaluationError(f"{d.path}: {d.error}")
        out[i] = d.pixels.reshape(-1)
    return out


def evaluate_collection(store: Store, encoder: TorchEncoder, folder: str | Path,
                        queries_folder: str | Path | None = None, query_fraction: float = 0.1,
                        seed: int = 0, baselines: bool = True, progress: bool = True,
                        workers: int | None = None, mode: str = "classes") -> EvalReport:
    """Score the indexed codes of *folder*; queries are a seeded split or a second folder.

    Codes of a ``queries_folder`` are computed here, not indexed, so an
    evaluation never adds images to the collection. ``mode`` ``classes``:
    relevant = same class, baselines pixels and PCA; ``copies``: relevant =
    same source photo, baselines colour histograms and perceptual hashes.
    """
    if mode not in MODES:
        raise EvaluationError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    root = Path(folder).resolve()
    db_paths, db_codes = _indexed(store, root, encoder)
    db_labels = [label_of(p, root, mode) for p in db_paths]
    size = encoder.image_size
    if queries_folder is not None:
        qroot = Path(queries_folder).resolve()
        q_paths = [str(p) for p in walk_images(qroot)]
        if not q_paths:
            raise EvaluationError(f"no images under {qroot}")
        q_labels = [label_of(p, qroot, mode) for p in q_paths]
        q_pix = _pixels(q_paths, size, progress, workers)
        q_codes = np.concatenate([encoder.encode(b.reshape(-1, size, size, 3))
                                  for b in np.array_split(q_pix, max(1, len(q_pix) // 512))])
        db_pix = _pixels(db_paths, size, progress, workers) if baselines else None
    else:
        if not 0 < query_fraction < 1:
            raise EvaluationError("--query-fraction must be between 0 and 1")
        order = np.random.default_rng(seed).permutation(len(db_paths))
        n_q = max(1, int(round(len(order) * query_fraction)))
        qi, di = np.sort(order[:n_q]), np.sort(order[n_q:])
        q_codes, q_labels = db_codes[qi], [db_labels[i] for i in qi]
        all_pix = _pixels(db_paths, size, progress, workers) if baselines else None
        q_pix = all_pix[qi] if baselines else None
        db_pix = all_pix[di] if baselines else None
        db_codes, db_labels = db_codes[di], [db_labels[i] for i in di]
    if len(set(db_labels)) < 2:
        raise EvaluationError(f"need at least two {'sources' if mode == 'copies' else 'class sub-folders'}"
                              " to evaluate")
    model = retrieval_metrics(q_codes, q_labels, db_codes, db_labels, "cosine",
                              progress=progress, desc="autoencoder")
    extra: dict[str, Metrics] = {}
    if baselines:
        features = copy_features if mode == "copies" else class_features
        for name, (q_f, db_f, similarity) in features(q_pix, db_pix, size, encoder.dim).items():
            extra[name] = retrieval_metrics(q_f, q_labels, db_f, db_labels, similarity,
                                            progress=progress, desc=name)
    return EvalReport(model, extra, encoder.dim, size)


Baselines = dict[str, tuple[np.ndarray, np.ndarray, str]]


def class_features(q_pix: np.ndarray, db_pix: np.ndarray, size: int, dim: int) -> Baselines:
    """Raw pixels and PCA at the code's dimension: what a learned code must beat on classes."""
    q_f, db_f = q_pix.astype(np.float32) / 255, db_pix.astype(np.float32) / 255
    mean, axes = pca_projection(db_f, dim)
    q_p, db_p = (q_f - mean) @ axes, (db_f - mean) @ axes
    return {"raw pixels (L2)": (q_f, db_f, "l2"), f"PCA-{dim} (L2)": (q_p, db_p, "l2"),
            f"PCA-{dim} (cosine)": (q_p, db_p, "cosine")}


def copy_features(q_pix: np.ndarray, db_pix: np.ndarray, size: int, dim: int) -> Baselines:
    """Colour histograms (χ²) and perceptual hashes (Hamming): the classic copy detectors."""
    out = {"colour histogram (χ²)": (colour_histograms(q_pix), colour_histograms(db_pix), "chi2")}
    for hash_name in ("phash", "dhash"):
        out[f"{hash_name} (Hamming)"] = (perceptual_hashes(q_pix, size, hash_name),
                                    perceptual_hashes(db_pix, size, hash_name), "l2")
    return out
