"""Readable rules from decision trees, for error slices (core.evaluate.slices).

A rule is {feature: (lo, hi)}: inclusive bounds on one feature each, lo and hi being values the table
holds (None: open), so a rule's text selects exactly its rows: "length ≥ 50 and holds a 7" rather than
sklearn's "length > 30.0 and count_7 > 0.5". Features are named as core.evaluate.slices makes them:
length, true_sum, count_0..count_9 and has_* (discrete); min_conf and p_exact (continuous, cut at 3
decimals).

Every node of a few trees gives a rule, and each rule is then widened one step at a time while its
score (the error rate) does not fall: a greedy tree that first cut "holds 7 at least 3 times" ends with
"length ≥ 50 and holds 7 at least 3 times", which widens back to "length ≥ 50 and holds a 7".
"""

from __future__ import annotations

import math

import numpy as np

TREES = 16  # one tree on every feature, the others choosing each split among a random half of them
NAMES = {"length": "length", "true_sum": "true sum", "min_conf": "lowest digit confidence", "p_exact": "p_exact"}


def _discrete(feature: str) -> bool:
    return feature in ("length", "true_sum") or feature.startswith(("count_", "has_"))


# --------------------------------------------------------------------------- text

def _shortest_decimal(low: float, high: float) -> str:
    """The shortest decimal d with low < d <= high (a cut that splits the values held alike)."""
    for places in range(7):
        d = (math.floor(low * 10**places) + 1) / 10**places
        d = d if d > low else d + 1 / 10**places  # floating-point rounding: stay strictly above
        if d <= high:
            return f"{d:.{places}f}"
    return f"{high:.7g}"


def _times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


def _digit_text(d: int, lo: int | None, hi: int | None) -> str:
    """How often digit d occurs, lo..hi inclusive (None: unbounded)."""
    if hi == 0:
        return f"no {d}"
    if hi is None:
        return f"holds {'an' if d == 8 else 'a'} {d}" if lo == 1 else f"holds {d} at least {_times(lo)}"
    if not lo:
        return f"holds {d} at most {_times(hi)}"
    return f"holds {d} exactly {_times(lo)}" if lo == hi else f"holds {d} {lo}–{hi} times"


def text(feature: str, lo, hi, values: np.ndarray) -> str:
    """Readable text for lo <= feature <= hi (values the table holds; None: open)."""
    lo, hi = ((None if v is None else int(v) if _discrete(feature) else float(v)) for v in (lo, hi))
    if feature == "has_suspect":
        return "holds a suspect-label image" if lo == 1 else "no suspect-label image"
    if feature.startswith("has_"):
        a, b = feature[4:].split("_")
        return f"holds {a} and {b}" if lo == 1 else f"not both {a} and {b}"
    if feature.startswith("count_"):
        return _digit_text(int(feature[6:]), lo, hi)
    name = NAMES[feature]
    if _discrete(feature):
        if lo is not None and hi is not None:
            return f"{name} = {lo}" if lo == hi else f"{name} {lo}–{hi}"
        return f"{name} ≥ {lo}" if lo is not None else f"{name} ≤ {hi}"
    # A continuous feature reads "≥ d" / "< d", d a short decimal between the neighbouring values held.
    low = _shortest_decimal(values[values < lo].max(), lo) if lo is not None else None
    high = _shortest_decimal(hi, values[values > hi].min()) if hi is not None else None
    if low is not None and high is not None:
        return f"{low} ≤ {name} < {high}"
    return f"{name} ≥ {low}" if low is not None else f"{name} < {high}"


# --------------------------------------------------------------------------- rules from trees

def mask(rule: dict, columns: dict[str, np.ndarray]) -> np.ndarray:
    """bool (n,): the rows the rule selects."""
    out = np.ones(len(next(iter(columns.values()))), bool)
    for f, (lo, hi) in rule.items():
        out &= (columns[f] >= lo if lo is not None else True) & (columns[f] <= hi if hi is not None else True)
    return out


def _snap(values: np.ndarray, feature: str, above: float | None, at_most: float | None) -> tuple:
    """sklearn's above < x <= at_most as inclusive bounds on the values held; a continuous feature is cut
    at its threshold rounded to 3 decimals instead, so that the rule reads "< 0.987", not "< 0.986673"."""
    if not _discrete(feature):
        above = None if above is None else values[values < round(above, 3)].max(initial=-np.inf)
        at_most = None if at_most is None else values[values < round(at_most, 3)].max(initial=-np.inf)
    lo = None if above is None else values[values > above].min(initial=np.inf)
    hi = None if at_most is None else values[values <= at_most].max(initial=-np.inf)
    return (None if lo == values.min() else lo, None if hi == values.max() else hi)  # no bound at an end


