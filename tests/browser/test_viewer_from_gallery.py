"""The gallery's Viewer button (and v) opens the viewer at the focused card, in the gallery's filter and
order, and the viewer's decisions are saved (several to a request when the keys outrun the server)."""
import re
import time

import pytest
from playwright.sync_api import expect

from curation.models import Image, Review
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def images():
    """Twelve images, oldest first; every third is already kept by a person (so human=none skips it)."""
    return [stored_image(600 + i, human_decision="keep" if i % 3 == 0 else None) for i in range(12)]


def undecided(images):
    return [im for i, im in enumerate(images) if i % 3]


def shown(page, image):
    page.wait_for_function("id => window.SceneImgViewer && window.SceneImgViewer.state().id === id", arg=image.pk)
    expect(page.locator(f'.viewer-img.is-current[data-id="{image.pk}"]')).to_be_visible()


def test_viewer_button_starts_at_the_focused_card_with_the_filter_and_order(logged_in_page, images):
    page = logged_in_page
    order = undecided(images)  # the gallery's list for human=none&sort=old
    page.goto(f"{page.base_url}/?human=none&sort=old")
    expect(page.locator("#grid .card")).to_have_count(len(order))
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    expect(page.locator(f"#card-{order[4].pk}")).to_have_class(re.compile("is-focused"))
    button = page.locator("#open-viewer")
    expect(button).to_have_attribute("href", f"/viewer/?human=none&sort=old&at={order[4].pk}")
    button.click()
    expect(page).to_have_url(re.compile(rf"/viewer/\?human=none&sort=old&at={order[4].pk}$"))
    shown(page, order[4])
    # The viewer goes on in the gallery's order and filter: the next undecided image, not the next id.
    page.keyboard.press("s")
    shown(page, order[5])
    page.keyboard.press("ArrowLeft")
    shown(page, order[4])
    assert page.js_errors == []


def test_v_opens_the_viewer_at_a_clicked_card_and_its_decisions_are_saved_and_undone(logged_in_page, images):
    page = logged_in_page
    order = undecided(images)
    page.goto(f"{page.base_url}/?human=none&sort=old")
    page.locator(f"#card-{order[2].pk} .card-id").click()  # a plain part of the card focuses it
    expect(page.locator(f"#card-{order[2].pk}")).to_have_class(re.compile("is-focused"))
    page.keyboard.press("v")
    shown(page, order[2])
    answers = []
    page.on("response", lambda r: answers.append(r.status) if r.url.endswith("/review/decisions/") else None)
    page.keyboard.press("k")
    shown(page, order[3])
    page.keyboard.press("r")
    shown(page, order[4])
    deadline = time.monotonic() + 10
    while Review.objects.count() < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert list(Review.objects.order_by("pk").values_list("image_id", "new")) == [
        (order[2].pk, "keep"), (order[3].pk, "reject")]
    assert Image.objects.get(pk=order[3].pk).human_decision == "reject"
    assert answers and set(answers) == {200}  # one or two requests, as the keys outran the first
    # u takes back the last decision and shows that image again.
    page.keyboard.press("u")
    shown(page, order[3])
    deadline = time.monotonic() + 10
    while Image.objects.get(pk=order[3].pk).human_decision is not None and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert Image.objects.get(pk=order[3].pk).human_decision is None
    assert page.js_errors == []
