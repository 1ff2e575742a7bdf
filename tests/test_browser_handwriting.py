"""The "Write your own" view in a real browser (streamlit run + headless chromium, tests/test_browser.py's
server pattern): two digits drawn on the canvas with mouse strokes, a "1" and a "7", are found, read and
summed."""

from __future__ import annotations

import os
import re

import pytest

from tests.test_browser import assert_clean, browser, server, settle, shoot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect


@pytest.fixture(scope="module", autouse=True)
def private_collection(tmp_path_factory):
    """The server (started after this, from os.environ) reads an empty collection, never the user's."""
    old = os.environ.get("DIGITSUM_COLLECTION_DIR")
    os.environ["DIGITSUM_COLLECTION_DIR"] = str(tmp_path_factory.mktemp("collection"))
    yield
    if old is None:
        os.environ.pop("DIGITSUM_COLLECTION_DIR", None)
    else:
        os.environ["DIGITSUM_COLLECTION_DIR"] = old


def stroke(page, origin, points) -> None:
    """Press the mouse at the first point, drag through the others in small steps, release."""
    x, y = origin
    page.mouse.move(x + points[0][0], y + points[0][1])
    page.mouse.down()
    for px, py in points[1:]:
        page.mouse.move(x + px, y + py, steps=12)
    page.mouse.up()


def test_two_drawn_digits_are_read_and_summed(server, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server['url']}/handwriting")
    page.get_by_role("heading", name="Write your own").wait_for(timeout=180_000)
    settle(page)
    assert_clean(page, server)
    expect(page.get_by_text("Draw a few digits above.")).to_be_visible(timeout=60_000)

    canvas = page.locator("[data-testid='stMain'] canvas").last  # Fabric's top layer takes the mouse
    canvas.wait_for(timeout=60_000)
    box = canvas.bounding_box()
    origin = (box["x"], box["y"])
    stroke(page, origin, [(200, 35), (202, 95), (204, 150)])  # a "1": one vertical stroke
    settle(page)
    stroke(page, origin, [(330, 40), (420, 40)])  # a "7": the bar, then the stem
    stroke(page, origin, [(420, 40), (390, 95), (365, 150)])
    settle(page)

    expect(page.get_by_text("2 digits found")).to_be_visible(timeout=120_000)  # retries past late reruns
    value = page.locator("[data-testid='stMetric']", has_text="Predicted sum").locator("[data-testid='stMetricValue']")
    expect(value).to_have_text(re.compile(r"^\d+\.\d\d$"), timeout=120_000)
    expect(page.locator("[data-testid='stMetric']", has_text="Sum of your labels")).to_be_visible()
    assert_clean(page, server)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    shoot(page, "page-write-your-own")
    assert round(float(value.inner_text())) == 8, "a drawn 1 and 7 should sum to 8"
    page.close()
