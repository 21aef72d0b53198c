"""The viewer's decisions: a bare 204 carrying only what the undo stack needs (HX-Trigger), made once per
client_id like the gallery's, and refused with a 400 or 404 that says what was wrong."""
import json

import pytest

from curation.models import Image, Review
from tests.factories import image_row

pytestmark = pytest.mark.django_db


def post(client, image_id, **values):
    values.setdefault("view", "viewer")
    return client.post(f"/images/{image_id}/decide/", values, HTTP_HX_REQUEST="true")


def test_a_viewer_decision_answers_204_with_the_review_in_the_trigger(client_in, user):
    image = image_row(1, auto_decision="keep")
    response = post(client_in, image.pk, decision="reject", client_id="c-1", qs="sort=old")
    assert response.status_code == 204 and response.content == b""
    row = Review.objects.get()
    assert (row.image_id, row.user_id, row.old, row.new) == (image.pk, user.pk, None, "reject")
    assert json.loads(response["HX-Trigger"])["reviewed"] == {
        "count": 1, "reviews": [row.pk], "images": [image.pk], "run": None}
    assert Image.objects.values_list("human_decision", "final_decision").get(pk=image.pk) == ("reject", "reject")


def test_a_viewer_retry_is_the_same_decision(client_in):
    image = image_row(1)
    first = post(client_in, image.pk, decision="keep", client_id="c-2")
    again = post(client_in, image.pk, decision="keep", client_id="c-2")
    assert again.status_code == 204 and again["HX-Trigger"] == first["HX-Trigger"]
    assert Review.objects.count() == 1
    clash = post(client_in, image.pk, decision="reject", client_id="c-2")
    assert clash.status_code == 400 and b"client_id" in clash.content


def test_a_viewer_decision_on_bad_input_says_what_was_wrong(client_in):
    image = image_row(1)
    bad = post(client_in, image.pk, decision="perhaps")
    assert bad.status_code == 400 and b"decision: expected keep, reject or clear" in bad.content
    assert post(client_in, 999_999, decision="keep").status_code == 404
    assert Review.objects.count() == 0
