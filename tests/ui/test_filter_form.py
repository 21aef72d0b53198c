"""Filters set by links (a snapshot diff, a duplicate group) survive a change in the filter sidebar."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name,value", [("group", "7"), ("ids", "1,2,3"), ("snapshot", "4")])
def test_link_filters_ride_along_in_the_sidebar_form(client_in, name, value):
    page = client_in.get(f"/?{name}={value}")
    assert f'<input type="hidden" name="{name}" value="{value}">'.encode() in page.content
