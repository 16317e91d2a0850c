"""Near-duplicate groups: every copy of every photo in the catalog, from the stored codes.

Exact copies (the same sha256) are a certain tier and always share a group,
whatever the threshold. Near copies are found with a FAISS range search
(cosine ≥ threshold) over one code per distinct content; its graph's
connected components are then cut by complete linkage, so that every pair
in a group is within the threshold and one chain of weak links (a ~ b ~ c
with a far from c) does not merge a whole library. A component too large
for a dense linkage is cut greedily around its best-connected images.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import faiss
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import select

from search.catalog import ImageRecord, ModelRecord
from search.engine import Hit
from search.store import Store
from search.vector_index import normalise

# Calibrated by bench/duplicates.py on the edited-copies benchmark (BENCHMARKS.md).
DEFAULT_THRESHOLD = 0.37
LINKAGE_LIMIT = 3000  # larger components are cut greedily: a dense linkage is O(n²) memory
MAX_PAIRS = 50_000_000  # candidate pairs held at once (~600 MB); a lower threshold is refused
CHUNK = 4096  # codes whose neighbours one range search returns


class TooManyPairs(ValueError):
    """The threshold is so low that nearly every pair of images would be a candidate."""


@dataclass(frozen=True)
class Member:
    id: int
    path: str
    width: int
    height: int
    size: int
    similarity_to_first: float


@dataclass(frozen=True)
class Group:
    """One photo's copies, the one to keep first (most pixels, then largest file)."""

    members: list[Member]
    exact: bool  # all the same bytes

    @property
    def id(self) -> int:
        """Stable across runs while the group's images stay: its smallest image id."""
        return min(m.id for m in self.members)

    def as_dict(self) -> dict:
        return {"id": self.id, "size": len(self.members), "exact": self.exact,
                "images": [{"id": m.id, "path": m.path, "width": m.width, "height": m.height,
                            "bytes": m.size,
                            "similarity_to_first": round(m.similarity_to_first, 6)}
                           for m in self.members]}


def complete_linkage_groups(codes: np.ndarray, threshold: float) -> list[list[int]]:
    """Row indices of *codes* in groups whose every pair has cosine ≥ *threshold*;
    singletons left out."""
    codes = normalise(codes)
    if len(codes) < 2:
        return []
    graph = _neighbour_graph(codes, threshold)
    _, labels = connected_components(graph, directed=False)
    groups: list[list[int]] = []
    for component in _members_by_label(labels):
        if len(component) <= LINKAGE_LIMIT:
            groups += _linkage_cut(codes, component, threshold)
        else:
            groups += _greedy_cut(codes, graph, component, threshold)
    return [g for g in groups if len(g) > 1]


def _neighbour_graph(codes: np.ndarray, threshold: float) -> csr_matrix:
    """Which codes are within *threshold* of which, found a chunk of queries at a time so
    that a threshold too low for the library is refused before memory runs out."""
    index = faiss.IndexFlatIP(codes.shape[1])
    index.add(codes)
    rows, cols, total = [], [], 0
    for start in range(0, len(codes), CHUNK):
        lims, _, neighbours = index.range_search(codes[start:start + CHUNK], float(threshold))
        total += len(neighbours)
        if total > MAX_PAIRS:
            raise TooManyPairs(f"at similarity {threshold:g} more than {MAX_PAIRS:,} pairs of "
                               f"images are candidates: raise the threshold")
        rows.append(start + np.repeat(np.arange(len(lims) - 1), np.diff(lims).astype(np.int64)))
        cols.append(neighbours)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return csr_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(len(codes),) * 2)


