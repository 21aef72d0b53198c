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


# --- several decisions to a request (the viewer's queue sends what piled up while one was out) ---------

def post_many(client, items):
    return client.post("/review/decisions/", {"items": json.dumps(items)}, HTTP_HX_REQUEST="true")


def test_decisions_sent_together_are_made_in_order_and_answered_one_by_one(client_in, user):
    a, b, c = image_row(1), image_row(2, auto_decision="keep"), image_row(3)
    items = [{"image": a.pk, "decision": "keep", "client_id": "m-1"},
             {"image": b.pk, "decision": "reject", "client_id": "m-2"},
             {"image": a.pk, "decision": "reject", "client_id": "m-3"}]
    response = post_many(client_in, items)
    assert response.status_code == 200
    rows = list(Review.objects.order_by("pk").values_list("pk", "image_id", "old", "new"))
    assert [r[1:] for r in rows] == [(a.pk, None, "keep"), (b.pk, None, "reject"), (a.pk, "keep", "reject")]
    assert response.json() == {"results": [{"image": a.pk, "reviews": [rows[0][0]]},
                                           {"image": b.pk, "reviews": [rows[1][0]]},
                                           {"image": a.pk, "reviews": [rows[2][0]]}]}
    # The same request again (its answer was lost): nothing is decided twice, the answer is the same.
    again = post_many(client_in, items)
    assert again.json() == response.json() and Review.objects.count() == 3
    assert Image.objects.get(pk=c.pk).human_decision is None


def test_one_refused_decision_leaves_the_others_made(client_in):
    a, b = image_row(1), image_row(2)
    response = post_many(client_in, [{"image": a.pk, "decision": "keep", "client_id": "r-1"},
                                     {"image": b.pk, "decision": "perhaps", "client_id": "r-2"},
                                     {"image": 999_999, "decision": "keep", "client_id": "r-3"},
                                     {"image": b.pk, "decision": "reject", "client_id": "r-1"}])
    results = response.json()["results"]
    assert response.status_code == 200 and "reviews" in results[0]
    assert results[1] == {"image": b.pk, "error": "decision: expected keep, reject or clear, got 'perhaps'"}
    assert results[2] == {"image": 999_999, "error": "image: no image #999999"}
    assert "client_id" in results[3]["error"]  # r-1 already names the decision on image a
    assert list(Review.objects.values_list("image_id", "new")) == [(a.pk, "keep")]


@pytest.mark.parametrize("items, said", [
    ("not json", "items: expected a JSON list of 1 to 50 decisions"),
    ("[]", "items: expected a JSON list of 1 to 50 decisions"),
    (json.dumps([{"image": 1, "decision": "keep", "client_id": str(i)} for i in range(51)]), "1 to 50 decisions"),
    (json.dumps([{"image": "1", "decision": "keep", "client_id": "x"}]), "an image id (a number) and a client_id"),
    (json.dumps([{"image": 1, "decision": "keep"}]), "an image id (a number) and a client_id"),
])
def test_malformed_decision_lists_are_a_400_naming_items(client_in, items, said):
    response = client_in.post("/review/decisions/", {"items": items})
    assert response.status_code == 400 and said in response.content.decode()
    assert Review.objects.count() == 0


def test_decisions_need_a_signed_in_post(client, client_in):
    assert client_in.get("/review/decisions/").status_code == 405
    client_in.logout()
    response = client.post("/review/decisions/", "items=%5B%5D", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_clear_in_a_batch_falls_back_to_the_automatic_decision(client_in):
    image = image_row(1, auto_decision="keep")
    response = post_many(client_in, [{"image": image.pk, "decision": "reject", "client_id": "c-1"},
                                     {"image": image.pk, "decision": "clear", "client_id": "c-2"},
                                     {"image": image.pk, "decision": "clear", "client_id": "c-3"}])
    assert [len(r["reviews"]) for r in response.json()["results"]] == [1, 1, 0]  # the last changes nothing
    assert list(Review.objects.order_by("pk").values_list("old", "new")) == [(None, "reject"), ("reject", None)]
    assert Image.objects.values_list("human_decision", "final_decision").get(pk=image.pk) == (None, "keep")
