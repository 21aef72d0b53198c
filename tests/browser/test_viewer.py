"""The review viewer in a real browser: the next images are preloaded, zoom and pan, keyboard decisions
saved through the gallery's queue, and Esc leads back to the same image in the gallery."""
import json
import re
import time

import pytest
from playwright.sync_api import expect

from curation.models import Review
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FULL = re.compile(r"/images/(\d+)/full$")


def state(page):
    return page.evaluate("window.SceneImgViewer.state()")


def wait_for_image(page, image):
    page.wait_for_function("id => window.SceneImgViewer && window.SceneImgViewer.state().id === id", arg=image.pk)
    expect(page.locator(f'.viewer-img.is-current[data-id="{image.pk}"]')).to_be_visible()


def wait_for_reviews(page, count, seconds=15):
    deadline = time.monotonic() + seconds
    while Review.objects.count() < count and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return Review.objects.count()


@pytest.fixture
def images():
    """Twelve images, oldest first (the order of `sort=old`)."""
    return [stored_image(300 + i) for i in range(12)]


def test_the_next_three_images_are_requested_before_they_are_needed(logged_in_page, images):
    page = logged_in_page
    requested = []
    page.on("request", lambda r: requested.append(int(FULL.search(r.url)[1])) if FULL.search(r.url) else None)
    page.goto(f"{page.base_url}/viewer/?sort=old")
    wait_for_image(page, images[0])
    page.wait_for_function("() => document.querySelectorAll('.viewer-img').length === 4")
    assert requested[:4] == [im.pk for im in images[:4]]
    assert images[4].pk not in requested
    page.keyboard.press("s")
    wait_for_image(page, images[1])
    page.wait_for_function("id => window.SceneImgViewer.state().preloaded.includes(id)", arg=images[4].pk)
    assert images[4].pk in requested and images[5].pk not in requested
    # Every image shown was ready: the time from key to picture is recorded.
    page.wait_for_function("() => window.SceneImgViewer.timings.length === 1")
    assert page.js_errors == []


def test_zoom_with_keys_wheel_and_drag_and_0_fits_again(logged_in_page, images):
    page = logged_in_page
    page.goto(f"{page.base_url}/viewer/?sort=old")
    wait_for_image(page, images[0])
    current = page.locator(".viewer-img.is-current")
    page.keyboard.press("+")
    assert state(page)["zoom"] == pytest.approx(1.25)
    expect(current).to_have_attribute("style", re.compile(r"scale\(1\.25\)"))
    box = page.locator("#viewer-stage").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2 + 100, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function("() => window.SceneImgViewer.state().zoom > 1.6")
    before = current.get_attribute("style")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 30, steps=4)
    page.mouse.up()
    assert current.get_attribute("style") != before
    expect(page.locator("#viewer-zoom")).not_to_have_text("fit")
    page.keyboard.press("-")
    page.keyboard.press("0")
    assert state(page)["zoom"] == 1
    expect(page.locator("#viewer-zoom")).to_have_text("fit")
    assert "scale" not in (current.get_attribute("style") or "")
    # Another image starts fitted.
    page.keyboard.press("+")
    page.keyboard.press("ArrowRight")
    wait_for_image(page, images[1])
    assert state(page)["zoom"] == 1


def test_a_large_image_is_shown_at_least_1024_px_wide_on_a_desktop(live_server, chromium, browser_user):
    from tests.browser.conftest import log_in

    big = stored_image(77, width=2400, height=1600)
    context = chromium.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    try:
        log_in(page, live_server.url, browser_user.username)
        page.goto(f"{live_server.url}/viewer/?sort=old")
        wait_for_image(page, big)
        page.wait_for_function("() => document.querySelector('.viewer-img.is-current').complete")
        shown = page.evaluate("""() => {
          const el = document.querySelector('.viewer-img.is-current'), box = el.getBoundingClientRect();
          const scale = Math.min(box.width / el.naturalWidth, box.height / el.naturalHeight);
          return [el.naturalWidth * scale, el.naturalHeight * scale];
        }""")
        assert shown[0] >= 1024 and shown[1] <= 1080
    finally:
        context.close()


def test_keyboard_decisions_are_saved_in_order_and_undo_and_back_work(logged_in_page, images):
    page = logged_in_page
    page.goto(f"{page.base_url}/viewer/?sort=old")
    wait_for_image(page, images[0])
    for key in ["k", "r", "s", "ArrowRight", "k"]:
        page.keyboard.press(key)
    wait_for_image(page, images[5])
    assert wait_for_reviews(page, 3) == 3
    assert list(Review.objects.order_by("pk").values_list("image_id", "new")) == [
        (images[0].pk, "keep"), (images[1].pk, "reject"), (images[4].pk, "keep")]
    expect(page.locator("#viewer-save")).to_have_text("")  # the shown image has no decision of its own
    page.keyboard.press("ArrowLeft")
    wait_for_image(page, images[4])
    expect(page.locator("#viewer-save")).to_have_text("keep · saved")
    expect(page.locator("#viewer-side")).to_contain_text(f"Image #{images[4].pk}")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("u")  # undoes the last decision (keep on images[4]) and shows that image
    wait_for_image(page, images[4])
    assert wait_for_reviews(page, 4) == 4
    images[4].refresh_from_db()
    assert images[4].human_decision is None
    assert page.js_errors == []


def test_esc_returns_to_the_same_image_in_the_gallery_beyond_its_first_page(logged_in_page):
    page = logged_in_page
    many = [stored_image(500 + i) for i in range(75)]
    page.goto(f"{page.base_url}/?sort=old")
    expect(page.locator("#grid .card")).to_have_count(60)
    expect(page.locator(f"#card-{many[64].pk}")).to_have_count(0)  # not loaded in the gallery yet
    page.click("#open-viewer")
    page.wait_for_url(re.compile(rf"/viewer/\?sort=old&at={many[0].pk}$"))  # at the focused (first) card
    wait_for_image(page, many[0])
    for _ in range(64):
        page.keyboard.press("s")
    wait_for_image(page, many[64])
    page.keyboard.press("Escape")
    page.wait_for_url(re.compile(rf"/\?sort=old&after=\d+#card-{many[64].pk}$"))
    first = page.locator("#grid .card").first
    expect(first).to_have_id(f"card-{many[64].pk}")
    expect(first).to_have_class(re.compile("is-focused"))
    expect(page.locator(f"#card-{many[64].pk}")).to_be_focused()
    assert page.js_errors == []


def test_a_failed_decision_is_retried_with_the_same_client_id_and_saved_once(logged_in_page, images):
    from urllib.parse import parse_qs

    page = logged_in_page
    attempts = []

    def flaky(route):
        items = json.loads(parse_qs(route.request.post_data or "")["items"][0])
        attempts.append(items[0]["client_id"])
        if len(attempts) == 1:
            route.fulfill(status=503, body="busy")
        else:
            route.continue_()

    page.route(re.compile(r"/review/decisions/$"), flaky)
    page.goto(f"{page.base_url}/viewer/?sort=old")
    wait_for_image(page, images[0])
    page.keyboard.press("r")
    wait_for_image(page, images[1])
    assert wait_for_reviews(page, 1) == 1
    assert len(attempts) == 2 and attempts[0] == attempts[1]
    assert list(Review.objects.values_list("image_id", "new")) == [(images[0].pk, "reject")]
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-save")).to_have_text("reject · saved")
