"""Focus and the keyboard cursor are one thing: keys act on the card that has focus, and on the detail
page undo touches only the image shown."""
import re

import pytest
from playwright.sync_api import expect

from curation.models import Image, Review
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def six():
    """Six undecided images, in gallery order for `sort=old`."""
    return [stored_image(300 + i) for i in range(6)]


def card(page, img):
    return page.locator(f"#card-{img.pk}")


def human(img):
    return Image.objects.get(pk=img.pk).human_decision


def active_card_id(page):
    return page.evaluate("(document.activeElement.closest('.card') || {}).id || null")


def test_tab_into_a_card_and_the_keys_act_on_that_card(logged_in_page, six):
    page = logged_in_page
    page.goto(f"{page.base_url}/?sort=old")
    expect(card(page, six[0])).to_have_class(re.compile("is-focused"))
    # From the last button of the second card, Tab goes into the third card.
    card(page, six[1]).locator(".btn-reject").focus()
    page.keyboard.press("Tab")
    assert active_card_id(page) == f"card-{six[2].pk}"
    expect(card(page, six[2])).to_have_class(re.compile("is-focused"))
    expect(page.locator("#grid .card.is-focused")).to_have_count(1)
    page.keyboard.press("r")
    expect(card(page, six[2])).to_have_class(re.compile("dec-reject"))
    assert [human(img) for img in six[:4]] == [None, None, "reject", None]
    # The cursor moved on, and focus with it.
    expect(card(page, six[3])).to_have_class(re.compile("is-focused"))
    assert active_card_id(page) == f"card-{six[3].pk}"
    assert page.js_errors == []


def test_a_click_moves_the_cursor_and_the_arrows_move_focus(logged_in_page, six):
    page = logged_in_page
    page.goto(f"{page.base_url}/?sort=old")
    card(page, six[4]).locator(".card-id").click()  # a plain part of the card, not one of its links
    assert active_card_id(page) == f"card-{six[4].pk}"
    page.keyboard.press("ArrowLeft")
    expect(card(page, six[3])).to_have_class(re.compile("is-focused"))
    assert active_card_id(page) == f"card-{six[3].pk}"
    page.keyboard.press("k")
    expect(card(page, six[3])).to_have_class(re.compile("dec-keep"))
    assert [human(img) for img in six] == [None, None, None, "keep", None, None]
    assert page.js_errors == []


def test_every_card_shows_a_focus_ring_when_focused(logged_in_page, six):
    page = logged_in_page
    page.goto(f"{page.base_url}/?sort=old")
    # A ring: an outline, or a box-shadow in the focus colour (--focus, #2f5bd3). Waited for, as the
    # shadow fades in.
    ring = ("id => { const s = getComputedStyle(document.getElementById(id));"
            " return (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || s.boxShadow.includes('rgb(47, 91, 211)'); }")
    assert not page.evaluate(ring, f"card-{six[5].pk}")
    for i, img in enumerate(six):
        if i:
            page.keyboard.press("ArrowRight")
        assert active_card_id(page) == f"card-{img.pk}"
        page.wait_for_function(ring, arg=f"card-{img.pk}", timeout=2000)
        if i:
            page.wait_for_function(f"id => !({ring})(id)", arg=f"card-{six[i - 1].pk}", timeout=2000)


def test_undo_on_the_detail_page_undoes_only_that_image(logged_in_page, six):
    page = logged_in_page
    first, second = six[:2]
    page.goto(f"{page.base_url}/?sort=old")
    page.keyboard.press("k")  # decides the first image in the gallery
    expect(card(page, first)).to_have_class(re.compile("dec-keep"))
    page.goto(f"{page.base_url}/images/{second.pk}/?sort=old")
    page.wait_for_load_state()
    page.keyboard.press("u")
    expect(page.locator("#flash")).to_contain_text("Nothing to undo for this image")
    assert human(first) == "keep"  # the other image's decision is untouched
    page.keyboard.press("r")
    expect(page.locator("#decision .badge")).to_have_text("reject")
    page.keyboard.press("u")
    expect(page.locator("#decision .badge")).to_have_text("undecided")
    expect(page.locator("#flash")).to_contain_text("Undone: 1 image restored")
    assert (human(first), human(second)) == ("keep", None)
    page.keyboard.press("u")
    expect(page.locator("#flash")).to_contain_text("Nothing to undo for this image")
    assert Review.objects.count() == 3
    # Back in the gallery, the first image's keep is still on the stack.
    page.goto(f"{page.base_url}/?sort=old")
    page.keyboard.press("u")
    expect(card(page, first)).not_to_have_class(re.compile("is-human"))
    assert human(first) is None
    assert page.js_errors == []
