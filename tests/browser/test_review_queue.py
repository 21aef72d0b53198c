"""No decision is ever lost: every key press is sent, in order, retried when the network or server
fails, and each card says whether its decision is saved."""
import re
import time
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import expect

from curation.models import Image, Review
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DECIDE = re.compile(r"/images/\d+/decide/$")


@pytest.fixture
def undecided():
    """Fifty images nobody has decided, oldest first (the order of `sort=old`)."""
    return [stored_image(900 + i, auto_decision="keep" if i % 3 else None) for i in range(50)]


def card(page, img):
    return page.locator(f"#card-{img.pk}")


def delay_decisions(page, ms):
    """Hold every decide request `ms` before it reaches the server: a slow network."""
    def slow(route):
        page.wait_for_timeout(ms)
        route.continue_()
    page.route(DECIDE, slow)


def wait_for_reviews(page, count, seconds):
    """Wait for `count` Review rows. Through Playwright, not time.sleep: its events and route handlers
    run only while the test is inside a Playwright call."""
    deadline = time.monotonic() + seconds
    while Review.objects.count() < count and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return Review.objects.count()


def client_ids(requests):
    return [parse_qs(r.post_data or "").get("client_id", [None])[0] for r in requests]


@pytest.mark.parametrize("latency_ms", [0, 300])
def test_a_burst_of_key_presses_saves_every_decision_in_order(logged_in_page, undecided, latency_ms):
    page = logged_in_page
    if latency_ms:
        delay_decisions(page, latency_ms)
    sent = []
    page.on("request", lambda r: sent.append(r) if DECIDE.search(r.url) else None)
    page.goto(f"{page.base_url}/?human=none&sort=old")
    expect(page.locator("#grid .card")).to_have_count(50)
    expect(card(page, undecided[0])).to_have_class(re.compile("is-focused"))
    keys = ["k" if i % 2 == 0 else "r" for i in range(50)]
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(20)
    rows = wait_for_reviews(page, 50, 30 + 50 * latency_ms / 1000)
    print(f"\nburst, 20 ms apart, {latency_ms} ms added latency: decisions pressed {len(keys)}, "
          f"requests sent {len(sent)}, Review rows {rows}, lost {len(keys) - rows}")
    want = [(img.pk, "keep" if key == "k" else "reject") for img, key in zip(undecided, keys, strict=True)]
    assert list(Review.objects.order_by("pk").values_list("image_id", "new")) == want
    expect(page.locator("#grid .card.save-saved")).to_have_count(50)
    expect(page.locator("#grid .card.save-saved .save-state").first).to_have_text("saved")
    assert len(set(client_ids(sent))) == 50 and None not in client_ids(sent)
    assert page.js_errors == []


def test_server_errors_are_retried_with_the_same_id_and_saved_once(logged_in_page, undecided):
    page = logged_in_page
    attempts = []

    def flaky(route):
        attempts.append(route.request)
        if len(attempts) <= 2:
            route.fulfill(status=503, body="busy")
        elif len(attempts) == 3:
            route.fetch()  # the server saves it, but the answer never arrives
            route.abort("connectionreset")
        else:
            route.continue_()
    page.route(DECIDE, flaky)
    page.goto(f"{page.base_url}/?sort=old")
    first = undecided[0]
    page.keyboard.press("r")
    expect(card(page, first)).to_have_class(re.compile("save-pending"))
    expect(card(page, first)).to_have_class(re.compile(r"save-saved"), timeout=15_000)
    expect(card(page, first)).to_have_class(re.compile("dec-reject"))
    assert len(attempts) == 4
    assert len(set(client_ids(attempts))) == 1  # one decision, sent four times
    assert list(Review.objects.values_list("image_id", "new")) == [(first.pk, "reject")]
    assert page.js_errors == []


