"""Near-duplicate groups: every copy of every photo in the catalog, from the stored codes.

Exact copies (the same sha256) are a certain tier and always share a group,
whatever the threshold. Near copies are found with a FAISS range search
(cosine ≥ threshold) over one code per distinct content; its graph's
connected components are then cut by complete linkage, so that every pair
in a group is within the threshold and one chain of weak links (a ~ b ~ c
with a far from c) does not merge a whole library. A component too large
for a dense linkage is cut greedily around its best-connected images.

A reviewer's decisions (``search.decisions``) are honoured here: contents
they called "not duplicates" never share a group again (a group holding two
is cut again with their distance made the largest there is, so complete
linkage cannot join them), and a group they settled carries its decision.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence, TextIO

import faiss
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import select

from .catalog import ImageRecord, ModelRecord
from .decisions import KEEP, NOT_DUPLICATES, Decision
from .engine import Hit
from .store import Store
from .vector_index import normalise

# Calibrated by bench/duplicates.py on the edited-copies benchmark (BENCHMARKS.md); used
# for checkpoints without their own copy threshold (indexer.validation.copy_calibration).
DEFAULT_THRESHOLD = 0.37
# The threshold of a model that cannot tell copies apart: identical codes only (float32
# cosines of a code with itself come out a few units in the last place below 1).
IDENTICAL = 0.9999
LINKAGE_LIMIT = 3000  # larger components are cut greedily: a dense linkage is O(n²) memory
MAX_PAIRS = 50_000_000  # candidate pairs held at once (~600 MB); a lower threshold is refused
CHUNK = 4096  # codes whose neighbours one range search returns
APART = 3.0  # the linkage distance of contents a reviewer kept apart: beyond any cosine's 2
STATUSES = ("pending", "reviewed", "all")  # which groups to list: see with_status


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
    """One photo's copies, the one to keep first (most pixels, then largest file, unless
    a reviewer chose another)."""

    members: list[Member]
    exact: bool  # all the same bytes
    largest: int  # id of the member with the most pixels (then bytes)
    decision: Decision | None = None  # the reviewer's, when one settles this group

    @property
    def id(self) -> int:
        """Stable across runs while the group's images stay: its smallest image id."""
        return min(m.id for m in self.members)

    def as_dict(self) -> dict:
        return {"id": self.id, "size": len(self.members), "exact": self.exact,
                "decision": self.decision.as_dict() if self.decision else None,
                "images": [{"id": m.id, "path": m.path, "width": m.width, "height": m.height,
                            "bytes": m.size, "largest": m.id == self.largest,
                            "kept": i == 0 and self.kept,
                            "similarity_to_first": round(m.similarity_to_first, 6)}
                           for i, m in enumerate(self.members)]}

    @property
    def kept(self) -> bool:
        """Whether the first member is there by a reviewer's "keep" (the rest: to delete)."""
        return self.decision is not None and self.decision.kind == KEEP


def complete_linkage_groups(codes: np.ndarray, threshold: float,
                            apart: Sequence[Sequence[int]] = ()) -> list[list[int]]:
    """Row indices of *codes* in groups whose every pair has cosine ≥ *threshold*;
    singletons left out. No two rows of one *apart* list share a group."""
    codes = normalise(codes)
    if len(codes) < 2:
        return []
    graph = neighbour_graph(codes, threshold)
    return keep_apart(codes, graph, cut_components(codes, graph, threshold), threshold, apart)


def cut_components(codes: np.ndarray, graph: csr_matrix, threshold: float) -> list[list[int]]:
    """The groups of :func:`complete_linkage_groups` from its (costly) neighbour graph,
    before any rows are kept apart."""
    _, labels = connected_components(graph, directed=False)
    groups: list[list[int]] = []
    for component in _members_by_label(labels):
        groups += _cut(codes, graph, component, threshold, {})
    return [g for g in groups if len(g) > 1]


def keep_apart(codes: np.ndarray, graph: csr_matrix, groups: list[list[int]],
               threshold: float, apart: Sequence[Sequence[int]]) -> list[list[int]]:
    """*groups* with no two rows of one *apart* list together: a group holding two is cut
    again within itself, those rows made too far apart to join. The rest stay as they
    are, so a decision costs one small cut, not a new cut of the whole library."""
    labels_of: dict[int, set[int]] = defaultdict(set)  # row -> the apart lists it is in
    for label, rows in enumerate(apart):
        for row in rows:
            labels_of[row].add(label)
    kept: list[list[int]] = []
    for group in groups:
        seen = [label for row in group for label in labels_of.get(row, ())]
        if len(seen) == len(set(seen)):
            kept.append(group)
        else:
            kept += [g for g in _cut(codes, graph, group, threshold, labels_of) if len(g) > 1]
    return kept


