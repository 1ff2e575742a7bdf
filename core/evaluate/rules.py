"""Readable rules from decision trees, for error slices (core.evaluate.slices).

A rule is {feature: (lo, hi)}: inclusive bounds on one feature each, lo and hi being values the table
holds (None: open), so a rule's text selects exactly its rows: "length ≥ 50 and holds a 7" rather than
sklearn's "length > 30.0 and count_7 > 0.5". Features are named as core.evaluate.slices makes them:
length, true_sum, count_0..count_9 and has_* (discrete); min_conf and p_exact (continuous, cut at 3
decimals).

Every node of a few trees gives a rule, and each rule is then widened one step at a time while its
score (the error rate) does not fall: a greedy tree that first cut "holds 7 at least 3 times" ends with
"length ≥ 50 and holds 7 at least 3 times", which widens back to "length ≥ 50 and holds a 7". A
condition on a stand-in for a plainer feature ("true sum ≥ 202" for a sequence's length) is read by the
plainer one where that keeps the rows and the score.

A rule found on one table (the search half) reads the same on a bigger one (`transfer`): a discrete
bound is kept, a continuous one is cut where its text cuts ("< 0.987"), so the text still selects
exactly the rule's rows there.
"""

from __future__ import annotations

import math

import numpy as np

TREES = 16  # one tree on every feature, the others choosing each split among a random half of them
NAMES = {"length": "length", "true_sum": "true sum", "min_conf": "lowest digit confidence", "p_exact": "p_exact"}


def _discrete(feature: str) -> bool:
    return feature in ("length", "true_sum") or feature.startswith(("count_", "has_"))


def columns_of(features) -> dict[str, np.ndarray]:
    """{feature: float64 values} of a features DataFrame. float64, not the trees' float32: a cut such as
    "< 0.987" must split the values as a reader's own (float64) confidences split."""
    return {f: features[f].to_numpy(np.float64) for f in features.columns}


# --------------------------------------------------------------------------- text

def _shortest_decimal(low: float, high: float) -> str:
    """The shortest decimal d with low < d <= high (a cut that splits the values held alike); float(d)
    itself lies in that range, so the text splits the values exactly as the rule does."""
    for places in range(7):
        first = math.floor(low * 10**places) + 1
        for k in (first, first + 1):  # the second: floating-point rounding put the first at or below low
            d = f"{k / 10**places:.{places}f}"
            if low < float(d) <= high:
                return d
    return repr(high)  # round-trips exactly


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


def _cuts(lo, hi, values: np.ndarray) -> tuple[str | None, str | None]:
    """A continuous feature's bounds as the text writes them, "≥ low" and "< high": each a short decimal
    between the bound and the neighbouring value held (None: open)."""
    low = _shortest_decimal(values[values < lo].max(), lo) if lo is not None else None
    high = _shortest_decimal(hi, values[values > hi].min()) if hi is not None else None
    return low, high


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
    low, high = _cuts(lo, hi, values)
    if low is not None and high is not None:
        return f"{low} ≤ {name} < {high}"
    return f"{name} ≥ {low}" if low is not None else f"{name} < {high}"


def describe(rule: dict, columns: dict[str, np.ndarray]) -> str:
    """The rule's text on the table of `columns`, its conditions in the columns' order."""
    return " and ".join(text(f, *rule[f], columns[f]) for f in columns if f in rule)


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


def _plainness(feature: str) -> int:
    """Lower reads plainer: length, true sum, digit counts, pairs and suspects, then the model's confidences."""
    if feature in ("length", "true_sum"):
        return ("length", "true_sum").index(feature)
    return 2 if feature.startswith("count_") else 3 if feature.startswith("has_") else 4


def _plainer(rule: dict, rows: np.ndarray, columns: dict[str, np.ndarray], held: dict[str, np.ndarray]):
    """(rule, False): one condition swapped for a plainer feature's range over the rule's rows (so it keeps
    them all). Many features stand in for a sequence's length ("true sum ≥ 202", "holds 0 at least twice"),
    and the trees, on half the table, may cut on any of them: this reads such a rule as "length ≥ 50"."""
    for f in rule:
        rest = {k: v for k, v in rule.items() if k != f}
        for g in (g for g in columns if g not in rule and _plainness(g) < _plainness(f)):
            lo, hi = columns[g][rows].min(), columns[g][rows].max()
            bound = (None if lo == held[g][0] else lo, None if hi == held[g][-1] else hi)
            if bound != (None, None):
                yield {**rest, g: bound}, False


def widen(rule: dict, columns: dict[str, np.ndarray], held: dict[str, np.ndarray], score) -> dict:
    """Grow the rule one step at a time while score(rows) (e.g. the error rate) does not fall; then (as a
    step that may keep the same rows) read a condition by a plainer feature. Every step either grows the
    rows or makes a condition plainer, so it ends."""
    rows = mask(rule, columns)
    best, size = score(rows), rows.sum()
    while True:
        steps = [c for f in list(rule) for c in _wider(rule, f, held)]
        for candidate, must_grow in steps + list(_plainer(rule, mask(rule, columns), columns, held)):
            rows = mask(candidate, columns) if candidate else None
            if rows is not None and (rows.sum() > size or not must_grow and rows.sum() == size) \
                    and score(rows) >= best - 1e-12:
                rule, best, size = candidate, score(rows), rows.sum()
                break
        else:
            return rule


def candidate_slices(make_tree, features, target: np.ndarray, score, min_size: int) -> list[dict]:
    """The widened rule of every node of TREES trees that holds at least min_size rows, one per set of
    rows (the plainest rule). make_tree(max_features=, random_state=) gives an unfitted sklearn tree;
    features is a DataFrame, target what the tree fits, score(rows) what widening keeps from falling."""
    columns = columns_of(features)
    held = {f: np.unique(v) for f, v in columns.items()}
    x, rules = features.to_numpy(np.float32), {}
    for seed in range(TREES):  # a greedy tree commits to its best first split; the others find what it misses
        tree = make_tree(max_features=None if seed == 0 else 0.5, random_state=seed)
        for rule in tree_rules(tree.fit(x, target), columns):
            if rule and mask(rule, columns).sum() >= min_size:  # the same rows by other features may widen differently
                rules.setdefault(tuple(sorted(rule.items())), rule)
    out = {}
    for rule in rules.values():
        rule = widen(rule, columns, held, score)
        key, plainness = mask(rule, columns).tobytes(), (len(rule), len(describe(rule, columns)))
        if key not in out or plainness < out[key][0]:
            out[key] = (plainness, rule)
    return [rule for _, rule in out.values()]


def transfer(rule: dict, source: dict[str, np.ndarray], target: dict[str, np.ndarray]) -> dict:
    """A rule found on the table of `source` as a rule on the table of `target` (the same features, a
    superset of the rows) that selects there what the source's text says: a discrete bound stays; a
    continuous one is cut where the source's text cuts it ("< 0.987"), as bounds on the values the target
    holds on either side of that cut."""
    out = {}
    for f, (lo, hi) in rule.items():
        if not _discrete(f):
            values = target[f]
            low, high = _cuts(lo, hi, source[f])
            lo = None if low is None else values[values >= float(low)].min()
            hi = None if high is None else values[values < float(high)].max()
            lo, hi = (None if lo == values.min() else lo, None if hi == values.max() else hi)  # no bound at an end
        if (lo, hi) != (None, None):
            out[f] = (lo, hi)
    return out