def test_a_decision_that_keeps_failing_shows_a_retry_button(logged_in_page, undecided):
    page = logged_in_page
    page.route(DECIDE, lambda route: route.fulfill(status=502, body="bad gateway"))
    page.goto(f"{page.base_url}/?sort=old")
    first, second = undecided[:2]
    page.keyboard.press("k")
    page.keyboard.press("r")
    failed = card(page, first)
    expect(failed).to_have_class(re.compile("save-failed"), timeout=20_000)
    expect(card(page, second)).to_have_class(re.compile("save-failed"), timeout=20_000)
    expect(failed.locator(".save-state")).to_contain_text("not saved")
    assert Review.objects.count() == 0
    page.unroute(DECIDE)
    failed.locator("button.save-retry").click()
    expect(failed).to_have_class(re.compile("save-saved"))
    card(page, second).locator("button.save-retry").click()
    expect(card(page, second)).to_have_class(re.compile("save-saved"))
    assert list(Review.objects.order_by("pk").values_list("image_id", "new")) == [
        (first.pk, "keep"), (second.pk, "reject")]
    assert page.js_errors == []


def test_leaving_with_an_unsaved_decision_warns(logged_in_page, undecided):
    page = logged_in_page
    held = []
    hold = [True]
    page.route(DECIDE, lambda route: held.append(route) if hold[0] else route.continue_())
    page.goto(f"{page.base_url}/?sort=old")
    page.keyboard.press("k")
    expect(card(page, undecided[0])).to_have_class(re.compile("save-pending"))
    dialogs = []

    def answer(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()
    page.on("dialog", answer)
    page.evaluate("window.location.href = '/runs/'")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    expect(page).to_have_url(re.compile(r"sort=old$"))  # stayed
    hold[0] = False
    for route in held:
        route.continue_()
    expect(card(page, undecided[0])).to_have_class(re.compile("save-saved"))
    page.evaluate("window.location.href = '/runs/'")
    expect(page).to_have_url(re.compile(r"/runs/$"))
    assert dialogs == ["beforeunload"]  # saved: no second warning
    assert Review.objects.count() == 1


def test_undo_waits_for_the_decisions_before_it(logged_in_page, undecided):
    page = logged_in_page
    delay_decisions(page, 300)
    page.goto(f"{page.base_url}/?sort=old")
    first, second = undecided[:2]
    page.keyboard.press("r")
    page.keyboard.press("k")
    page.keyboard.press("u")  # undoes the keep on the second, once it is saved
    expect(page.locator("#flash")).to_contain_text("Undone: 1 image restored", timeout=10_000)
    assert Image.objects.get(pk=second.pk).human_decision is None
    assert Image.objects.get(pk=first.pk).human_decision == "reject"
    page.keyboard.press("u")
    expect(card(page, first)).not_to_have_class(re.compile("is-human"))
    assert Image.objects.get(pk=first.pk).human_decision is None
    assert list(Review.objects.order_by("pk").values_list("image_id", "new")) == [
        (first.pk, "reject"), (second.pk, "keep"), (second.pk, None), (first.pk, None)]
    assert page.js_errors == []


def test_keys_that_leave_the_page_wait_for_the_decision(logged_in_page, undecided):
    page = logged_in_page
    delay_decisions(page, 300)
    first, second = undecided[:2]
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.goto(f"{page.base_url}/images/{first.pk}/?sort=old")
    page.wait_for_load_state()
    page.keyboard.press("r")
    page.keyboard.press("n")  # at once: the reject is still on its way
    expect(page).to_have_url(re.compile(rf"/images/{second.pk}/\?sort=old$"))
    assert list(Review.objects.values_list("image_id", "new")) == [(first.pk, "reject")]
    page.wait_for_load_state()
    page.keyboard.press("k")
    page.locator("#prev-link").click()  # a link waits the same way
    expect(page).to_have_url(re.compile(rf"/images/{first.pk}/\?sort=old$"))
    assert list(Review.objects.order_by("pk").values_list("image_id", "new")) == [
        (first.pk, "reject"), (second.pk, "keep")]
    assert dialogs == []
    assert page.js_errors == []
