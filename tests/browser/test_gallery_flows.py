"""Curation in a real browser: sign in, filter, review with the keyboard, bulk reject, undo, detail."""
import re

import pytest
from playwright.sync_api import expect

from crawl.models import Source
from curation.models import FilterScore, Image, Review
from tests.browser.conftest import screenshot
from tests.factories import stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def images():
    """Eight scored images, newest first in the gallery: keep, reject and undecided ones."""
    pv = PromptVersion.objects.create(name="v2", system_text="s", user_template="u", content_hash="f" * 64)
    made = []
    for i in range(8):
        auto = ["keep", "reject", None, "keep"][i % 4]
        img = stored_image(500 + i, width=400, height=300, auto_decision=auto,
                         clip_indoor_margin=round(0.04 * i - 0.05, 3), clip_moderate_margin=round(0.02 * i, 3),
                         vlm_score=round(0.1 + 0.1 * i, 2) if auto else None)
        made.append(img)
        Source.objects.create(image=img, provider="baidu", query="凌乱的客厅", rank=i + 1,
                              url=f"https://img.example/{i}.jpg", title=f"Living room {i}", outcome="stored")
        FilterScore.objects.create(image=img, scorer_key="clip:ViT-B-32:laion2b:v1", scores={"indoor": 0.3},
                                   indoor_margin=img.clip_indoor_margin or 0, passed=auto == "keep")
        if auto:
            VlmVerdict.objects.create(
                image=img, prompt_version=pv, backend="openai", model="gpt-4.1-mini", decision=auto,
                score=img.vlm_score, reason="A lived-in living room with toys on the floor" if auto == "keep"
                else "Showroom staging, nothing to pick up", tags=["living room"],
                raw_response='{"decision": "%s"}' % auto, latency_ms=900, input_tokens=1100, output_tokens=35)
    made[0].dup_group = made[0]
    made[0].save()
    made[1].dup_group = made[0]
    made[1].save()
    return list(reversed(made))  # gallery order


def open_gallery(page, querystring=""):
    page.goto(f"{page.base_url}/{'?' + querystring if querystring else ''}")
    return page


def card(page, img):
    return page.locator(f"#card-{img.pk}")


def final(img):
    img.refresh_from_db()
    return img.final_decision


