"""Ink pixels -> one group of pixels per digit, for a row of handwriting (core.handwriting).

  1. connected components (given as a label image);
  2. merged when their columns overlap by half the narrower one, or at all when one sits above the other:
     the pieces of a broken stroke, a 5's cap;
  3. fragments much smaller than a digit (a dot, a broken-off tick) join the digit they touch or nearly
     touch, or are dropped;
  4. groups that hold touching digits are cut along a seam (see _seam), again and again.
A piece is (label ids, (x0, y0, x1, y1)) in the label image, x1 and y1 exclusive; a cut gives the pixels
right of its seam a new label, so a piece is always a set of labels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

MERGE_OVERLAP = 0.5  # merge two components when their columns overlap by this share of the narrower
FRAGMENT = 0.7  # a group under this share of a typical digit's height, and under a quarter of its ink...
FRAGMENT_AREA = 0.1  # ... or of any height under this share of its ink is a fragment (a thin "1" holds 0.3)
FRAGMENT_GAP = 0.15  # a fragment this close (in digit heights) belongs to the digit
SPLIT_RATIO = 1.2  # a group this much wider than tall may hold touching digits
CROSSING = 1.0  # strokes a seam between two touching digits may cross
SIDE = 0.6  # each piece of a cut is at least this share of the group's height

Piece = tuple[list[int], tuple[int, int, int, int]]


def segment(labels: np.ndarray) -> list[Piece]:
    """One piece per digit, in no particular order, of the connected components of the ink (a label
    image, e.g. from scipy.ndimage.label; cuts relabel it in place)."""
    return _split(_tidy(_merge(labels), labels), labels)


def typical_area(areas: np.ndarray) -> float:
    """The area-weighted median area: a typical digit's, however many tiny specks there are."""
    ordered = np.sort(areas)
    return float(ordered[np.searchsorted(np.cumsum(ordered), ordered.sum() / 2)])


def _merge(labels: np.ndarray) -> list[Piece]:
    """Components -> groups [(component ids, (x0, y0, x1, y1))]: components whose columns overlap by
    at least MERGE_OVERLAP of the narrower one's width, or at all when one sits above the other, belong
    to one digit."""
    slices = ndimage.find_objects(labels)
    ids = [i + 1 for i, s in enumerate(slices) if s is not None]
    if not ids:
        return []
    box = np.array([[slices[i - 1][1].start, slices[i - 1][0].start, slices[i - 1][1].stop, slices[i - 1][0].stop]
                    for i in ids])
    x0, y0, x1, y1 = box.T
    overlap = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
    narrower = np.minimum((x1 - x0)[:, None], (x1 - x0)[None])
    stacked = (overlap > 0) & (np.minimum(y1[:, None], y1[None]) <= np.maximum(y0[:, None], y0[None]))
    _, group = connected_components((overlap >= MERGE_OVERLAP * narrower) | stacked, directed=False)
    groups = []
    for g in range(group.max() + 1):
        members = np.flatnonzero(group == g)
        b = box[members]
        groups.append(([ids[m] for m in members], (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())))
    return groups


def _tidy(groups, labels: np.ndarray):
    """Fragments (see FRAGMENT) join the nearest digit when they lie within FRAGMENT_GAP of its height,
    and are dropped otherwise."""
    if len(groups) < 2:
        return groups
    areas = np.bincount(labels.ravel())
    area = np.array([areas[ids].sum() for ids, _ in groups], dtype=np.float64)
    box = np.array([b for _, b in groups])
    height = box[:, 3] - box[:, 1]
    typical = typical_area(area)
    tall = float(np.median(height[area >= 0.3 * typical]))
    small = ((height < FRAGMENT * tall) & (area < 0.25 * typical)) | (area < FRAGMENT_AREA * typical)
    if small.all():
        return groups
    big = np.flatnonzero(~small)
    kept = {i: (list(groups[i][0]), list(box[i])) for i in big}
    for i in np.flatnonzero(small):
        gap = np.maximum(0, np.maximum(box[big, 0] - box[i, 2], box[i, 0] - box[big, 2]))
        centres = np.abs(box[big, 0] + box[big, 2] - box[i, 0] - box[i, 2])  # breaks ties between overlaps
        j = big[int(np.argmin(gap + 1e-6 * centres))]
        if gap.min() <= FRAGMENT_GAP * height[j]:
            ids, b = kept[j]
            ids += groups[i][0]
            b[:] = [min(b[0], box[i, 0]), min(b[1], box[i, 1]), max(b[2], box[i, 2]), max(b[3], box[i, 3])]
    return [(ids, tuple(int(v) for v in b)) for ids, b in kept.values()]


