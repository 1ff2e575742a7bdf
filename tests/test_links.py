"""Every view answers a hand-edited link with a working page and a visible one-line notice that says
what was wrong and what is shown instead: never a traceback, never a file outside the checkpoint list."""

from __future__ import annotations

import pytest

from core.data import parse_digits
from dashboard import state
from dashboard.links import SequenceSpec
from tests.test_pages import by_label, env, open_page  # noqa: F401 - env is a fixture

VIEWS = ["views/overview.py", "views/errors.py", "views/slice_finder.py", "views/digit_atlas.py",
         "views/inspector.py", "views/generator.py", "views/calibration.py", "views/suspects.py",
         "views/write_your_own.py", "views/decision_log.py", "views/training.py"]

# Several wrong parameters per link (each view is opened once per link); each expected notice names one.
BAD_LINKS = {
    "numbers": ({"per_length": "abc", "seed": "-1", "aside": "x", "src": "nope"},
                ["per_length='abc' is not a whole number", "seed=-1 lies outside", "aside='x' is not a whole number",
                 "src='nope' is neither"]),
    "paths and ranges": ({"ckpt": "../../etc/passwd", "lengths": "99999", "per_length": "-5"},
                         ["checkpoint '../../etc/passwd' is not one of the listed", "lengths='99999' cannot be used",
                          "per_length=-5 lies outside"]),
    "empty and huge": ({"ckpt": "", "lengths": "", "seed": "99999999999"},
                       ["checkpoint '' is not one of the listed", "lengths='' cannot be used", "lies outside 0–"]),
    "too large a set": ({"lengths": "1-4000", "per_length": "5000"}, ["The link asks for"]),
}


def notices(at) -> list[str]:
    return [w.value for w in at.warning]


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("name", list(BAD_LINKS))
def test_every_view_answers_a_bad_link_with_a_notice(env, view, name):  # noqa: F811
    query, expected = BAD_LINKS[name]
    at = open_page(view, query)
    assert not at.exception
    shown = notices(at)
    for text in expected:
        assert sum(text in n for n in shown) == 1, (text, shown)
    assert all("\n" not in n for n in shown)  # one line each
    listed = by_label(at.sidebar.selectbox, "Checkpoint").options
    assert at.session_state[state.CKPT] in listed and ".." not in at.session_state[state.CKPT]  # never the link's path
    assert [t.value for t in at.title]  # a working page around the notice


INSPECTOR_LINKS = {
    "half a sum range": ({"src": "gen", "length": "10", "seed": "0", "sum_min": "80"}, "half a sum range"),
    "impossible target": ({"src": "gen", "length": "5", "seed": "0", "target": "999"}, "impossible sequence"),
    "bad digit set": ({"src": "gen", "length": "5", "seed": "0", "digits": "1,x"}, "expected digits 0-9"),
    "negative index": ({"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3", "index": "-4"},
                       "index"),
    "index out of range": ({"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3", "index": "99999"},
                           "index=99999 is beyond this set's 48 sequences"),
    "generator length": ({"src": "gen", "length": "100000", "seed": "0"}, "'length' must lie in"),
}


@pytest.mark.parametrize("name", list(INSPECTOR_LINKS))
def test_the_inspector_answers_a_bad_sequence_link_and_shows_a_sequence(env, name):  # noqa: F811
    query, expected = INSPECTOR_LINKS[name]
    at = open_page("views/inspector.py", query)
    assert not at.exception
    assert [n for n in notices(at) if expected in n], notices(at)
    assert at.title[0].value == "Sequence inspector" and at.metric  # the page, with a sequence shown
    assert "None" not in at.subheader[0].value


def test_digit_sets_have_one_meaning():
    assert parse_digits("12") == parse_digits("1,2") == parse_digits(" 2, 1 ") == [1, 2]
    for bad in ("1,x", "", "-1", "1.5", "١"):
        with pytest.raises(ValueError, match="expected digits 0-9"):
            parse_digits(bad)
    assert SequenceSpec.from_query({"src": "gen", "length": "5", "seed": "0", "digits": "12"}).digits == (1, 2)