def _cut(codes: np.ndarray, graph: csr_matrix, rows: list[int], threshold: float,
         labels_of: dict[int, set[int]]) -> list[list[int]]:
    if len(rows) <= LINKAGE_LIMIT:
        return _linkage_cut(codes, rows, threshold, labels_of)
    return _greedy_cut(codes, graph, rows, threshold, labels_of)


def neighbour_graph(codes: np.ndarray, threshold: float) -> csr_matrix:
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


def _linkage_cut(codes: np.ndarray, component: list[int], threshold: float,
                 labels_of: dict[int, set[int]]) -> list[list[int]]:
    """Complete linkage over one component: every pair in a part is within the threshold;
    rows kept apart are made farther than any threshold allows, so no part takes both."""
    sims = codes[component] @ codes[component].T
    together: dict[int, list[int]] = defaultdict(list)
    for position, row in enumerate(component):
        for label in labels_of.get(row, ()):
            together[label].append(position)
    distances = np.clip(1.0 - sims, 0.0, 2.0)
    for positions in together.values():
        distances[np.ix_(positions, positions)] = APART
    distances = distances[np.triu_indices(len(component), 1)]
    labels = fcluster(linkage(distances, method="complete"), t=1.0 - threshold,
                      criterion="distance")
    return [[component[i] for i in part] for part in _members_by_label(labels - 1)]


def _greedy_cut(codes: np.ndarray, graph: csr_matrix, component: list[int],
                threshold: float, labels_of: dict[int, set[int]]) -> list[list[int]]:
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
        part, kept_apart = [seed], set(labels_of.get(seed, ()))
        free[seed] = False
        for candidate in graph.indices[graph.indptr[seed]:graph.indptr[seed + 1]]:
            if (free[candidate] and kept_apart.isdisjoint(labels_of.get(candidate, ()))
                    and (codes[part] @ codes[candidate] >= threshold).all()):
                part.append(int(candidate))
                kept_apart |= labels_of.get(candidate, set())
                free[candidate] = False
        parts.append(part)
    return parts


def collapse_hits(store: Store, hits: list[Hit], threshold: float = DEFAULT_THRESHOLD,
                  part: slice = slice(None)) -> list[tuple[Hit, list[Hit]]]:
    """Search results with each near-duplicate folded under the best-ranked hit it copies
    (cosine ≥ *threshold* between the copy parts *part* of their stored codes), in rank
    order."""
    stored = store.codes_of([h.id for h in hits])
    hits = [h for h in hits if h.id in stored]  # one removed since the search is shown nowhere
    if not hits:
        return []
    codes = normalise(np.stack([stored[h.id][part] for h in hits]))
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


@dataclass
class Candidates:
    """The costly part of grouping (the range search and its cut), reusable while the
    catalog, the model and the threshold stay: a decision only re-cuts the groups it
    splits."""

    contents: list[list]  # the catalog rows of each distinct content (sha256)
    codes: np.ndarray  # one normalised code (its copy part) per content
    graph: csr_matrix
    threshold: float
    part: slice = field(default_factory=lambda: slice(None))  # the copy part of the codes
    near: list[list[int]] = field(init=False)  # the cut before decisions, rows of codes
    row_of: dict[str, int] = field(init=False)  # sha256 -> row in codes

    def __post_init__(self) -> None:
        self.near = cut_components(self.codes, self.graph, self.threshold)
        self.row_of = {rows[0].sha256: i for i, rows in enumerate(self.contents)}


def find_candidates(store: Store, checkpoint_sha256: str,
                    threshold: float = DEFAULT_THRESHOLD) -> Candidates:
    """Every pair of this checkpoint's images that may be copies, one code per content."""
    by_content: dict[str, list] = defaultdict(list)
    part = copy_part_of(store, checkpoint_sha256)
    for row in _rows(store, checkpoint_sha256):
        by_content[row.sha256].append(row)
    contents = list(by_content.values())
    if len(contents) < 2:
        return Candidates(contents, np.zeros((len(contents), 1), np.float32),
                          csr_matrix((len(contents),) * 2, dtype=np.int8), threshold, part)
    codes = normalise(np.stack([np.frombuffer(c[0].code, np.float32)[part] for c in contents]))
    return Candidates(contents, codes, neighbour_graph(codes, threshold), threshold, part)


def copy_part_of(store: Store, checkpoint_sha256: str) -> slice:
    """The numbers of this checkpoint's codes that tell copies apart (``AEConfig.copy_dim``,
    as the catalog recorded the model's config; all of them for models from before)."""
    with store.sessions() as s:
        config = s.scalar(select(ModelRecord.config)
                          .where(ModelRecord.checkpoint_sha256 == checkpoint_sha256)) or {}
    return slice(0, config.get("copy_dim") or None)


