"""Review: one card, a selection, everything matching (now or in the background), undo, CSRF."""
import json
from urllib.parse import urlencode

import django_rq
import pytest
from django.contrib.auth.models import User
from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret
from django.test import Client
from rq import SimpleWorker

from curation import review
from curation.models import Image, Review, Run
from curation.runs import Tracker
from sceneimg_site import queues
from tests.factories import stored_image

pytestmark = pytest.mark.django_db


def fresh(img):
    img.refresh_from_db()
    return img


def trigger(response, name="reviewed"):
    return json.loads(response["HX-Trigger"])[name]


# --- the service -----------------------------------------------------------------------------------

def test_set_decision_writes_one_review_per_change_and_keeps_final_consistent(user):
    a = stored_image(1, auto_decision="keep")
    b = stored_image(2, auto_decision="reject", human_decision="reject")
    written = review.set_decision([a.pk, b.pk], "reject", user, note="too tidy")
    assert [(r.image_id, r.old, r.new, r.note, r.user_id) for r in written] == [(a.pk, None, "reject", "too tidy", user.pk)]
    assert all(r.pk for r in written)
    assert (fresh(a).human_decision, a.final_decision) == ("reject", "reject")
    assert review.set_decision([a.pk], "reject", user) == []  # no change, no row
    cleared = review.set_decision([a.pk], "clear", user)
    assert [(r.old, r.new) for r in cleared] == [("reject", None)]
    assert (fresh(a).human_decision, a.final_decision) == (None, "keep")  # back to the automatic decision
    assert Review.objects.count() == 2


def test_bad_decision_is_refused(user):
    a = stored_image(1)
    with pytest.raises(review.ReviewError, match="decision"):
        review.set_decision([a.pk], "maybe", user)


def test_undo_restores_where_each_image_stood_and_is_recorded(user):
    a = stored_image(1, auto_decision="keep")
    b = stored_image(2, human_decision="keep")
    first = review.set_decision([a.pk, b.pk], "reject", user)
    second = review.set_decision([a.pk], "keep", user)
    undone, skipped = review.undo([r.pk for r in second], user)
    assert skipped == 0
    assert [(r.image_id, r.old, r.new) for r in undone] == [(a.pk, "keep", "reject")]
    assert undone[0].note == f"undo of review #{second[0].pk}"
    assert fresh(a).human_decision == "reject"
    undone, skipped = review.undo([r.pk for r in first], user)
    assert {(r.image_id, r.new) for r in undone} == {(a.pk, None), (b.pk, "keep")}
    assert (fresh(a).human_decision, a.final_decision) == (None, "keep")
    assert (fresh(b).human_decision, b.final_decision) == ("keep", "keep")
    assert Review.objects.filter(image=a).count() == 4


def test_undo_ignores_other_peoples_reviews(user):
    other = User.objects.create_user("olga")
    a = stored_image(1)
    theirs = review.set_decision([a.pk], "keep", other)
    assert review.undo([r.pk for r in theirs], user) == ([], 0)
    assert fresh(a).human_decision == "keep"


def test_undo_leaves_images_decided_again_since_alone(user):
    other = User.objects.create_user("olga")
    a = stored_image(1, auto_decision="keep")
    b = stored_image(2, auto_decision="keep")
    c = stored_image(3, auto_decision="keep")
    action = review.set_decision([a.pk, b.pk, c.pk], "reject", user)
    review.set_decision([a.pk], "keep", other)  # someone decided a again after the action
    review.set_decision([b.pk], "clear", user)  # and b was cleared by the user themself
    undone, skipped = review.undo([r.pk for r in action], user)
    assert [(r.image_id, r.old, r.new) for r in undone] == [(c.pk, "reject", None)]
    assert skipped == 1  # a; b is already where the undo would put it
    assert (fresh(a).human_decision, a.final_decision) == ("keep", "keep")
    assert fresh(b).human_decision is None and fresh(c).human_decision is None


def test_decide_matching_stage_visits_each_match_once(user, monkeypatch):
    monkeypatch.setattr(review, "CHUNK", 2)
    made = [stored_image(i, auto_decision="keep") for i in range(5)]
    stored_image(99, auto_decision="reject")
    tracker = Tracker()
    # The filter stops matching as images are decided: chunks must not skip any.
    review.decide_matching(tracker, "final=keep", "reject", user)
    assert tracker.counts == {"processed": 5, "changed": 5}
    assert all(fresh(m).final_decision == "reject" for m in made)


# --- views -------------------------------------------------------------------------------------------

