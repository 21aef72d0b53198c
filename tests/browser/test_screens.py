"""Gallery, viewer, compare and runs at a desktop size (1280x800) and a phone size (390x844): a phone's
menu opens and its links work, the filter panel starts folded, no page is wider than the screen, and each
page is kept as a screenshot for people to look at (SCENEIMG_SCREENSHOTS names the folder; default
test-artifacts/)."""
import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from curation.models import Run
from tests.browser.conftest import ARTIFACTS, PASSWORD, log_in
from tests.factories import stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SHOTS = Path(os.environ.get("SCENEIMG_SCREENSHOTS") or ARTIFACTS)

V1 = "You judge photos of rooms.\nKeep a photo of an indoor room with moderate clutter.\nReject outdoor scenes."
V2 = ("You judge photos of rooms.\nKeep a photo of an indoor room with moderate, everyday clutter.\n"
      "Reject outdoor scenes.\nReject renders and drawings.")


@pytest.fixture
def world(django_user_model):
    """A staff reviewer (so the runs page shows its launch forms), 16 judged images and a few runs."""
    user = django_user_model.objects.create_user("curator", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="curation", codename="add_run"))
    v1 = PromptVersion.objects.create(name="v1", system_text=V1, user_template="Judge this image.",
                                      content_hash="a" * 64)
    v2 = PromptVersion.objects.create(name="v2", system_text=V2, user_template="Judge this image.",
                                      content_hash="b" * 64)
    images = []
    for i in range(16):
        human = ("keep", "reject", None, None)[i % 4]
        image = stored_image(900 + i, width=320, height=240, human_decision=human, vlm_score=round(0.05 * i, 2),
                             clip_indoor_margin=0.01 * (i - 5))
        images.append(image)
        for pv, decision in ((v1, "keep" if i % 3 else "reject"), (v2, "keep" if i % 2 else "reject")):
            if pv is v2 and i == 15:
                continue  # judged by v1 only
            VlmVerdict.objects.create(image=image, prompt_version=pv, backend="openai", model="gpt-4.1-mini",
                                      decision=decision, score=0.8 if decision == "keep" else 0.2,
                                      reason=f"{pv.name}: a {'tidy' if decision == 'reject' else 'lived-in'} room",
                                      tags=["kitchen"], cost_usd=0.000412, input_tokens=900, output_tokens=40)
    parent = Run.objects.create(kind="import", status="done", total=16, created_by=user, label="a long label for a folder import",
                                counters={"stored": 13, "duplicate": 2, "failed": 1})
    Run.objects.create(kind="clip", status="running", total=16, parent=parent, created_by=user,
                       counters={"scored": 9})
    Run.objects.create(kind="vlm", status="failed", created_by=user, error="openai: 429 Too Many Requests " * 4)
    return user, images, v1, v2


def page_at(chromium, live_server, user, viewport):
    context = chromium.new_context(viewport=viewport, device_scale_factor=1,
                                   is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    context.set_default_timeout(30_000)  # the compare page computes its calibration curves on a shared box
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    log_in(page, live_server.url, user.username)
    return page


def fits_the_width(page):
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")


def shoot(page, name, full_page=False):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def test_phone_menu_opens_and_its_links_work(chromium, live_server, world):
    user = world[0]
    page = page_at(chromium, live_server, user, PHONE)
    runs = page.locator(".mainnav >> text=Runs")
    expect(runs).to_be_hidden()  # folded away behind the menu button
    toggle = page.locator("#menu-toggle")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.tap()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(runs).to_be_visible()
    box = runs.bounding_box()
    assert box["width"] >= 120 and box["height"] >= 32  # a finger-sized target, not a scroll strip
    shoot(page, "menu-phone")
    runs.tap()
    expect(page).to_have_url(re.compile(r"/runs/$"))
    expect(page.locator("h1")).to_have_text("Runs")
    assert fits_the_width(page)
    assert page.js_errors == []
    page.context.close()


def test_phone_filter_panel_starts_folded_and_opens(chromium, live_server, world):
    user = world[0]
    page = page_at(chromium, live_server, user, PHONE)
    expect(page.locator("#grid .card").first).to_be_visible()
    expect(page.locator("#filter-form")).to_be_hidden()
    toggle = page.locator("#filters-toggle")
    toggle.tap()
    expect(page.locator("#filter-form")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    shoot(page, "filters-phone")
    page.select_option("#f-sort", "old")  # the filters still work from the opened panel
    expect(page).to_have_url(re.compile(r"sort=old"))
    assert fits_the_width(page)
    page.context.close()


def test_desktop_shows_menu_and_filters_without_toggles(chromium, live_server, world):
    page = page_at(chromium, live_server, world[0], DESKTOP)
    expect(page.locator("#menu-toggle")).to_be_hidden()
    expect(page.locator("#filters-toggle")).to_be_hidden()
    expect(page.locator(".mainnav >> text=Runs")).to_be_visible()
    expect(page.locator("#filter-form")).to_be_visible()
    page.context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_screenshots_of_gallery_viewer_compare_and_runs(chromium, live_server, world, size):
    user, images, v1, v2 = world
    page = page_at(chromium, live_server, user, DESKTOP if size == "desktop" else PHONE)
    base = live_server.url
    expect(page.locator("#grid .card")).to_have_count(16)
    expect(page.locator("#count")).not_to_have_text("counting…")
    shoot(page, f"gallery-{size}")
    page.goto(f"{base}/viewer/?sort=old")
    expect(page.locator(f'.viewer-img.is-current[data-id="{images[0].pk}"]')).to_be_visible()
    page.wait_for_function("() => { const el = document.querySelector('.viewer-img.is-current'); return el.complete && el.naturalWidth > 0; }")
    shoot(page, f"viewer-{size}")
    page.goto(f"{base}/vlm/compare/?a={v1.pk}&b={v2.pk}")
    expect(page.locator("#disagreements")).to_be_visible()
    shoot(page, f"compare-{size}", full_page=True)
    page.goto(f"{base}/runs/")
    expect(page.locator("#runs")).to_be_visible()
    shoot(page, f"runs-{size}", full_page=True)
    for path in ("/", "/viewer/?sort=old", f"/vlm/compare/?a={v1.pk}&b={v2.pk}", "/runs/"):
        page.goto(base + path)
        assert fits_the_width(page), f"{path} is wider than the {size} screen"
    assert page.js_errors == []
    page.context.close()
