"""Cancelling a run from its own page stays on that page and shows the cancelled status."""
import re

import pytest
from playwright.sync_api import expect

from curation.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queued_run(browser_user, redis_conn):
    return Run.objects.create(kind="export", status="queued", created_by=browser_user,
                              params={"filter": "final=keep"})


def test_cancel_from_the_run_page_stays_there(logged_in_page, queued_run):
    page = logged_in_page
    url = f"{page.base_url}/runs/{queued_run.pk}/"
    page.goto(url)
    expect(page.locator("#run-status")).to_have_text("queued")
    # Let the status card poll once: the card it brings back must still cancel from this page.
    with page.expect_response(re.compile(rf"/runs/{queued_run.pk}/row/\?view=card")):
        pass
    expect(page.locator(f"#run-card-{queued_run.pk} input[name=next]")).to_have_value(f"/runs/{queued_run.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("text=Cancel run")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page).to_have_url(url)
    expect(page.locator(".topbar")).to_be_visible()  # the whole page, not a bare fragment
    expect(page.locator("text=Cancel run")).to_have_count(0)
    queued_run.refresh_from_db()
    assert queued_run.status == "cancelled"
    assert page.js_errors == []


def test_cancel_without_javascript_returns_to_the_run_page(live_server, chromium, browser_user, queued_run):
    from tests.browser.conftest import log_in

    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, live_server.url, browser_user.username)
        url = f"{live_server.url}/runs/{queued_run.pk}/"
        page.goto(url)
        page.click("text=Cancel run")
        expect(page).to_have_url(url)
        expect(page.locator("#run-status")).to_have_text("cancelled")
        expect(page.locator(".flash")).to_contain_text(f"Run #{queued_run.pk} cancelled")
    finally:
        context.close()
