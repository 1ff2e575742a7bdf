"""Ink pixels -> one group of pixels per digit, for a row of handwriting (core.handwriting).

  1. connected components (given as a label image);
  2. merged when their columns overlap by half the narrower one, or at all when one sits above the other:
     the pieces of a broken stroke, a 5's cap;
  3. fragments (a dot, a broken-off tick: under a third of the row's digit height, or a slight stroke
     beside a digit) join the digit they touch or nearly touch, or are dropped; a group a third of the
     row's height or more, apart from the others, is a digit however little ink it holds (a small digit);
  4. groups that hold touching digits are cut along a seam, again and again: by shape alone (see _seam),
     or, given a judge (the CNN's confidence), at the candidate cut it reads best (see _judged_cut).
A piece is (label ids, (x0, y0, x1, y1)) in the label image, x1 and y1 exclusive; a cut gives the pixels
right of its seam a new label, so a piece is always a set of labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

MERGE_OVERLAP = 0.5  # merge two components when their columns overlap by this share of the narrower
SMALL = 0.3  # a group at least this share of the row's digit height may be a digit: a third-height one stays
FRAGMENT = 0.7  # a group under this share of the row's digit height, with under SLIGHT of a digit's ink...
SLIGHT = 0.25  # ... is a broken-off stroke when its columns touch a digit's, else a small digit
FRAGMENT_GAP = 0.15  # a fragment this close (in digit heights) belongs to the digit
SPLIT_RATIO = 1.2  # a group this much wider than tall may hold touching digits
CROSSING = 1.0  # strokes a seam between two touching digits may cross
SIDE = 0.6  # each piece of a cut by shape is at least this share of the group's height
# Cuts the CNN judges (see _judged_cut); the weights were fitted on touching pairs of MNIST test digits:
PAIR = 0.6  # groups at least this share of the row's height wide are tried
CANDIDATES = 8  # cuts read per group
MAX_CROSSING = 3.0  # strokes a candidate seam may cross
CROSS_COST = 1.0  # logits a cut loses per stroke crossed beyond one
SHORT_COST = 8.0  # logits a cut loses per share of the row's digit height its shorter piece lacks
WIDTH_GAIN = 8.0  # logits a cut gains per row height of the group's width beyond one

Piece = tuple[list[int], tuple[int, int, int, int]]
# judge(box, masks): for bool masks of the pixels in box (x0, y0, x1, y1) of the label image, each read as
# one digit, the top class probability (float (len(masks),)); core.handwriting makes it.
Judge = Callable[[tuple[int, int, int, int], list[np.ndarray]], np.ndarray]


def segment(labels: np.ndarray, judge: Judge | None = None) -> list[Piece]:
    """One piece per digit, in no particular order, of the connected components of the ink (a label
    image, e.g. from scipy.ndimage.label; cuts relabel it in place). Without a judge, touching digits
    are cut by shape alone."""
    return _split(_tidy(_merge(labels), labels), labels, judge)


def typical_area(areas: np.ndarray) -> float:
    """The area-weighted median area: a typical digit's, however many tiny specks there are."""
    ordered = np.sort(areas)
    return float(ordered[np.searchsorted(np.cumsum(ordered), ordered.sum() / 2)])


def typical_height(heights: np.ndarray, areas: np.ndarray) -> float:
    """The height of the group holding the row's median pixel of ink (the area-weighted median height):
    a digit's height, however many specks or small digits there are."""
    order = np.argsort(heights)
    weight = np.cumsum(np.asarray(areas, dtype=np.float64)[order])
    return float(np.asarray(heights)[order][np.searchsorted(weight, weight[-1] / 2)])


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
    """Fragments join the nearest digit when they lie within FRAGMENT_GAP of its height, and are dropped
    otherwise. A fragment is a group under SMALL of the row's digit height (a dot, a speck, a tick), or a
    slight one (under FRAGMENT of the height, with under SLIGHT of a digit's ink) whose columns touch a
    digit's: a stroke broken off beside it. A slight group apart from the others is a small digit: a
    digit a third the height of its neighbours has a ninth of their ink."""
    if len(groups) < 2:
        return groups
    areas = np.bincount(labels.ravel())
    area = np.array([areas[ids].sum() for ids, _ in groups], dtype=np.float64)
    box = np.array([b for _, b in groups])
    height = box[:, 3] - box[:, 1]
    tall = typical_height(height, area)
    small = height < SMALL * tall
    slight = ~small & (height < FRAGMENT * tall) & (area < SLIGHT * typical_area(area))
    solid = np.flatnonzero(~small & ~slight)
    for i in np.flatnonzero(slight):
        small[i] = np.maximum(box[solid, 0] - box[i, 2], box[i, 0] - box[solid, 2]).min(initial=1) <= 0
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


