"""Which sequence a view shows, and the links between views: SequenceSpec round-trips through the URL's
query parameters, so a copied link reopens the same sequence. Plain functions, no Streamlit."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlencode

from core.data import parse_digits, parse_lengths

GENERATOR_MAX_LENGTH = 1000  # the generator's limit; core allows longer sequences


def format_lengths(lengths) -> str:
    """[1, 2, 3, 5, 20] -> '1-3,5,20': the inverse of core.data.sequences.parse_lengths, for links."""
    values = sorted(set(int(v) for v in lengths))
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class SequenceSpec:
    """Which sequence the inspector shows.

    source "eval": row `index` (seq_id) of the test-split evaluation set (lengths, per_length, seed;
                   `aside` > 0: built without the `aside` most suspect test images).
    source "gen":  the generator's sequence (length, seed, optional target/sum range/digits).
    """
    source: str = "eval"
    index: int = 0
    lengths: tuple[int, ...] = ()
    per_length: int = 0
    seed: int = 0
    length: int = 0
    target: int | None = None
    sum_min: int | None = None
    sum_max: int | None = None
    digits: tuple[int, ...] | None = None
    aside: int = 0

    def to_query(self) -> dict[str, str]:
        if self.source == "eval":
            q = {"src": "eval", "lengths": format_lengths(self.lengths), "per_length": str(self.per_length),
                 "seed": str(self.seed), "index": str(self.index)}
            if self.aside:
                q["aside"] = str(self.aside)
            return q
        q = {"src": "gen", "length": str(self.length), "seed": str(self.seed)}
        if self.target is not None:
            q["target"] = str(self.target)
        if self.sum_min is not None and self.sum_max is not None:
            q["sum_min"], q["sum_max"] = str(self.sum_min), str(self.sum_max)
        if self.digits is not None:
            q["digits"] = ",".join(str(d) for d in self.digits)
        return q

    @classmethod
    def from_query(cls, params) -> SequenceSpec:
        """Parse query parameters (a mapping of str -> str). ValueError names the bad parameter."""
        def integer(name, default=None):
            raw = params.get(name)
            if raw is None or raw == "":
                if default is None:
                    raise ValueError(f"link is missing the {name!r} parameter")
                return default
            try:
                return int(str(raw))
            except ValueError:
                raise ValueError(f"link parameter {name!r} must be an integer, got {raw!r}") from None

        source = params.get("src", "eval")
        if source == "eval":
            spec = cls("eval", index=integer("index"), lengths=tuple(parse_lengths(params.get("lengths", ""))),
                       per_length=integer("per_length"), seed=integer("seed"), aside=integer("aside", 0))
            if spec.per_length < 1 or spec.index < 0 or spec.aside < 0:
                raise ValueError("link parameters per_length and aside must be >= 1 and >= 0, index >= 0")
            return spec
        if source == "gen":
            digits = params.get("digits")
            if (params.get("sum_min") is None) != (params.get("sum_max") is None):
                raise ValueError("link gives half a sum range: sum_min and sum_max go together")
            try:
                allowed = tuple(parse_digits(digits)) if digits is not None else None
            except ValueError as exc:
                raise ValueError(f"link parameter 'digits': {exc}") from None
            spec = cls("gen", length=integer("length"), seed=integer("seed"),
                       target=integer("target") if params.get("target") is not None else None,
                       sum_min=integer("sum_min") if params.get("sum_min") is not None else None,
                       sum_max=integer("sum_max") if params.get("sum_max") is not None else None,
                       digits=allowed)
            if not 1 <= spec.length <= GENERATOR_MAX_LENGTH:
                raise ValueError(f"link parameter 'length' must lie in 1..{GENERATOR_MAX_LENGTH}")
            if spec.seed < 0:
                raise ValueError("link parameter 'seed' must be >= 0")
            return spec
        raise ValueError(f"link parameter 'src' must be 'eval' or 'gen', got {source!r}")


def eval_spec(index: int, lengths, per_length: int, seed: int, size: int, aside: int = 0) -> SequenceSpec:
    """Row `index` of an evaluation set of `size` sequences, clamped to the set (`aside`: the number of
    most suspect images it was built without)."""
    index = min(max(int(index), 0), size - 1)
    return SequenceSpec("eval", index=index, lengths=tuple(lengths), per_length=int(per_length), seed=int(seed),
                        aside=int(aside))


def stepped(spec: SequenceSpec, delta: int, size: int) -> SequenceSpec:
    """The previous/next sequence: the next row of an evaluation set (clamped to its `size`), or the
    generator's next seed under the same constraints."""
    if spec.source == "eval":
        return replace(spec, index=min(max(spec.index + delta, 0), size - 1))
    return replace(spec, seed=max(spec.seed + delta, 0))


def generator_spec(length: int, seed: int, digits, target: int | None = None, sum_min: int | None = None,
                   sum_max: int | None = None) -> SequenceSpec:
    """The generator's inputs as a spec; ValueError (a message for the user) when they contradict.
    All ten digits allowed is stored as no digit constraint (a shorter link)."""
    digits = sorted(int(d) for d in digits)
    if not digits:
        raise ValueError("Choose at least one allowed digit.")
    if sum_min is not None and sum_max is not None and sum_min > sum_max:
        raise ValueError(f"The lowest sum ({sum_min}) is above the highest sum ({sum_max}).")
    return SequenceSpec("gen", length=int(length), seed=int(seed), target=target, sum_min=sum_min, sum_max=sum_max,
                        digits=None if len(digits) == 10 else tuple(digits))


def spec_title(spec: SequenceSpec, size: int | None = None, length: int | None = None) -> str:
    """The inspector's heading for a sequence."""
    if spec.source == "eval":
        return f"Sequence {spec.index} of {size:,} (length {length})"
    constraint = (f", target sum {spec.target}" if spec.target is not None else
                  f", sum in {spec.sum_min}–{spec.sum_max}" if spec.sum_min is not None else "")
    return f"Generated sequence (length {spec.length}, seed {spec.seed}{constraint})"


def link_query(spec: SequenceSpec, checkpoint: str | None = None) -> dict[str, str]:
    """The query parameters that reopen `spec` on the given checkpoint."""
    query = spec.to_query()
    if checkpoint:
        query["ckpt"] = checkpoint
    return query


def inspector_url(spec: SequenceSpec, checkpoint: str | None = None) -> str:
    """A relative URL that opens the inspector view on `spec` (and the given checkpoint)."""
    return "inspector?" + urlencode(link_query(spec, checkpoint))