def _members_by_label(labels: np.ndarray) -> list[list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(labels):
        found[int(label)].append(row)
    return [m for m in found.values() if len(m) > 1]


def _linkage_cut(codes: np.ndarray, component: list[int], threshold: float) -> list[list[int]]:
    """Complete linkage over one component: every pair in a part is within the threshold."""
    sims = codes[component] @ codes[component].T
    distances = np.clip(1.0 - sims[np.triu_indices(len(component), 1)], 0.0, 2.0)
    labels = fcluster(linkage(distances, method="complete"), t=1.0 - threshold,
                      criterion="distance")
    return [[component[i] for i in part] for part in _members_by_label(labels - 1)]


def _greedy_cut(codes: np.ndarray, graph: csr_matrix, component: list[int],
                threshold: float) -> list[list[int]]:
    """Seeds by how many neighbours they have; each takes its free neighbours that are
    close to all of its part so far (complete linkage's guarantee, in memory that grows
    with the neighbour lists, not with the component's square)."""
    free = np.zeros(len(codes), bool)
    free[component] = True
    degree = np.diff(graph.indptr)
    parts = []
    for seed in sorted(component, key=lambda i: (-degree[i], i)):
        if not free[seed]:
            continue
        part = [seed]
        free[seed] = False
        for candidate in graph.indices[graph.indptr[seed]:graph.indptr[seed + 1]]:
            if free[candidate] and (codes[part] @ codes[candidate] >= threshold).all():
                part.append(int(candidate))
                free[candidate] = False
        parts.append(part)
    return parts


def collapse_hits(store: Store, hits: list[Hit], threshold: float = DEFAULT_THRESHOLD,
                  ) -> list[tuple[Hit, list[Hit]]]:
    """Search results with each near-duplicate folded under the best-ranked hit it copies
    (cosine ≥ *threshold* between their stored codes), in rank order."""
    stored = store.codes_of([h.id for h in hits])
    hits = [h for h in hits if h.id in stored]  # one removed since the search is shown nowhere
    if not hits:
        return []
    codes = normalise(np.stack([stored[h.id] for h in hits]))
    sims = codes @ codes.T
    kept: list[int] = []  # rows of the hits shown, best first
    folded: dict[int, list[Hit]] = {}
    for row, hit in enumerate(hits):
        under = next((k for k in kept if sims[k, row] >= threshold), None)
        if under is None:
            kept.append(row)
            folded[row] = []
        else:
            folded[under].append(hit)
    return [(hits[k], folded[k]) for k in kept]


def find_duplicates(store: Store, checkpoint_sha256: str, threshold: float = DEFAULT_THRESHOLD,
                    min_size: int = 2) -> list[Group]:
    """The catalog's duplicate groups among the images this checkpoint encoded, largest first."""
    rows = _rows(store, checkpoint_sha256)
    by_content: dict[str, list] = defaultdict(list)
    for row in rows:
        by_content[row.sha256].append(row)
    contents = list(by_content.values())
    codes = np.stack([np.frombuffer(c[0].code, np.float32) for c in contents]) if contents \
        else np.zeros((0, 1), np.float32)
    near = complete_linkage_groups(codes, threshold)
    grouped = {i for g in near for i in g}
    parts = near + [[i] for i, copies in enumerate(contents) if len(copies) > 1 and i not in grouped]
    groups = [_group([r for i in part for r in contents[i]], len(part) == 1) for part in parts]
    groups = [g for g in groups if len(g.members) >= min_size]
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


def _rows(store: Store, checkpoint_sha256: str) -> list:
    query = (select(ImageRecord.id, ImageRecord.path, ImageRecord.sha256, ImageRecord.code,
                    ImageRecord.width, ImageRecord.height, ImageRecord.size)
             .join(ModelRecord).where(ModelRecord.checkpoint_sha256 == checkpoint_sha256)
             .order_by(ImageRecord.id))
    with store.sessions() as s:
        return list(s.execute(query))


def _group(rows: list, exact: bool) -> Group:
    """Members in keeping order, each with its code's similarity to the first."""
    rows = sorted(rows, key=lambda r: (-(r.width or 0) * (r.height or 0), -(r.size or 0), r.id))
    codes = normalise(np.stack([np.frombuffer(r.code, np.float32) for r in rows]))
    sims = codes @ codes[0]
    return Group([Member(r.id, r.path, r.width, r.height, r.size, float(s))
                  for r, s in zip(rows, sims)], exact)
