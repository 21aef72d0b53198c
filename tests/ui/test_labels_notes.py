"""People's labels and review notes: added and removed from the detail page, filtered on, exported."""
import json
import zipfile

import pytest
from django.test import Client

from curation import export, gallery
from curation.models import Review
from curation.runs import Tracker
from labels.models import Label
from tests.factories import image_row, stored_image

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _gallery_ids(qs):
    return set(gallery.filter_images(qs, ordered=False).values_list("id", flat=True))


def test_labels_are_added_normalised_once_and_removed(client_in, user):
    image = image_row(1)
    response = client_in.post(f"/labels/{image.pk}/add", {"name": "  Cluttered  Desk, cables,cables"}, **HTMX)
    assert response.status_code == 200
    assert b"cluttered desk" in response.content and b"cables" in response.content
    client_in.post(f"/labels/{image.pk}/add", {"name": "CABLES"}, **HTMX)
    labels = list(Label.objects.filter(image=image).values_list("name", "user__username"))
    assert sorted(labels) == [("cables", "rita"), ("cluttered desk", "rita")]

    response = client_in.post(f"/labels/{image.pk}/remove", {"name": "cables"}, **HTMX)
    assert response.status_code == 200 and b"cables" not in response.content
    assert list(Label.objects.filter(image=image).values_list("name", flat=True)) == ["cluttered desk"]


@pytest.mark.parametrize("name, message", [
    ("", "at least one name"),
    ("x" * 65, "at most 64 characters"),
    ("ok, bad\x07bell", "control characters"),
])
def test_a_bad_label_is_refused_with_the_reason_and_nothing_is_stored(client_in, name, message):
    image = image_row(1)
    client_in.post(f"/labels/{image.pk}/add", {"name": "kept"}, **HTMX)
    response = client_in.post(f"/labels/{image.pk}/add", {"name": name}, **HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert list(Label.objects.filter(image=image).values_list("name", flat=True)) == ["kept"]


def test_labels_need_a_signed_in_user_and_an_existing_image(client_in):
    image = image_row(1)
    assert Client().post(f"/labels/{image.pk}/add", {"name": "x"}).status_code in (302, 403)
    assert client_in.post("/labels/999999/add", {"name": "x"}).status_code == 404
    assert not Label.objects.exists()


def test_the_detail_page_shows_labels_and_the_note_field(client_in, user):
    image = image_row(1)
    Label.objects.create(image=image, name="pile of laundry", user=user)
    page = client_in.get(f"/images/{image.pk}/").content.decode()
    assert "pile of laundry" in page
    assert 'id="decision-note"' in page


def test_a_note_sent_with_a_decision_is_kept_shown_and_filterable(client_in):
    noted, other = image_row(1), image_row(2)
    response = client_in.post(f"/images/{noted.pk}/decide/",
                              {"decision": "reject", "note": "mostly a poster", "view": "detail"}, **HTMX)
    assert response.status_code == 200
    client_in.post(f"/images/{other.pk}/decide/", {"decision": "keep"}, **HTMX)
    assert Review.objects.get(image=noted).note == "mostly a poster"
    assert "mostly a poster" in client_in.get(f"/images/{noted.pk}/").content.decode()
    assert _gallery_ids("note=POSTER") == {noted.pk}


def test_the_label_filter_matches_every_label_given(user):
    a, b, c = image_row(1), image_row(2), image_row(3)
    for image, names in ((a, ["desk", "cables"]), (b, ["desk"]), (c, ["cables"])):
        Label.objects.bulk_create([Label(image=image, name=n, user=user) for n in names])
    assert _gallery_ids("label=Desk") == {a.pk, b.pk}
    assert _gallery_ids("label=desk&label=cables") == {a.pk}
    assert _gallery_ids("label=nothing") == set()
    with pytest.raises(gallery.FilterError, match="label"):
        _gallery_ids("label=" + "y" * 80)


def test_labels_and_notes_reach_the_exported_metadata(settings, tmp_path, client_in, user):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path)
    image = stored_image(1, auto_decision="keep")
    Label.objects.create(image=image, name="kitchen counter", user=user)
    client_in.post(f"/images/{image.pk}/decide/", {"decision": "keep", "note": "good clutter"}, **HTMX)
    out = tmp_path / "set.zip"
    export.export(Tracker(), "label=kitchen counter", out, "zip")
    with zipfile.ZipFile(out) as zf:
        rows = [json.loads(line) for line in zf.read("metadata.jsonl").decode().splitlines()]
        table = zf.read("sceneimg.csv").decode()
    assert [r["image_id"] for r in rows] == [image.pk]
    assert rows[0]["labels"] == ["kitchen counter"]
    assert [(n["note"], n["by"], n["decision"]) for n in rows[0]["notes"]] == [("good clutter", "rita", "keep")]
    assert "kitchen counter" in table and "good clutter" in table
