"""The trust views in a real browser (streamlit run + headless chromium, tests/test_browser.py's server
pattern): Calibration's charts and threshold slider, the Suspect labels grid and one image's sequences,
and the sidebar's "Set suspect images aside" switch."""

from __future__ import annotations

import re

import pytest

from core.data import evaluation_sequences
from tests.test_browser import assert_clean, browser, server, settle, shoot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect

LENGTHS, PER_LENGTH, SEED = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 50, 100], 40, 0
EVAL_SET = f"lengths=1-10,20,50,100&per_length={PER_LENGTH}&seed={SEED}"  # test_browser's set (cached alike)


def metric(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']", has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def open_view(browser, server, view: str):  # noqa: F811 (the fixtures, passed on)
    """A fresh page on `view` of the small evaluation set, waited on, with no exception or error box."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server['url']}/{view}?{EVAL_SET}")
    page.wait_for_selector("h1", timeout=300_000)  # the first load computes the set and the ranking
    settle(page, 300_000)
    assert_clean(page, server)
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    return page


def test_calibration_view_in_the_browser(server, browser):  # noqa: F811
    page = open_view(browser, server, "calibration")
    assert page.get_by_role("heading", name="Calibration").count() > 0
    assert page.locator("[data-testid='stPlotlyChart']").count() == 3  # digit + sum reliability, risk-coverage
    assert page.get_by_text("before calibration (ECE").count() > 0  # the legends name each side's ECE
    assert re.fullmatch(r"\d+\.\d{4}", metric(page, "AURC"))
    assert re.fullmatch(r"\d+\.\d%", metric(page, "Coverage"))
    thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
    thumb.focus()
    thumb.press("Home")  # threshold 0: every sequence is answered
    settle(page)
    assert_clean(page, server)
    value = page.locator("[data-testid='stMetric']", has_text="Coverage").first.locator("[data-testid='stMetricValue']")
    expect(value).to_have_text("100.0%", timeout=120_000)  # waits out a rerun that starts late
    shoot(page, "page-calibration-threshold-0")
    page.close()


def test_suspect_labels_view_and_the_aside_switch(server, browser):  # noqa: F811
    page = open_view(browser, server, "suspects")
    assert page.get_by_role("heading", name="Suspect labels").count() > 0
    assert page.locator("[data-testid='stMain'] [data-testid='stImage']").count() == 30
    buttons = page.locator("[data-testid='stMain'] button", has_text=re.compile(r"^#\d+$"))
    images = list(dict.fromkeys(int(t.strip()[1:]) for t in buttons.all_inner_texts()))  # in rank order
    assert len(images) == 30
    seqs = evaluation_sequences(LENGTHS, PER_LENGTH, SEED)  # the same set, without a model
    used = [i for i in images if (seqs.indices == i).any()]
    assert used, "the evaluation set uses none of the 30 most suspect images"
    page.get_by_role("button", name=f"#{used[0]}", exact=True).first.click()
    settle(page)
    assert_clean(page, server)
    expect(page.get_by_text(f"Test image {used[0]}: given").first).to_be_visible(timeout=120_000)
    assert page.locator("[data-testid='stDataFrame']").count() == 1  # its sequences, with inspector links
    shoot(page, "page-suspect-labels-selected")

    page.locator("[data-testid='stSidebar']").get_by_text("Set suspect images aside").click()
    settle(page, 300_000)
    assert_clean(page, server)
    expect(page.get_by_text("uses 0 of these 30 images").first).to_be_visible(timeout=300_000)
    expect(page.get_by_text(f"No sequence of the evaluation set contains test image {used[0]}").first).to_be_visible()
    page.close()
