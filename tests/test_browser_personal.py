"""From your own handwriting to a better model, in a real browser: draw digits, fix a box, label and save
them, train a personal model (a quick-check run) from the collection, and see it beside its parent."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tests.test_browser import assert_clean, browser, server, settle  # noqa: F401 - fixtures
from tests.test_browser_handwriting import stroke

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect


@pytest.fixture(scope="module", autouse=True)
def seeded_collection(tmp_path_factory):
    """A collection the server reads (set before it starts): 40 saves of MNIST val digits, so the train part
    holds more than the personal preset's minimum before the drawn digits are added."""
    from core.collection import save_digits
    from core.data import load_mnist, split_arrays

    folder = tmp_path_factory.mktemp("collection")
    old = os.environ.get("DIGITSUM_COLLECTION_DIR")
    os.environ["DIGITSUM_COLLECTION_DIR"] = str(folder)
    images, labels = split_arrays(load_mnist(), "val_select")
    for start in range(0, 400, 10):
        save_digits(images[start:start + 10], labels[start:start + 10].astype(np.int64), source="test")
    yield folder
    if old is None:
        os.environ.pop("DIGITSUM_COLLECTION_DIR", None)
    else:
        os.environ["DIGITSUM_COLLECTION_DIR"] = old


def test_draw_fix_save_train_a_personal_model_and_compare(server, browser, seeded_collection):  # noqa: F811
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    page.goto(f"{server['url']}/handwriting")
    page.get_by_role("heading", name="Write your own").wait_for(timeout=180_000)
    settle(page)
    canvas = page.locator("[data-testid='stMain'] canvas").last
    canvas.wait_for(timeout=60_000)
    box = canvas.bounding_box()
    origin = (box["x"], box["y"])
    stroke(page, origin, [(200, 35), (202, 95), (204, 150)])  # a "1"
    stroke(page, origin, [(330, 40), (420, 40)])  # a "7"
    stroke(page, origin, [(420, 40), (390, 95), (365, 150)])
    settle(page)
    expect(page.get_by_text("2 digits found")).to_be_visible(timeout=120_000)

    page.get_by_text("Fix the boxes (merge, split, delete)").click()  # fix a box: merge, then split again
    page.get_by_role("button", name="Merge with the next").click()
    expect(page.get_by_text("1 digit found")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Split in two").click()
    expect(page.get_by_text("2 digits found")).to_be_visible(timeout=60_000)
    settle(page)
    page.get_by_text("I have checked every label").click()
    settle(page)
    page.get_by_role("button", name="Save corrected digits to my collection").click()
    expect(page.get_by_text("Saved 2 digits")).to_be_visible(timeout=60_000)
    assert len(list(seeded_collection.glob("digits-*.npz"))) == 41

    page.get_by_role("tab", name="Your collection and personal models").click()
    page.get_by_text("Quick check").click()  # a smoke-size run: the loop, not the figure
    settle(page)
    page.get_by_role("button", name="Train a personal model from checkpoints/default.pt").click()
    expect(page.get_by_text("is training a personal model")).to_be_visible(timeout=60_000)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # the run trains in the background; a reload reads the runs again
        page.reload()
        page.get_by_role("heading", name="Write your own").wait_for(timeout=180_000)
        page.get_by_role("tab", name="Your collection and personal models").click()
        settle(page)
        if page.get_by_text("Personal models and the models they started from").count():
            break
        time.sleep(5)
    table = page.locator("[data-testid='stDataFrame']").last
    expect(page.get_by_text("Personal models and the models they started from")).to_be_visible(timeout=10_000)
    expect(table).to_be_visible()
    assert_clean(page, server)
    page.close()