def _split(groups, labels: np.ndarray, judge: Judge | None = None):
    """Cut groups that hold touching digits, again and again until no cut is left: along the seam that
    shape alone picks (_seam), or, given a judge, at the candidate cut the CNN reads best (_judged_cut).
    A cut gives the pixels right of the seam a new label, so each piece is a set of labels."""
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
        box = (int(x0), int(y0), int(x1), int(y1))
        right = _seam(own, tall) if judge is None else _judged_cut(own, box, tall, judge)
        if right is None:
            pieces.append((ids, box))
            continue
        labels[y0:y1, x0:x1][right] = next_id
        todo += [(ids, box), ([next_id], box)]
        next_id += 1
    return pieces


def _seam(own: np.ndarray, tall: float) -> np.ndarray | None:
    """The pixels right of the cut between two touching digits, or None when the group is one digit: the
    cut made by shape alone, when no judge is given.

    The seam runs top to bottom through the middle 60% of the group (see _seams) and crosses as little
    ink as it can. A cut needs a group wider than SPLIT_RATIO times its height and the row's typical
    height `tall` (a flat digit lying on its side is not two digits), a seam that crosses about one stroke
    at most, and a piece on each side at least SIDE of the group's height: a wide single digit (a 4's bar,
    a 5's cap) cut anywhere leaves a short piece. Shape alone cannot cut a pair narrower than that (a 1
    beside another digit): it stays one group."""
    height, width = own.shape
    if width <= SPLIT_RATIO * max(height, tall) or width < 8:
        return None
    lo = int(0.2 * width)
    total, step = _seams(own, lo, int(np.ceil(0.8 * width)))
    end = int(total.argmin())
    if total[end] > CROSSING * _stroke(own):
        return None
    right = _right_of(own, lo + _trace(step, end))
    return None if _short_side(own, right, SIDE * height) else right


def _judged_cut(own: np.ndarray, box, tall: float, judge: Judge) -> np.ndarray | None:
    """The pixels right of the cut between two touching digits, or None when the group reads best as
    one digit: the candidate cut (_candidates) with the best score, when that score is above zero.

    The CNN's evidence for a cut is how much more confidently it reads the less clear of the two pieces
    than the whole group as one digit, in logits (log p / (1 - p) of the top class). The CNN alone
    over-cuts: MNIST has no half digits, so it reads half a 0 as a confident 1. Shape weighs in, as
    measured on touching pairs of MNIST test digits: a cut loses CROSS_COST per stroke crossed beyond
    one (touching digits meet at one stroke, cutting through a digit crosses two), SHORT_COST per share
    of the row's digit height that its shorter piece lacks (a 4's bar, a 7's cap, the halves of a flat
    0), and gains WIDTH_GAIN per row height of width beyond one (two digits are wider than one). Groups
    narrower than PAIR times the row's height are not tried (two touching 1s are the loss)."""
    height, width = own.shape
    if width < PAIR * max(height, tall) or width < 8:
        return None
    cuts = _candidates(own, tall)
    if not cuts:
        return None
    rights = [right for right, _ in cuts]
    p = np.asarray(judge(box, [own] + [part for right in rights for part in (own & ~right, right)]), np.float64)
    confidence = np.log(np.clip(p, 1e-6, 1.0)) - np.log(np.clip(1.0 - p, 1e-6, 1.0))  # logits, saturated
    evidence = np.minimum(confidence[1::2], confidence[2::2]) - confidence[0]
    crossed = np.array([strokes for _, strokes in cuts])
    shorter = np.array([min(_rows(own & ~right), _rows(right)) for right in rights]) / max(height, tall)
    score = (evidence - CROSS_COST * np.maximum(crossed - 1.0, 0.0) - SHORT_COST * (1.0 - shorter)
             + WIDTH_GAIN * (width / max(height, tall) - 1.0))
    best = int(np.argmax(score))
    return rights[best] if score[best] > 0 else None


