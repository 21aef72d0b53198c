"""In a real browser: labels and a note from the detail page, reaching the gallery filter and the export;
a near-duplicate group settled with one key; the dashboard's numbers opening the gallery."""
import json
import re
import zipfile

import pytest
from playwright.sync_api import expect

from crawl.models import Source
from curation import export, neardup
from curation.models import FilterScore, Image, Review
from curation.runs import Tracker
from dashboard import refresh
from tests.browser.conftest import screenshot
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def group():
    """Three near-identical pictures of different sizes (dHash within 2 bits) from two queries."""
    made = []
    for n, (w, h) in enumerate([(320, 240), (800, 600), (480, 360)]):
        image = stored_image(700 + n, width=w, height=h, dhash=0b11 >> (2 - n), auto_decision="keep")
        Source.objects.create(image=image, provider="baidu", query=["卧室 杂乱", "messy bedroom"][n % 2],
                              outcome="stored")
        FilterScore.objects.create(image=image, scorer_key="clip:test", indoor_margin=0.1, passed=True)
        made.append(image)
    neardup.find_duplicates(threshold=4)
    return [Image.objects.get(pk=i.pk) for i in made]


def test_labels_and_a_note_from_the_detail_page_reach_the_gallery_and_the_export(
        logged_in_page, group, settings, tmp_path):
    page, base = logged_in_page, logged_in_page.base_url
    image = group[0]
    page.goto(f"{base}/images/{image.pk}/")
    page.keyboard.press("l")
    expect(page.locator(".label-add input[name=name]")).to_be_focused()
    page.keyboard.type("Unmade Bed, clothes on chair")
    page.keyboard.press("Enter")
    expect(page.locator(".chip-label")).to_have_count(2)
    page.locator(".chip-label", has_text="clothes on chair").get_by_role("button").click()
    expect(page.locator(".chip-label")).to_have_count(1)
    page.locator(".label-add input[name=name]").fill("x" * 80)
    page.locator(".label-add button").click()
    expect(page.locator(".labels [role=alert]")).to_contain_text("at most 64 characters")

    page.locator("body").click()
    page.keyboard.press("m")
    page.keyboard.type("sheets and a laptop: good clutter")
    page.keyboard.press("Enter")  # leaves the field; must not decide
    page.keyboard.press("r")
    expect(page.locator("#detail-reject")).to_have_class(re.compile("active"))  # a person decided it now
    expect(page.locator("#review-history")).to_contain_text("good clutter")
    assert Review.objects.get(image=image).note == "sheets and a laptop: good clutter"

    page.goto(f"{base}/?label=unmade+bed")
    expect(page.locator("#grid .card")).to_have_count(1)
    page.goto(f"{base}/?note=laptop")
    expect(page.locator(f"#card-{image.pk}")).to_be_visible()
    screenshot(page, "labels-note-filter")

    settings.SCENEIMG_EXPORT_DIR = str(tmp_path)
    export.export(Tracker(), "label=unmade bed", tmp_path / "set.zip", "zip")
    with zipfile.ZipFile(tmp_path / "set.zip") as zf:
        row = json.loads(zf.read("metadata.jsonl").decode().splitlines()[0])
    assert row["labels"] == ["unmade bed"] and row["notes"][0]["note"] == "sheets and a laptop: good clutter"


def test_a_group_is_compared_side_by_side_settled_with_one_key_and_undone(logged_in_page, group):
    page, base = logged_in_page, logged_in_page.base_url
    largest = group[1]
    page.goto(f"{base}/images/{group[0].pk}/")
    page.locator("#group-side-by-side").click()
    page.wait_for_url(f"{base}/groups/{largest.pk}/")
    members = page.locator(".group-member")
    expect(members).to_have_count(3)
    expect(members.first).to_contain_text("800 × 600 px")
    expect(members.first).to_contain_text("messy bedroom")
    screenshot(page, "group-side-by-side")

    page.keyboard.press("3")  # the third member (the smallest) becomes the representative
    page.wait_for_url(f"{base}/groups/{group[0].pk}/")
    expect(page.locator(".group-member").first).to_contain_text("chosen by a person")

    page.keyboard.press("b")
    expect(page.locator(".group-member.dec-reject")).to_have_count(2)
    expect(page.locator(".group-member.dec-keep")).to_have_count(1)
    finals = dict(Image.objects.values_list("id", "final_decision"))
    assert finals == {group[0].pk: "keep", group[1].pk: "reject", group[2].pk: "reject"}

    # The undo stack hears of the three decisions from the response's HX-Trigger, just after the swap.
    page.wait_for_function("() => (sessionStorage.getItem('sceneimg.undo') || '[]') !== '[]'")
    with page.expect_navigation(timeout=30_000):  # the page shows the group again once the undo is saved
        page.keyboard.press("u")  # the undo stack heard of all three decisions
    expect(page.locator(".group-member")).to_have_count(3)
    expect(page.locator(".group-member .tag-human")).to_have_count(0)
    assert not Image.objects.filter(human_decision__isnull=False).exists()


def test_the_dashboards_numbers_open_the_gallery_filtered_to_them(logged_in_page, group, browser_user):
    page, base = logged_in_page, logged_in_page.base_url
    Review.objects.create(image=group[0], user=browser_user, old="keep", new="reject")
    Image.objects.filter(pk=group[0].pk).update(human_decision="reject", final_decision="reject")
    refresh.refresh()
    page.goto(f"{base}/")
    page.get_by_role("link", name="Progress").click()
    page.wait_for_url(f"{base}/dashboard/")
    screenshot(page, "dashboard")
    link = page.locator("#dash-query a").first
    number = int(link.inner_text())
    link.click()
    expect(page.locator("#grid .card")).to_have_count(number)
    page.go_back()
    page.locator("#dash-reviewers a").first.click()
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator(f"#card-{group[0].pk}")).to_be_visible()
