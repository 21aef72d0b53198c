"""Saved views: the gallery's filter, checked by the gallery's parsing, saved under a name, shared or not."""
import pytest
from django.contrib.auth.models import User

from team import saved
from team.models import SavedView
from tests.factories import image_row

pytestmark = pytest.mark.django_db


def test_normalise_orders_keys_drops_page_state_and_empty_values():
    assert saved.normalise("?sort=-vlm&final=keep&after=12&human=&at=3") == "final=keep&sort=-vlm"
    assert saved.normalise("") == ""


@pytest.mark.parametrize("querystring, named", [
    ("final=keep&colour=red", "colour: not a gallery filter"),
    ("final=maybe", "final: expected one of keep, reject, none"),
    ("sort=sideways", "sort: expected one of"),
    ("vlm_min=lots", "vlm_min: expected a number"),
])
def test_unknown_keys_and_bad_values_are_refused_naming_them(querystring, named):
    with pytest.raises(saved.ViewError, match=named):
        saved.normalise(querystring)


def test_save_from_the_gallery_then_open_it(client, people):
    lead = people[0]
    client.force_login(lead)
    response = client.post("/team/views/", {"name": "keepers", "qs": "sort=old&final=keep&after=9", "shared": "1"})
    view = SavedView.objects.get(owner=lead, name="keepers")
    assert response.status_code == 302 and response["Location"] == f"/team/views/{view.pk}/"
    assert view.querystring == "final=keep&sort=old" and view.shared
    page = client.get(f"/team/views/{view.pk}/").content.decode()
    assert 'href="/?final=keep&amp;sort=old"' in page
    assert 'href="/export/?filter=final%3Dkeep%26sort%3Dold"' in page


def test_saving_again_under_the_same_name_replaces_the_filter(client, people):
    client.force_login(people[1])
    client.post("/team/views/", {"name": "mine", "qs": "final=keep"})
    client.post("/team/views/", {"name": "mine", "qs": "final=reject"})
    assert list(SavedView.objects.filter(owner=people[1]).values_list("querystring", flat=True)) == ["final=reject"]


@pytest.mark.parametrize("form, named", [
    ({"name": "x", "qs": "final=keep&colour=red"}, b"colour: not a gallery filter"),
    ({"name": "", "qs": "final=keep"}, b"name: give the view a name"),
])
def test_a_bad_view_is_a_400_naming_what_was_wrong(client, people, form, named):
    client.force_login(people[1])
    response = client.post("/team/views/", form)
    assert response.status_code == 400 and named in response.content
    assert not SavedView.objects.exists()


def test_private_views_are_their_owners_shared_views_everyones(client, people):
    lead, ann = people[0], people[1]
    private = SavedView.objects.create(name="secret", querystring="final=keep", owner=lead)
    shared = SavedView.objects.create(name="team", querystring="final=reject", owner=lead, shared=True)
    client.force_login(ann)
    listing = client.get("/team/views/").content.decode()
    assert "team" in listing and "secret" not in listing
    assert client.get(f"/team/views/{private.pk}/").status_code == 404
    assert client.get(f"/team/views/{shared.pk}/").status_code == 200
    assert client.post(f"/team/views/{shared.pk}/delete/").status_code == 403
    client.force_login(lead)
    assert client.post(f"/team/views/{shared.pk}/delete/").status_code == 302
    assert not SavedView.objects.filter(pk=shared.pk).exists()


def test_the_gallery_toolbar_saves_and_exports_the_filter_as_it_is_now(client, people):
    client.force_login(people[1])
    image_row(1, auto_decision="keep")
    page = client.get("/?final=keep", headers={"HX-Request": "true", "HX-Target": "results"}).content.decode()
    assert 'id="save-view"' in page and '<input type="hidden" name="qs" value="final=keep">' in page
    assert 'href="/export/?filter=final%3Dkeep"' in page


def test_the_export_count_follows_the_filter_and_names_a_bad_one(client, people):
    client.force_login(people[1])
    for n in range(3):
        image_row(n, auto_decision="keep")
    image_row(9, auto_decision="reject")
    assert client.get("/export/count/", {"filter": "final=keep"}).content.decode().strip() == "3 images match."
    assert client.get("/export/count/", {"filter": "?final=reject"}).content.decode().strip() == "1 image match."
    bad = client.get("/export/count/", {"filter": "final=maybe"})
    assert bad.status_code == 400 and b"final: expected one of" in bad.content
    unknown = client.get("/export/count/", {"filter": "final=keep&colour=red"})
    assert unknown.status_code == 400 and b"unknown filter key 'colour'" in unknown.content


def test_team_pages_need_a_sign_in(client):
    for url in ("/team/views/", "/team/queues/", "/team/queues/new/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_staff_find_views_and_queues_in_the_admin(client, make_queue):
    queue = make_queue("final=keep", name="admin-queue")
    admin = User.objects.create_superuser("root", password="pw-root-1234")
    client.force_login(admin)
    assert b"view admin-queue" in client.get("/admin/team/savedview/").content
    assert client.get(f"/admin/team/queue/{queue.pk}/change/").status_code == 200