def test_sign_in_is_required_and_works(live_server, browser_page, browser_user):
    browser_page.goto(f"{live_server.url}/")
    expect(browser_page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    browser_page.fill("#id_username", "reviewer")
    browser_page.fill("#id_password", "wrong-password")
    browser_page.click("button[type=submit]")
    expect(browser_page.locator(".flash-error")).to_contain_text("did not match")
    browser_page.fill("#id_password", "browser-pw-123")
    browser_page.click("button[type=submit]")
    expect(browser_page.locator(".brand")).to_be_visible()
    expect(browser_page.locator(".mainnav a[aria-current=page]")).to_have_text("Gallery")


def test_filter_updates_grid_and_url(logged_in_page, images):
    page = open_gallery(logged_in_page)
    expect(page.locator("#grid .card")).to_have_count(8)
    expect(page.locator("#count")).to_have_text("8 images")
    screenshot(page, "gallery")
    page.select_option("select[name=final]", "keep")
    expect(page.locator("#grid .card")).to_have_count(4)
    expect(page).to_have_url(re.compile(r"final=keep"))
    expect(page.locator("#count")).to_have_text("4 images")
    for img in images:
        if img.final_decision != "keep":
            expect(card(page, img)).to_have_count(0)
    page.fill("input[name=vlm_min]", "0.5")
    page.press("input[name=vlm_min]", "Enter")
    expect(page).to_have_url(re.compile(r"vlm_min=0.5"))
    expect(page.locator("#grid .card")).to_have_count(2)
    # The filtered view is shareable: loading the URL afresh gives the same grid and form.
    page.goto(page.url)
    expect(page.locator("#grid .card")).to_have_count(2)
    expect(page.locator("input[name=vlm_min]")).to_have_value("0.5")
    assert page.js_errors == []


def test_keyboard_review_and_undo(logged_in_page, images):
    page = open_gallery(logged_in_page)
    first, second, third = images[:3]
    expect(card(page, first)).to_have_class(re.compile("is-focused"))
    page.keyboard.press("k")
    expect(card(page, first)).to_have_class(re.compile("dec-keep.*is-human"))
    expect(card(page, second)).to_have_class(re.compile("is-focused"))  # moved on by itself
    page.keyboard.press("r")
    expect(card(page, second)).to_have_class(re.compile("dec-reject"))
    page.keyboard.press("ArrowRight")  # skip the third
    expect(card(page, images[3])).to_have_class(re.compile("is-focused"))
    page.keyboard.press("ArrowLeft")
    expect(card(page, third)).to_have_class(re.compile("is-focused"))
    assert (final(first), final(second)) == ("keep", "reject")
    assert [Image.objects.get(pk=i.pk).human_decision for i in (first, second)] == ["keep", "reject"]
    assert Review.objects.count() == 2

    page.keyboard.press("u")  # undo the reject
    expect(card(page, second)).not_to_have_class(re.compile("is-human"))
    expect(card(page, second)).to_have_class(re.compile("is-focused"))
    assert second.__class__.objects.get(pk=second.pk).human_decision is None
    page.keyboard.press("u")  # and the keep
    expect(card(page, first)).not_to_have_class(re.compile("is-human"))
    assert Image.objects.get(pk=first.pk).human_decision is None
    assert Review.objects.count() == 4  # undo is recorded too
    page.keyboard.press("u")
    expect(page.locator("#flash")).to_contain_text("Nothing to undo")

    page.keyboard.press("?")
    expect(page.locator("#keymap")).to_be_visible()
    screenshot(page, "keymap")
    page.keyboard.press("Escape")
    expect(page.locator("#keymap")).to_be_hidden()
    assert page.js_errors == []


def test_bulk_reject_a_shift_click_selection_then_undo(logged_in_page, images):
    page = open_gallery(logged_in_page)
    chosen = images[1:5]
    outside = images[0]
    assert final(outside) == "keep"
    card(page, chosen[0]).locator(".card-body").click()
    card(page, chosen[-1]).locator(".card-body").click(modifiers=["Shift"])
    expect(page.locator("#grid .card.is-selected")).to_have_count(4)
    expect(page.locator("#selection-count")).to_have_text("4")
    screenshot(page, "gallery-selection")
    page.keyboard.press("r")
    for img in chosen:
        expect(card(page, img)).to_have_class(re.compile("dec-reject"))
    expect(page.locator("#grid .card.is-selected")).to_have_count(0)
    expect(page.locator("#flash")).to_contain_text("selected images changed")
    assert {final(img) for img in chosen} == {"reject"}
    assert final(outside) == "keep"  # outside the selection: untouched

    page.keyboard.press("u")
    expect(page.locator("#flash")).to_contain_text("Undone")
    assert [Image.objects.get(pk=img.pk).human_decision for img in chosen] == [None] * 4


def test_reject_everything_matching_the_filter(logged_in_page, images):
    page = open_gallery(logged_in_page, "final=none")
    expect(page.locator("#grid .card")).to_have_count(2)
    page.on("dialog", lambda dialog: dialog.accept())
    page.keyboard.press("Shift+R")
    expect(page.locator("#flash")).to_contain_text("2 matching images changed")
    # The results reload: nothing is undecided any more.
    expect(page.locator("#grid .card")).to_have_count(0)
    expect(page.locator(".empty")).to_have_text("No images match these filters.")
    assert Image.objects.filter(final_decision__isnull=True).count() == 0
    page.keyboard.press("u")
    expect(page.locator("#flash")).to_contain_text("Undone: 2 images restored")
    assert Image.objects.filter(final_decision__isnull=True).count() == 2


def test_open_detail_review_and_step_through(logged_in_page, images):
    page = open_gallery(logged_in_page)
    page.select_option("select[name=sort]", "-vlm")
    expect(page).to_have_url(re.compile(r"sort=-vlm"))
    top = max((i for i in images if i.vlm_score is not None), key=lambda i: i.vlm_score)
    expect(page.locator("#grid .card").first).to_have_id(f"card-{top.pk}")
    page.wait_for_load_state()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/images/{top.pk}/\?sort=-vlm$"))
    page.wait_for_load_state()  # app.js (deferred) must be listening before the next key
    expect(page.locator("h1")).to_have_text(f"Image #{top.pk}")
    expect(page.locator(".verdict")).to_contain_text("gpt-4.1-mini")
    expect(page.locator("img[alt='Image %d']" % top.pk).first).to_be_visible()
    screenshot(page, "detail")

    page.keyboard.press("r")
    expect(page.locator("#decision .badge")).to_have_text("reject")
    expect(page.locator("#review-history")).to_contain_text("reviewer")
    assert final(top) == "reject"
    page.keyboard.press("u")
    expect(page.locator("#decision .badge")).to_have_text("keep")  # page reloads after the undo
    page.wait_for_load_state()

    page.keyboard.press("n")
    second = sorted((i for i in images if i.vlm_score is not None), key=lambda i: -i.vlm_score)[1]
    expect(page).to_have_url(re.compile(rf"/images/{second.pk}/\?sort=-vlm$"))
    page.wait_for_load_state()
    page.keyboard.press("p")
    expect(page).to_have_url(re.compile(rf"/images/{top.pk}/"))
    page.wait_for_load_state()
    page.keyboard.press("g")
    expect(page).to_have_url(re.compile(rf"/\?sort=-vlm#card-{top.pk}$"))
    expect(card(page, top)).to_have_class(re.compile("is-focused"))
    assert page.js_errors == []


def test_infinite_scroll_loads_the_next_pages(logged_in_page, monkeypatch):
    from curation import gallery

    monkeypatch.setattr(gallery, "PAGE_SIZE", 4)  # the live server runs in this process
    made = [stored_image(700 + i, auto_decision="keep") for i in range(10)]
    page = open_gallery(logged_in_page)
    page.set_viewport_size({"width": 1400, "height": 400})
    page.goto(page.url)
    expect(page.locator("#grid .sentinel")).to_have_count(1)  # pages of 4, more to come
    for count in (8, 10):  # walking down with the keyboard brings the next page's sentinel into view
        page.keyboard.press("End")
        expect(page.locator("#grid .card")).to_have_count(count)
    expect(page.locator(".end")).to_have_text("End of results.")
    shown = page.eval_on_selector_all("#grid .card", "cards => cards.map(c => Number(c.dataset.id))")
    assert shown == sorted((m.pk for m in made), reverse=True)


def test_large_selection_sends_ids_in_the_body_and_undo_still_works(logged_in_page, images, monkeypatch):
    from curation import views

    monkeypatch.setattr(views, "HEADER_IDS_MAX", 2)  # the live server runs in this process
    page = open_gallery(logged_in_page)
    chosen = images[1:5]
    card(page, chosen[0]).locator(".card-body").click()
    card(page, chosen[-1]).locator(".card-body").click(modifiers=["Shift"])
    expect(page.locator("#selection-count")).to_have_text("4")
    with page.expect_response(lambda r: r.url.endswith("/review/")) as info:
        page.keyboard.press("r")
    assert "in_body" in info.value.headers["hx-trigger"]
    expect(page.locator("#flash")).to_contain_text("4 of 4 selected images changed")
    assert {final(img) for img in chosen} == {"reject"}
    page.keyboard.press("u")
    expect(page.locator("#flash")).to_contain_text("Undone: 4 images restored")
    assert [Image.objects.get(pk=img.pk).human_decision for img in chosen] == [None] * 4
    assert page.js_errors == []


def test_enter_and_space_on_a_focused_button_press_the_button(logged_in_page, images):
    page = open_gallery(logged_in_page)
    expect(card(page, images[0])).to_have_class(re.compile("is-focused"))
    keys = page.locator("[data-keymap-open]")
    for key in ("Enter", " "):
        keys.focus()
        page.keyboard.press(key)
        expect(page.locator("#keymap")).to_be_visible()  # the button did its job
        page.keyboard.press("Escape")
        expect(page.locator("#keymap")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/$"))  # Enter did not open the focused card
    expect(page.locator("#grid .card.is-selected")).to_have_count(0)  # Space did not select it
    assert page.js_errors == []