def _split(groups, labels: np.ndarray):
    """Cut groups that hold touching digits along a seam (see _seam), again and again until no cut is
    left. A cut gives the pixels right of the seam a new label, so each piece is a set of labels."""
    if not groups:
        return []
    tall = float(np.median([b[3] - b[1] for _, b in groups]))  # a digit's height in this row
    pieces, todo, next_id = [], list(groups), int(labels.max()) + 1
    while todo:
        ids, (x0, y0, x1, y1) = todo.pop()
        own = np.isin(labels[y0:y1, x0:x1], ids)
        rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
        if len(rows) == 0:
            continue
        x0, x1, y0, y1 = x0 + cols[0], x0 + cols[-1] + 1, y0 + rows[0], y0 + rows[-1] + 1
        own = own[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        right = _seam(own, tall)
        if right is None:
            pieces.append((ids, (int(x0), int(y0), int(x1), int(y1))))
            continue
        labels[y0:y1, x0:x1][right] = next_id
        todo += [(ids, (x0, y0, x1, y1)), ([next_id], (x0, y0, x1, y1))]
        next_id += 1
    return pieces


def _seam(own: np.ndarray, tall: float) -> np.ndarray | None:
    """The pixels right of the cut between two touching digits, or None when the group is one digit.

    The seam runs top to bottom through the middle 60% of the group, moving at most one column per row,
    and crosses as little ink as it can (dynamic programming), so it weaves between overlapping strokes.
    A cut needs a group wider than SPLIT_RATIO times its height and the row's typical height `tall` (a
    flat digit lying on its side is not two digits), a seam that crosses about one stroke at most, and
    a piece on each side at least SIDE of the group's height: a wide single digit (a 4's bar, a 5's cap)
    cut anywhere leaves a short piece. Shape alone cannot cut a pair narrower than that (a 1 beside
    another digit): it stays one group."""
    height, width = own.shape
    if width <= SPLIT_RATIO * max(height, tall) or width < 8:
        return None
    lo, hi = int(0.2 * width), int(np.ceil(0.8 * width))
    cost = own[:, lo:hi].astype(np.float64) + 1e-3 * np.abs(np.arange(lo, hi) - width / 2) / width
    total, step = cost[0].copy(), np.zeros(cost.shape, np.int8)
    for r in range(1, height):  # total[c]: the cheapest seam from the top row down to (r, c)
        options = np.stack([np.r_[np.inf, total[:-1]], total, np.r_[total[1:], np.inf]])
        step[r] = options.argmin(axis=0) - 1
        total = options.min(axis=0) + cost[r]
    seam = np.empty(height, np.int64)
    seam[-1] = int(total.argmin())
    for r in range(height - 1, 0, -1):
        seam[r - 1] = seam[r] + step[r, seam[r]]
    area, edge = own.sum(), (own & ~ndimage.binary_erosion(own)).sum()
    stroke = 2.0 * area / max(edge, 1)  # a stroke's width: its area over half its outline
    if total.min() > CROSSING * stroke:
        return None
    right = own & (np.arange(width)[None, :] >= (lo + seam)[:, None])
    sides = [np.flatnonzero(part.any(axis=1)) for part in (own & ~right, right)]
    if any(len(rows) == 0 or rows[-1] - rows[0] + 1 < SIDE * height for rows in sides):
        return None
    return right
