"""The result count never stays at "counting…": a filter it cannot count says why."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_a_bad_filter_says_why_instead_of_counting_for_ever(live_server, logged_in_page):
    page = logged_in_page
    page.goto(f"{live_server.url}/?indoor_min=abc")
    expect(page.locator("#count")).to_contain_text("no count: indoor_min: expected a number", timeout=5000)


def test_a_good_filter_is_counted(live_server, logged_in_page):
    page = logged_in_page
    page.goto(f"{live_server.url}/?final=keep")
    expect(page.locator("#count")).not_to_contain_text("counting", timeout=5000)
