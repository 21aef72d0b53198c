"""In a real browser: save the gallery's filter as a view, open it, and export it; the export page's count
follows the filter field as it is edited."""
import re

import pytest
from playwright.sync_api import expect

from team.models import SavedView
from tests.browser.conftest import screenshot
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def images():
    return [stored_image(900 + i, auto_decision="keep" if i < 3 else "reject") for i in range(5)]


def test_save_a_view_from_the_gallery_and_export_it(logged_in_page, images):
    page = logged_in_page
    page.goto(f"{page.base_url}/")
    page.select_option("select[name=final]", "keep")
    expect(page).to_have_url(re.compile(r"final=keep"))
    expect(page.locator("#grid .card")).to_have_count(3)
    page.click("#save-view summary")
    page.fill("#save-view-name", "kept ones")
    page.check("#save-view-shared")
    screenshot(page, "team-gallery-save-view")
    page.click("#save-view-submit")
    expect(page).to_have_url(re.compile(r"/team/views/\d+/$"))
    view = SavedView.objects.get(name="kept ones")
    assert view.querystring == "final=keep" and view.shared
    expect(page.locator("#view-count")).to_have_text("3 images match now.")
    screenshot(page, "team-saved-view")

    page.click("#view-open")
    expect(page.locator("#grid .card")).to_have_count(3)
    page.click("#export-this-view")
    expect(page).to_have_url(re.compile(r"/export/\?filter=final%3Dkeep$"))
    expect(page.locator("#id_filter")).to_have_value("final=keep")
    expect(page.locator("#export-estimate")).to_have_text("3 images match.")
    # Edited, the count follows the filter; a bad filter says what is wrong.
    page.fill("#id_filter", "final=reject")
    expect(page.locator("#export-estimate")).to_have_text("2 images match.")
    page.fill("#id_filter", "final=maybe")
    expect(page.locator("#export-estimate")).to_contain_text("final: expected one of keep, reject, none")
    page.fill("#id_filter", "")
    expect(page.locator("#export-estimate")).to_have_text("5 images match.")
    screenshot(page, "team-export-this-view")

    page.goto(f"{page.base_url}/team/views/{view.pk}/")
    page.click("#view-export")
    expect(page.locator("#id_filter")).to_have_value("final=keep")
    assert page.js_errors == []