def model_threshold(copy_threshold: float | None, separates_copies: bool) -> float:
    """The threshold grouping uses unless asked for another: the model's own calibration
    (``indexer.validation.copy_calibration``); identical codes only for a model that
    could not tell copies from look-alikes in its collection (IDENTICAL); DEFAULT_THRESHOLD for a
    checkpoint from before calibration."""
    if copy_threshold is not None:
        return copy_threshold
    return DEFAULT_THRESHOLD if separates_copies else IDENTICAL


def group_candidates(candidates: Candidates, decisions: Sequence[Decision] = (),
                     min_size: int = 2) -> list[Group]:
    """The groups, largest first; each with the newest decision that settles it, if any.

    A "not duplicates" decision keeps its contents apart; a "keep" puts the
    kept image first.
    """
    apart = [[candidates.row_of[s] for s in d.contents if s in candidates.row_of]
             for d in decisions if d.kind == NOT_DUPLICATES]
    near = keep_apart(candidates.codes, candidates.graph, candidates.near,
                      candidates.threshold, apart)
    grouped = {i for g in near for i in g}
    parts = near + [[i] for i, rows in enumerate(candidates.contents)
                    if len(rows) > 1 and i not in grouped]
    covering: dict[str, list[Decision]] = defaultdict(list)  # content -> decisions, newest first
    for decision in sorted(decisions, key=lambda d: -d.id):
        for content in decision.contents:
            covering[content].append(decision)
    groups = []
    for members in parts:
        rows = [r for i in members for r in candidates.contents[i]]
        if len(rows) >= min_size:
            groups.append(_group(rows, len(members) == 1, _settling(covering, rows),
                                 candidates.part))
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


def find_duplicates(store: Store, checkpoint_sha256: str, threshold: float = DEFAULT_THRESHOLD,
                    min_size: int = 2, decisions: Sequence[Decision] = ()) -> list[Group]:
    """The catalog's duplicate groups among the images this checkpoint encoded, largest first."""
    return group_candidates(find_candidates(store, checkpoint_sha256, threshold), decisions,
                            min_size)


def with_status(groups: list[Group], status: str) -> list[Group]:
    """Those still to review (``pending``), those settled (``reviewed``), or ``all``."""
    if status == "all":
        return groups
    return [g for g in groups if (g.decision is None) == (status == "pending")]


def _settling(covering: dict[str, list[Decision]], rows: list) -> Decision | None:
    """The newest decision that settles a group of these rows (any that does names all of
    its contents, so the first row's are the only ones to try)."""
    contents = frozenset(r.sha256 for r in rows)
    return next((d for d in covering.get(rows[0].sha256, ()) if d.covers(contents)), None)


def _rows(store: Store, checkpoint_sha256: str) -> list:
    query = (select(ImageRecord.id, ImageRecord.path, ImageRecord.sha256, ImageRecord.code,
                    ImageRecord.width, ImageRecord.height, ImageRecord.size)
             .join(ModelRecord).where(ModelRecord.checkpoint_sha256 == checkpoint_sha256)
             .order_by(ImageRecord.id))
    with store.sessions() as s:
        return list(s.execute(query))


def _group(rows: list, exact: bool, decision: Decision | None, part: slice) -> Group:
    """Members in keeping order (the kept image first, when decided), each with its code's
    similarity to the first."""
    rows = sorted(rows, key=_keeping_order)
    largest = rows[0].id
    if decision is not None and decision.kind == KEEP:
        same = [r for r in rows if r.sha256 == decision.keep_sha256]  # covers() saw one
        kept = next((r for r in same if r.id == decision.keep_id), same[0])
        rows = [kept] + [r for r in rows if r is not kept]
    codes = normalise(np.stack([np.frombuffer(r.code, np.float32)[part] for r in rows]))
    sims = codes @ codes[0]
    return Group([Member(r.id, r.path, r.width, r.height, r.size, float(s))
                  for r, s in zip(rows, sims)], exact, largest, decision)


def _keeping_order(row) -> tuple:
    """Most pixels first, then the largest file (the least compressed), then the oldest id."""
    return -(row.width or 0) * (row.height or 0), -(row.size or 0), row.id


CSV_COLUMNS = ("group", "image", "path", "bytes", "width", "height", "pixels",
               "similarity_to_first", "decision")


def write_csv(groups: Sequence[Group], out: TextIO) -> None:
    """The groups as CSV, a row per image (``lookalike duplicates --csv`` and the page's
    download): *decision* is ``keep`` or ``copy`` in a group a reviewer settled with one
    kept, ``not_duplicates``, or empty while the group is pending."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for group in groups:
        kind = group.decision.kind if group.decision else ""
        for place, m in enumerate(group.members):
            decision = ("keep" if place == 0 else "copy") if kind == KEEP else kind
            writer.writerow((group.id, m.id, m.path, m.size, m.width, m.height,
                             m.width * m.height, f"{m.similarity_to_first:.4f}", decision))
