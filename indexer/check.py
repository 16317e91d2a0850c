"""``lookalike check``: is the data dir consistent, and ``--repair`` what can be fixed.

The catalog is the truth and the FAISS index is derived from it, so the
checks compare the index with the catalog, the catalog with the files on
disk, and the catalog's codes with the current model. Repairs never lose
data the catalog cannot get back: the index is rebuilt from the codes the
catalog keeps, rows are dropped only when their file is gone, and codes
made by another model are left for ``lookalike index --reencode``.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from sqlalchemy import delete, select

from search.catalog import ImageRecord, ModelRecord
from search.checkpoints import kept_checkpoint
from search.lock import DEBRIS_PATTERNS, holder
from search.regular_files import check_indexed, sha256_file
from search.store import Store
from search.vector_index import VectorIndex, VectorIndexError

from .model import CheckpointError, load_checkpoint

SHOWN = 10  # paths listed per problem in the text report


@dataclass
class CheckReport:
    """What ``check`` found (and, after ``--repair``, what it did)."""

    data_dir: str
    model: str
    images: int = 0
    index_vectors: int | None = None
    model_problem: str | None = None
    index_problem: str | None = None
    index_behind: bool = False
    missing_from_index: list[int] = field(default_factory=list)
    extra_in_index: list[int] = field(default_factory=list)
    duplicates_in_index: list[int] = field(default_factory=list)
    missing_files: list[tuple[int, str]] = field(default_factory=list)
    changed_files: list[tuple[int, str]] = field(default_factory=list)  # not served (web.images)
    stale_model: list[tuple[int, str]] = field(default_factory=list)
    debris: list[str] = field(default_factory=list)
    writer: tuple[int, str] | None = None
    switch_pending: str | None = None  # the kept model still serving, while model.pt re-encodes
    repairs: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def index_needs_rebuild(self) -> bool:
        return bool(self.index_problem or self.index_behind or self.missing_from_index
                    or self.extra_in_index or self.duplicates_in_index)

    def findings(self) -> list[tuple[str, list[str]]]:
        """(headline, the ids or paths concerned) per kind of problem; empty when consistent."""
        out: list[tuple[str, list[str]]] = []
        if self.model_problem:
            out.append((self.model_problem, []))
        if self.index_problem:
            out.append((f"{self.index_problem} (--repair rebuilds it from the catalog)", []))
        if self.index_behind:
            out.append(("the index was saved before the catalog's last change (an indexing run "
                        "was interrupted?), so some vectors may be outdated (--repair rebuilds "
                        "it)", []))
        for ids, what in ((self.missing_from_index, "catalog image(s) missing from the index"),
                          (self.extra_in_index, "id(s) in the index that the catalog does "
                                                "not have"),
                          (self.duplicates_in_index, "id(s) more than once in the index")):
            if ids:
                out.append((f"{len(ids)} {what} (--repair rebuilds the index)",
                            [str(i) for i in ids]))
        if self.missing_files:
            out.append((f"{len(self.missing_files)} catalog image(s) whose file is gone "
                        "(--repair drops them)", [p for _, p in self.missing_files]))
        if self.changed_files:
            out.append((f"{len(self.changed_files)} catalog image(s) whose path no longer leads "
                        "to the file indexed (changed, replaced, or a link out of the folders "
                        "indexed); they are not served until `lookalike reindex` sees them "
                        "again", [p for _, p in self.changed_files]))
        if self.stale_model and self.switch_pending:
            out.append((f"{len(self.stale_model)} of {self.images} image(s) still to be "
                        f"re-encoded with the new model {self.model}; searches use the "
                        f"previous one, kept at {self.switch_pending}, until `lookalike "
                        "reindex` has done them all (--repair leaves the index alone)",
                        [p for _, p in self.stale_model]))
        elif self.stale_model:
            out.append((f"{len(self.stale_model)} image(s) encoded by another model than "
                        f"{self.model}: run `lookalike index {_folder_of(self.stale_model)} "
                        "--reencode` (--repair keeps them)", [p for _, p in self.stale_model]))
        if self.debris:
            out.append((f"{len(self.debris)} temp file(s) left by a killed writer "
                        "(--repair deletes them)", list(self.debris)))
        return out

    def problems(self) -> list[str]:
        return [headline for headline, _ in self.findings()]

    @property
    def ok(self) -> bool:
        return not self.problems()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["missing_files"] = [{"id": i, "path": p} for i, p in self.missing_files]
        d["changed_files"] = [{"id": i, "path": p} for i, p in self.changed_files]
        d["stale_model"] = [{"id": i, "path": p} for i, p in self.stale_model]
        d["writer"] = {"pid": self.writer[0], "doing": self.writer[1]} if self.writer else None
        d["repairs"] = [{"done": headline, "items": items} for headline, items in self.repairs]
        return {"ok": self.ok, "problems": self.problems(), **d}

    def render(self) -> str:
        """The text report: a header, what was repaired, then each problem or "ok"."""
        lines = [f"data dir: {self.data_dir}", f"model:    {self.model}",
                 f"catalog:  {self.images} image(s); index: "
                 + (f"{self.index_vectors} vector(s)" if self.index_vectors is not None
                    else "none")]
        if self.writer:
            lines.append(f"note: pid {self.writer[0]} is {self.writer[1]} this data dir right "
                         "now; what it has not saved yet shows up below")
        for headline, items in self.repairs:
            lines.append(f"repair: {headline}")
            lines += [f"    {item}" for item in items]
        findings = self.findings()
        for headline, items in findings:
            lines.append(f"problem: {headline}")
            lines += [f"    {item}" for item in _shown(items)]
        if not findings:
            lines.append("ok")
        return "\n".join(lines)


def check_data_dir(store: Store, model_path: str | os.PathLike | None = None) -> CheckReport:
    """Compare index, catalog, files on disk and model; changes nothing."""
    model_path = Path(model_path or store.model_path)
    report = CheckReport(str(store.data_dir), str(model_path), writer=holder(store.data_dir))
    with store.sessions() as s:
        rows = s.execute(select(ImageRecord.id, ImageRecord.path, ImageRecord.model_id,
                                ImageRecord.size, ImageRecord.mtime)).all()
        models = list(s.scalars(select(ModelRecord)))
    report.images = len(rows)
    current, dim, sha = _current_model(model_path, models, report, bool(rows))
    if current is not None or report.model_problem is None:
        report.stale_model = sorted((r.id, r.path) for r in rows
                                    if current is None or r.model_id != current.id)
    stale = {i for i, _ in report.stale_model}
    kept = kept_checkpoint(store, sha) if sha else None
    if kept is not None:
        # The index is the previous model's, serving while this one's re-encode is unfinished:
        # it matches no one model's rows until then, and rebuilding it would drop images.
        report.switch_pending = str(kept)
        _check_index(store, report, set(), None, None)
    else:
        _check_index(store, report, {r.id for r in rows} - stale, {r.id for r in rows}, dim)
    _check_files(store, report, rows)
    if report.writer is None:
        report.debris = sorted(str(p) for pat in DEBRIS_PATTERNS for p in store.data_dir.glob(pat))
    return report


def _check_files(store: Store, report: CheckReport, rows) -> None:
    """Fill in the files that are gone, and those that are not the file indexed any more."""
    roots, follow = store.roots(), store.follows_symlinks()
    for r in rows:
        if not os.path.exists(r.path):
            report.missing_files.append((r.id, r.path))
            continue
        try:
            check_indexed(r.path, r.size, r.mtime, roots, follow)
        except OSError:
            report.changed_files.append((r.id, r.path))
    report.missing_files.sort()
    report.changed_files.sort()


def repair_data_dir(store: Store, model_path: str | os.PathLike | None = None,
                    swept: Sequence[Path] = ()) -> CheckReport:
    """Check, fix what can be fixed without losing data, and check again.

    The caller holds the writer lock; *swept* is the debris taking it deleted.
    """
    report = check_data_dir(store, model_path)
    repairs: list[tuple[str, list[str]]] = []
    if swept:
        repairs.append((f"deleted {len(swept)} temp file(s) left by a killed writer",
                        [str(p) for p in swept]))
    if report.missing_files:
        _drop_rows(store, [i for i, _ in report.missing_files])
        repairs.append((f"dropped {len(report.missing_files)} catalog image(s) whose file is "
                        "gone", [p for _, p in report.missing_files]))
    if (report.index_needs_rebuild or report.missing_files) and not report.switch_pending:
        repairs.append((_rebuild_index(store, Path(model_path or store.model_path)), []))
    fresh = check_data_dir(store, model_path) if repairs else report
    fresh.repairs = repairs
    return fresh


def _current_model(path: Path, models: list[ModelRecord], report: CheckReport, has_rows: bool
                   ) -> tuple[ModelRecord | None, int | None, str | None]:
    """The catalog's record of the model at *path* (None: it made no codes), its code size
    and its sha256."""
    if not path.is_file():
        if has_rows:
            report.model_problem = (f"no model checkpoint at {path}: cannot tell which codes are "
                                    "current (train one, or pass --model)")
        return None, None, None
    sha = sha256_file(path)
    for m in models:
        if m.checkpoint_sha256 == sha:
            return m, m.latent_dim, sha
    try:
        return None, load_checkpoint(path).model.config.latent_dim, sha
    except CheckpointError as exc:
        report.model_problem = str(exc)
        return None, None, sha


def _check_index(store: Store, report: CheckReport, expected: set[int],
                 catalog: set[int] | None, dim: int | None) -> None:
    """Fill in the index findings: readable, right size, exactly the expected ids (only
    readable when *catalog* is None)."""
    try:
        index = store.load_index(mmap=True)
    except VectorIndexError as exc:
        if expected or store.index_path.exists():
            report.index_problem = str(exc)
        return
    ids = index.ids().tolist()
    report.index_vectors = len(ids)
    if catalog is None:
        return
    if dim is not None and index.dim != dim:
        report.index_problem = (f"the index holds {index.dim}-dimensional vectors but the model "
                                f"makes {dim}-dimensional codes")
    present = set(ids)
    report.duplicates_in_index = sorted(i for i, n in Counter(ids).items() if n > 1)
    report.extra_in_index = sorted(present - catalog)
    report.missing_from_index = sorted(expected - present)
    report.index_behind = not store.index_is_current()


def _drop_rows(store: Store, ids: list[int]) -> None:
    with store.sessions() as s, s.begin():
        s.execute(delete(ImageRecord).where(ImageRecord.id.in_(ids)))
        store.mark_catalog_changed(s)


def _rebuild_index(store: Store, model_path: Path) -> str:
    """A new index from the current model's catalog codes, saved and published."""
    probe = CheckReport(str(store.data_dir), str(model_path))
    with store.sessions() as s:
        models = list(s.scalars(select(ModelRecord)))
    current, dim, _ = _current_model(model_path, models, probe, has_rows=True)
    if dim is None:
        return f"could not rebuild the index: {probe.model_problem}"
    index = (store.rebuild_index(dim, current.id) if current is not None
             else VectorIndex.create(dim))
    store.publish_index(index, current.checkpoint_sha256 if current is not None else None)
    return f"rebuilt the index from the catalog's {index.ntotal} code(s) made by {model_path}"


def _shown(items: list[str], limit: int = SHOWN) -> list[str]:
    if len(items) <= limit:
        return items
    return items[:limit] + [f"… and {len(items) - limit} more"]


def _folder_of(rows: list[tuple[int, str]]) -> str:
    """The folder to re-index: the deepest one holding every listed file."""
    try:
        folder = os.path.commonpath([os.path.dirname(p) for _, p in rows])
    except ValueError:
        return "FOLDER"
    return folder if folder not in ("", os.sep) else "FOLDER"