def tree_rules(tree, columns: dict[str, np.ndarray]) -> list[dict]:
    """The rule of every node but the root: its path, merged into one bound pair per feature."""
    t, names = tree.tree_, list(columns)
    out, stack = [], [(0, {})]  # node, {feature: (above, at_most)}: sklearn's thresholds (x <= t goes left)
    while stack:
        node, bounds = stack.pop()
        if node != 0:
            rule = {f: _snap(columns[f], f, above, at_most) for f, (above, at_most) in bounds.items()}
            out.append({f: bound for f, bound in rule.items() if bound != (None, None)})
        if t.children_left[node] == -1:  # a leaf
            continue
        f, threshold = names[t.feature[node]], float(t.threshold[node])
        above, at_most = bounds.get(f, (None, None))
        left = threshold if at_most is None else min(threshold, at_most)
        right = threshold if above is None else max(threshold, above)
        stack.append((t.children_left[node], {**bounds, f: (above, left)}))
        stack.append((t.children_right[node], {**bounds, f: (right, at_most)}))
    return out


# --------------------------------------------------------------------------- widening

def _step(held: np.ndarray, value, down: bool):
    """The next value held beyond `value` (down or up), or None where that is the last: no bound at all."""
    beyond = held[held < value] if down else held[held > value]
    return None if len(beyond) < 2 else beyond.max() if down else beyond.min()


def _wider(rule: dict, f: str, held: dict[str, np.ndarray]):
    """(rule, must_grow) one step wider in feature f: without it; a discrete bound one value out; and
    "holds a and b" as "holds a" (plainer, so it may keep the same rows)."""
    rest = {k: v for k, v in rule.items() if k != f}
    yield rest, True
    lo, hi = rule[f]
    if f.startswith("has_") and f != "has_suspect" and lo == 1:
        yield from (({**rest, f"count_{d}": (1, None)}, False) for d in f[4:].split("_") if f"count_{d}" not in rule)
    elif _discrete(f):
        for wider in ((_step(held[f], lo, True), hi) if lo is not None else None,
                      (lo, _step(held[f], hi, False)) if hi is not None else None):
            if wider is not None and wider != (None, None):
                yield {**rule, f: wider}, True


def widen(rule: dict, columns: dict[str, np.ndarray], held: dict[str, np.ndarray], score) -> dict:
    """Grow the rule one step at a time while score(rows) (e.g. the error rate) does not fall."""
    rows = mask(rule, columns)
    best, size = score(rows), rows.sum()
    while True:
        for candidate, must_grow in (c for f in list(rule) for c in _wider(rule, f, held)):
            rows = mask(candidate, columns) if candidate else None
            if rows is not None and (rows.sum() > size or not must_grow and rows.sum() == size) \
                    and score(rows) >= best - 1e-12:
                rule, best, size = candidate, score(rows), rows.sum()
                break
        else:
            return rule


def candidate_slices(make_tree, features, target: np.ndarray, score, min_size: int) -> list[tuple]:
    """(text, row mask, number of conditions) of the widened rule of every node of TREES trees that
    holds at least min_size rows, one per set of rows (the plainest rule). make_tree(max_features=,
    random_state=) gives an unfitted sklearn tree; features is a DataFrame, target what the tree fits."""
    columns = {f: features[f].to_numpy(np.float32) for f in features.columns}  # float32: what trees split on
    held = {f: np.unique(v) for f, v in columns.items()}
    x, rules = features.to_numpy(np.float32), {}
    for seed in range(TREES):  # a greedy tree commits to its best first split; the others find what it misses
        tree = make_tree(max_features=None if seed == 0 else 0.5, random_state=seed)
        for rule in tree_rules(tree.fit(x, target), columns):
            rows = mask(rule, columns)
            if rule and rows.sum() >= min_size:  # the same rows by other features may widen differently
                rules.setdefault(tuple(sorted(rule.items())), rule)
    out = {}
    for rule in rules.values():
        rule = widen(rule, columns, held, score)
        rows = mask(rule, columns)
        words = " and ".join(text(f, *rule[f], columns[f]) for f in columns if f in rule)
        known = out.get(rows.tobytes())
        if known is None or (len(rule), len(words)) < (known[2], len(known[0])):
            out[rows.tobytes()] = (words, rows, len(rule))
    return list(out.values())