def _candidates(own: np.ndarray, tall: float) -> list[tuple[np.ndarray, float]]:
    """Up to CANDIDATES cuts worth reading, cheapest first, each as (the pixels right of its seam, the
    strokes it crosses): in each band of columns across the middle 70% of the group, the seam that
    crosses the least ink within the band (see _seams). So the cuts spread across the group, each at a
    valley of its own, and the seam through a band is never dearer than a straight cut there: the
    vertical projection's valleys are among them. (The cheapest seam of all, the cut by shape, is most
    often one of them; adding it as well read touching pairs slightly worse.) A cut crosses at most
    MAX_CROSSING strokes, leaves a piece on each side at least SMALL of the row's digit height, and
    splits the pixels unlike any cheaper one."""
    height, width = own.shape
    lo, hi = int(0.15 * width), int(np.ceil(0.85 * width))
    reach = max(1, width // 12)  # a band's half-width
    centres = np.arange(lo, hi, reach)
    cols = centres[:, None] + np.arange(-reach, reach + 1)[None]  # (bands, columns in a band)
    cost = np.where((cols >= lo) & (cols < hi), own[:, np.clip(cols, 0, width - 1)], np.inf)
    cost = cost + 1e-3 * np.abs(cols - centres[:, None]) / reach  # ties: the band's centre
    total, step = cost[0].copy(), np.zeros(cost.shape, np.int8)
    for r in range(1, height):  # total[b, j]: the cheapest seam in band b from the top down to (r, j)
        edge = np.full((len(centres), 1), np.inf)
        options = np.stack([np.hstack([edge, total[:, :-1]]), total, np.hstack([total[:, 1:], edge])])
        step[r] = options.argmin(axis=0) - 1
        total = options.min(axis=0) + cost[r]
    ends = total.argmin(axis=1)
    strokes = total[np.arange(len(centres)), ends] / _stroke(own)
    cuts, seen = [], set()
    for band in np.argsort(strokes, kind="stable"):
        if strokes[band] > MAX_CROSSING or len(cuts) == CANDIDATES:
            break
        right = _right_of(own, cols[band, _trace(step[:, band], int(ends[band]))])
        key = np.packbits(right).tobytes()  # seams through blank paper split the pixels alike
        if key not in seen and not _short_side(own, right, SMALL * max(height, tall)):
            cuts.append((right, float(strokes[band])))
            seen.add(key)
    return cuts


def _seams(own: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Seams from the top row to the bottom through columns lo..hi-1, each moving at most one column per
    row, that cross as little ink as they can (dynamic programming), so they weave between overlapping
    strokes: (total[c], the ink crossed by the cheapest seam ending at column lo + c; the steps, for
    _trace). A tiny cost for straying from the middle breaks ties."""
    height, width = own.shape
    cost = own[:, lo:hi].astype(np.float64) + 1e-3 * np.abs(np.arange(lo, hi) - width / 2) / width
    total, step = cost[0].copy(), np.zeros(cost.shape, np.int8)
    for r in range(1, height):  # total[c]: the cheapest seam from the top row down to (r, c)
        options = np.stack([np.r_[np.inf, total[:-1]], total, np.r_[total[1:], np.inf]])
        step[r] = options.argmin(axis=0) - 1
        total = options.min(axis=0) + cost[r]
    return total, step


def _trace(step: np.ndarray, end: int) -> np.ndarray:
    """The positions (indices into the DP's columns), row by row, of the cheapest seam ending at `end`."""
    seam = np.empty(len(step), np.int64)
    seam[-1] = end
    for r in range(len(step) - 1, 0, -1):
        seam[r - 1] = seam[r] + step[r, seam[r]]
    return seam


def _right_of(own: np.ndarray, seam: np.ndarray) -> np.ndarray:
    return own & (np.arange(own.shape[1])[None, :] >= seam[:, None])


def _stroke(own: np.ndarray) -> float:
    """A stroke's width: the ink's area over half its outline."""
    edge = (own & ~ndimage.binary_erosion(own)).sum()
    return 2.0 * own.sum() / max(edge, 1)


def _short_side(own: np.ndarray, right: np.ndarray, least: float) -> bool:
    """Whether either side of a cut spans fewer than `least` rows (an empty side spans none)."""
    return min(_rows(own & ~right), _rows(right)) < least


def _rows(part: np.ndarray) -> int:
    """How many rows a set of pixels spans, top to bottom; 0 when it is empty."""
    rows = np.flatnonzero(part.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0
