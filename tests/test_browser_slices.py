"""The Digit map's plotly selection in a real browser (streamlit run + headless chromium, tests/test_browser.py's
server): the view computes the map in its subprocess (python -m scripts.digit_map) if no test did before,
then a box dragged over the map shows the selected images and the sequences that contain them; and a click
on a bar of the Slices view filters Error analysis until Clear."""

from __future__ import annotations

import pytest

from tests.test_browser import assert_clean, server, settle, shoot  # noqa: F401 - the server fixture
from tests.test_browser_trust import EVAL_SET

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect


@pytest.fixture(scope="module")
def browser(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    # Plotly draws the map with WebGL (Scattergl); headless chromium without a GPU needs its software renderer.
    from scripts.dashboard_timing import CHROMIUM_ARGS, WEBGL_ARGS

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=server["chromium"], args=[*CHROMIUM_ARGS, *WEBGL_ARGS])
        yield instance
        instance.close()


def test_box_select_on_the_digit_map_shows_images_and_sequences(server, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server['url']}/digit_map?{EVAL_SET}")
    page.wait_for_selector("h1", timeout=300_000)
    chart = page.locator("[data-testid='stPlotlyChart']")
    expect(chart).to_have_count(1, timeout=900_000)  # a first map takes up to a minute (more on a busy CPU)
    settle(page)
    assert_clean(page, server)
    expect(page.get_by_text("Select digits on the map").first).to_be_visible()

    # Box select is the map's default drag: drag over the middle of the plot area.
    area = chart.locator(".nsewdrag").first.bounding_box()
    x, y, w, h = area["x"], area["y"], area["width"], area["height"]
    page.mouse.move(x + 0.2 * w, y + 0.2 * h)
    page.mouse.down()
    page.mouse.move(x + 0.5 * w, y + 0.5 * h, steps=8)
    page.mouse.move(x + 0.8 * w, y + 0.8 * h, steps=8)
    page.mouse.up()
    settle(page)
    assert_clean(page, server)
    expect(page.get_by_text("selected test digits").first).to_be_visible(timeout=120_000)
    images = page.locator("[data-testid='stMain'] [data-testid='stImage']")
    expect(images.first).to_be_visible()
    assert 0 < images.count() <= 60
    expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()  # the sequences holding them
    shoot(page, "page-digit-map-selected")
    page.close()


def test_a_click_on_a_slice_bar_filters_error_analysis_until_clear(server, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server['url']}/slices?{EVAL_SET}")
    page.wait_for_selector("h1", timeout=300_000)
    settle(page, 300_000)
    assert_clean(page, server)
    notice = page.get_by_text("Filtered to slice:")
    expect(notice).to_have_count(0)
    bar = page.locator("[data-testid='stPlotlyChart'] g.point path").first.bounding_box()  # the worst slice
    page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)  # plotly's drag layer takes clicks
    settle(page)
    assert_clean(page, server)
    expect(notice.first).to_be_visible(timeout=120_000)
    shoot(page, "page-slices-chosen")
    page.locator("[data-testid='stSidebarNav'] a", has_text="Error analysis").first.click()
    settle(page)
    expect(notice.first).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Clear").click()
    settle(page)
    expect(notice).to_have_count(0, timeout=120_000)
    page.close()