def test_decide_one_card_swaps_the_card_and_reports_the_review(client_in, user):
    a = stored_image(1, auto_decision="keep")
    response = client_in.post(f"/images/{a.pk}/decide/", {"decision": "reject", "qs": "final=keep"},
                              HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith("<article") and f'id="card-{a.pk}"' in html and "dec-reject" in html
    assert "<html" not in html
    assert f'href="/images/{a.pk}/?final=keep"' in html
    row = Review.objects.get()
    assert (row.image_id, row.user_id, row.old, row.new) == (a.pk, user.pk, None, "reject")
    assert trigger(response) == {"count": 1, "reviews": [row.pk], "images": [a.pk], "run": None}


def test_decide_from_detail_returns_decision_panel_and_history(client_in):
    a = stored_image(1)
    response = client_in.post(f"/images/{a.pk}/decide/", {"decision": "keep", "view": "detail"},
                              HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'id="decision"' in html and 'id="review-history" hx-swap-oob="true"' in html
    assert "rita" in html


def test_decide_without_htmx_redirects_to_detail(client_in):
    a = stored_image(1)
    response = client_in.post(f"/images/{a.pk}/decide/", {"decision": "keep"})
    assert response.status_code == 302 and response["Location"] == f"/images/{a.pk}/"


def test_decide_rejects_bad_input_and_get(client_in):
    a = stored_image(1)
    assert client_in.post(f"/images/{a.pk}/decide/", {"decision": "perhaps"}).status_code == 400
    assert client_in.get(f"/images/{a.pk}/decide/").status_code == 405
    assert client_in.post("/images/999999/decide/", {"decision": "keep"}).status_code == 404
    assert Review.objects.count() == 0


def test_selection_decides_many_and_swaps_cards_out_of_band(client_in):
    made = [stored_image(i) for i in range(3)]
    ids = ",".join(str(m.pk) for m in made[:2])
    response = client_in.post("/review/", {"ids": ids, "decision": "reject"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    for m in made[:2]:
        assert f'id="card-{m.pk}"' in html and fresh(m).final_decision == "reject"
    assert html.count('hx-swap-oob="true"') == 3  # two cards and the flash message
    assert "2 of 2 selected images changed." in html
    assert fresh(made[2]).final_decision is None
    assert sorted(trigger(response)["images"]) == sorted(m.pk for m in made[:2])
    assert client_in.post("/review/", {"ids": "1,x", "decision": "keep"}).status_code == 400
    assert client_in.post("/review/", {"ids": "", "decision": "keep"}).status_code == 400


def test_undo_view_reverts_and_reports(client_in):
    a = stored_image(1, auto_decision="keep")
    response = client_in.post(f"/images/{a.pk}/decide/", {"decision": "reject"}, HTTP_HX_REQUEST="true")
    token = trigger(response)
    response = client_in.post("/review/undo/", {"reviews": ",".join(map(str, token["reviews"]))},
                              HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert fresh(a).final_decision == "keep" and a.human_decision is None
    assert "Undone: 1 image restored." in response.content.decode()
    assert trigger(response, "undone")["images"] == [a.pk]
    assert list(Review.objects.order_by("pk").values_list("old", "new")) == [(None, "reject"), ("reject", None)]
    assert client_in.post("/review/undo/", {"reviews": ""}).status_code == 400


def test_bulk_small_set_is_done_at_once(client_in):
    keep = [stored_image(i, auto_decision="keep") for i in range(3)]
    other = stored_image(10, auto_decision="reject")
    response = client_in.post("/review/bulk/", {"qs": "final=keep&after=5&sort=-vlm", "decision": "reject"},
                              HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "3 matching images changed." in response.content.decode()
    assert all(fresh(k).final_decision == "reject" for k in keep)
    assert fresh(other).human_decision is None
    assert "refresh-results" in json.loads(response["HX-Trigger"])
    assert client_in.post("/review/bulk/", {"qs": "final=soon", "decision": "keep"}).status_code == 400


def test_bulk_large_set_runs_in_the_background_and_can_be_undone(client_in, user, redis_conn, settings,
                                                                 django_capture_on_commit_callbacks):
    settings.SCENEIMG_REVIEW_SYNC_LIMIT = 2
    made = [stored_image(i, auto_decision="keep") for i in range(5)]
    already = stored_image(20, human_decision="reject")
    # django-rq enqueues when the transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client_in.post("/review/bulk/", {"qs": "", "decision": "reject", "note": "bad batch"},
                                  HTTP_HX_REQUEST="true")
    run = Run.objects.get(kind=Run.Kind.REVIEW)
    assert f"background run #{run.pk}" in response.content.decode()
    assert trigger(response)["run"] == run.pk
    assert run.status == Run.Status.QUEUED and run.created_by == user
    assert Review.objects.count() == 0
    queue = django_rq.get_queue(queues.DEFAULT)
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, run.error
    assert run.counters == {"processed": 6, "changed": 5}
    assert set(Image.objects.values_list("final_decision", flat=True)) == {"reject"}
    assert set(Review.objects.values_list("note", flat=True)) == {f"bulk run #{run.pk}: bad batch"}

    with django_capture_on_commit_callbacks(execute=True):
        response = client_in.post("/review/undo/", {"run": run.pk}, HTTP_HX_REQUEST="true")
    undo_run = Run.objects.exclude(pk=run.pk).get(kind=Run.Kind.REVIEW)
    assert f"undoing bulk run #{run.pk}" in response.content.decode()
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    undo_run.refresh_from_db()
    assert undo_run.status == Run.Status.DONE, undo_run.error
    assert all(fresh(m).final_decision == "keep" and m.human_decision is None for m in made)
    assert fresh(already).human_decision == "reject"
    # An undo run is not itself a bulk decision run to undo.
    assert client_in.post("/review/undo/", {"run": undo_run.pk}).status_code == 400


def test_undo_view_says_how_many_images_it_left_alone(client_in, user):
    a, b = stored_image(1, auto_decision="keep"), stored_image(2, auto_decision="keep")
    response = client_in.post("/review/", {"ids": f"{a.pk},{b.pk}", "decision": "reject"}, HTTP_HX_REQUEST="true")
    token = trigger(response)
    review.set_decision([a.pk], "keep", User.objects.create_user("olga"))
    response = client_in.post("/review/undo/", {"reviews": ",".join(map(str, token["reviews"]))},
                              HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "Undone: 1 image restored. 1 image was decided again since and kept that later decision." in html
    assert fresh(a).human_decision == "keep" and fresh(b).human_decision is None


def bulk_run(user, status=Run.Status.DONE):
    return Run.objects.create(kind=Run.Kind.REVIEW, status=status, created_by=user,
                              params={"querystring": "", "decision": "reject", "user_id": user.pk})


def test_bulk_run_undo_of_a_run_still_going_or_someone_elses_is_refused(client_in, user):
    for status in (Run.Status.QUEUED, Run.Status.RUNNING):
        response = client_in.post("/review/undo/", {"run": bulk_run(user, status).pk}, HTTP_HX_REQUEST="true")
        assert response.status_code == 400 and f"still {status}" in response.content.decode()
    theirs = bulk_run(User.objects.create_user("olga", is_staff=True))
    response = client_in.post("/review/undo/", {"run": theirs.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "started by someone else" in response.content.decode()
    assert Run.objects.filter(kind=Run.Kind.REVIEW, params__action="undo").count() == 0


def test_bulk_run_undo_of_a_finished_run_reports_out_of_band(client_in, user, redis_conn,
                                                             django_capture_on_commit_callbacks):
    for status in (Run.Status.DONE, Run.Status.FAILED, Run.Status.CANCELLED):
        run = bulk_run(user, status)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_in.post("/review/undo/", {"run": run.pk}, HTTP_HX_REQUEST="true")
        html = response.content.decode()
        assert response.status_code == 200, html
        # The client posts with swap "none": only an out-of-band flash is shown.
        assert 'id="flash" aria-live="polite" hx-swap-oob="true"' in html
        assert f"undoing bulk run #{run.pk}" in html


def test_bulk_run_undo_with_a_bad_run_id_is_a_400(client_in):
    for bad in ("abc", "²", "-1"):
        response = client_in.post("/review/undo/", {"run": bad}, HTTP_HX_REQUEST="true")
        assert response.status_code == 400 and "run: expected a run id" in response.content.decode()


def test_bulk_run_undo_leaves_images_decided_since_alone(user):
    run = bulk_run(user)
    a, b = stored_image(1, auto_decision="keep"), stored_image(2, auto_decision="keep")
    review.set_decision([a.pk, b.pk], "reject", user, note=review.bulk_note(run.pk))
    review.set_decision([a.pk], "keep", User.objects.create_user("olga"))
    tracker = Tracker()
    review.undo_run_reviews(tracker, run.pk, user)
    assert tracker.counts == {"processed": 2, "changed": 1, "decided_since": 1}
    assert fresh(a).human_decision == "keep" and fresh(b).human_decision is None


def test_large_selection_sends_ids_in_the_body_not_the_header(client_in, monkeypatch):
    from curation import views

    monkeypatch.setattr(views, "HEADER_IDS_MAX", 2)
    made = [stored_image(i) for i in range(3)]
    ids = [m.pk for m in made]
    response = client_in.post("/review/", {"ids": ",".join(map(str, ids)), "decision": "reject"},
                              HTTP_HX_REQUEST="true")
    detail = trigger(response)
    assert detail == {"count": 3, "run": None, "in_body": True}
    html = response.content.decode()
    reviews = sorted(Review.objects.values_list("pk", flat=True))
    assert (f'class="undo-ids" data-event="reviewed" data-reviews="{",".join(map(str, reviews))}" '
            f'data-images="{",".join(map(str, sorted(ids)))}"') in html
    small = client_in.post("/review/", {"ids": str(ids[0]), "decision": "keep"}, HTTP_HX_REQUEST="true")
    assert "undo-ids" not in small.content.decode() and trigger(small)["images"] == [ids[0]]


# --- CSRF and access ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/images/{pk}/decide/", "/review/", "/review/bulk/", "/review/undo/"])
def test_posts_need_login(client, url):
    a = stored_image(1)
    # Form-encoded, as htmx and the page's script send them (anonymous multipart bodies are refused earlier).
    response = client.post(url.format(pk=a.pk), urlencode({"decision": "keep", "ids": str(a.pk)}),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Review.objects.count() == 0


def test_csrf_token_required_and_accepted_from_the_htmx_header(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    a = stored_image(1)
    page = client.get("/")
    token = page.cookies["csrftoken"].value
    assert client.post(f"/images/{a.pk}/decide/", {"decision": "keep"}, HTTP_HX_REQUEST="true").status_code == 403
    forged = _mask_cipher_secret(_get_new_csrf_string())
    assert client.post(f"/images/{a.pk}/decide/", {"decision": "keep"},
                       HTTP_X_CSRFTOKEN=forged).status_code == 403
    assert Review.objects.count() == 0
    # What base.html puts in hx-headers is what htmx sends as X-CSRFToken.
    html = page.content.decode()
    header_token = html.split("hx-headers='")[1].split("'")[0]
    sent = json.loads(header_token)["x-csrftoken"]
    response = client.post(f"/images/{a.pk}/decide/", {"decision": "keep"}, HTTP_HX_REQUEST="true",
                           HTTP_X_CSRFTOKEN=sent)
    assert response.status_code == 200 and token
    assert Review.objects.count() == 1


# --- the browser's decision id ------------------------------------------------------------------------

def test_a_decision_sent_twice_with_one_client_id_is_made_once(client_in, user):
    a = stored_image(1, auto_decision="keep")
    post = {"decision": "reject", "qs": "sort=old", "client_id": "3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1c3e"}
    first = client_in.post(f"/images/{a.pk}/decide/", post, HTTP_HX_REQUEST="true")
    again = client_in.post(f"/images/{a.pk}/decide/", post, HTTP_HX_REQUEST="true")
    row = Review.objects.get()
    assert (row.image_id, row.new, row.client_id) == (a.pk, "reject", post["client_id"])
    assert again.status_code == 200
    assert again.content == first.content and f'id="card-{a.pk}"' in again.content.decode()
    assert trigger(again) == trigger(first) == {"count": 1, "reviews": [row.pk], "images": [a.pk], "run": None}
    # A newer decision, then the old id once more (a late retry): the newer decision stands.
    client_in.post(f"/images/{a.pk}/decide/", {"decision": "keep", "client_id": "second"}, HTTP_HX_REQUEST="true")
    late = client_in.post(f"/images/{a.pk}/decide/", post, HTTP_HX_REQUEST="true")
    assert late.status_code == 200 and trigger(late)["reviews"] == [row.pk]
    assert fresh(a).human_decision == "keep" and Review.objects.count() == 2


def test_a_client_id_names_one_decision_only(client_in, user):
    a, b = stored_image(1), stored_image(2)
    assert review.set_decision([a.pk], "keep", user, client_id="one")
    with pytest.raises(review.ReviewError, match="client_id"):
        review.set_decision([b.pk], "keep", user, client_id="one")  # another image
    with pytest.raises(review.ReviewError, match="client_id"):
        review.set_decision([a.pk], "reject", user, client_id="one")  # another decision
    with pytest.raises(review.ReviewError, match="client_id"):
        review.set_decision([a.pk, b.pk], "keep", user, client_id="two")  # one id, many images
    with pytest.raises(review.ReviewError, match="client_id"):
        review.set_decision([b.pk], "keep", user, client_id="x" * 65)
    other = User.objects.create_user("olga")
    with pytest.raises(review.ReviewError, match="client_id"):
        review.set_decision([a.pk], "keep", other, client_id="one")  # someone else's id
    bad = client_in.post(f"/images/{b.pk}/decide/", {"decision": "keep", "client_id": "one"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and "client_id" in bad.content.decode()
    assert Review.objects.count() == 1
