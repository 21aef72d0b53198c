"""Review queues: leases that keep two reviewers off the same image, decisions that end them, the overlap
sample both overlap reviewers see, and their agreement."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score

from curation import review
from team import agreement, leases
from team.models import QueueItem
from tests.factories import image_row
from tests.team.conftest import decide_overlap

pytestmark = pytest.mark.django_db


def rows(n, **fields):
    return [image_row(i, **fields) for i in range(n)]


def test_two_claims_never_share_an_image_and_follow_the_views_order(settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 4
    images = rows(10)
    queue = make_queue("sort=old")
    _, ann, bob, _ = people
    first, second = leases.claim(queue, ann), leases.claim(queue, bob)
    assert first == [im.pk for im in images[:4]]
    assert second == [im.pk for im in images[4:8]]
    # Claiming again keeps (and renews) what one holds instead of taking more.
    assert leases.claim(queue, ann) == first


def test_a_decision_ends_the_lease_and_the_item_is_not_handed_out_again(settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 2
    rows(3)
    queue = make_queue("sort=old")
    _, ann, bob, _ = people
    held = leases.claim(queue, ann)
    review.set_decision([held[0]], "keep", ann)
    item = QueueItem.objects.get(queue=queue, image_id=held[0])
    assert item.done and item.decision == "keep" and item.lease_until is None
    # Someone else's decision on an image Ann holds does not end Ann's lease.
    review.set_decision([held[1]], "reject", bob)
    assert not QueueItem.objects.get(queue=queue, image_id=held[1]).done
    assert leases.left(queue, ann) == (1, True)
    assert set(leases.claim(queue, ann)) == {held[1], held[1] + 1}


def test_an_expired_lease_goes_back_to_the_pool(settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 3
    rows(3)
    queue = make_queue("sort=old")
    _, ann, bob, _ = people
    held = leases.claim(queue, ann)
    assert leases.claim(queue, bob) == []
    QueueItem.objects.filter(queue=queue).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert leases.left(queue, bob) == (3, True)
    assert leases.claim(queue, bob) == held
    assert not leases.held(queue, ann).exists()


def test_left_is_a_limited_count(settings, people, make_queue):
    settings.SCENEIMG_TEAM_LEFT_LIMIT = 5
    rows(8)
    queue = make_queue()
    assert leases.left(queue, people[1]) == (5, False)


@pytest.mark.django_db(transaction=True)
def test_reviewers_claiming_at_the_same_moment_get_different_images(settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 5
    rows(40)
    queue = make_queue()
    reviewers = people[1:]
    barrier = threading.Barrier(len(reviewers))
    got, errors = {}, []

    def claim(user):
        try:
            barrier.wait(timeout=10)
            got[user.pk] = leases.claim(queue, user)
        except Exception as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(user,)) for user in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    taken = [pk for ids in got.values() for pk in ids]
    assert len(taken) == len(set(taken)), got
    assert sum(len(ids) for ids in got.values()) >= 5


def test_the_overlap_sample_goes_to_both_overlap_reviewers_and_no_one_else(settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 100
    images = rows(60)
    _, ann, bob, cy = people
    queue = make_queue(permille=300, pair=(ann, bob))
    expr, name = leases.in_sample(queue)
    sample = set(type(images[0]).objects.annotate(**{name: expr}).filter(**{f"{name}__lt": 300})
                 .values_list("pk", flat=True))
    assert 5 < len(sample) < 55
    got_cy = set(leases.claim(queue, cy))
    assert got_cy == {im.pk for im in images} - sample
    got_ann = set(leases.claim(queue, ann))
    got_bob = set(leases.claim(queue, bob))
    assert got_ann == got_bob == sample


def test_agreement_is_cohens_kappa_over_both_reviewers_decisions(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 100
    rows(40)
    _, ann, bob, _ = people
    queue = make_queue(permille=1000, pair=(ann, bob))
    assert agreement.agreement(queue) == agreement.Agreement(0, 0, None)
    ids, ann_says, bob_says = decide_overlap(queue, ann, bob)
    result = agreement.agreement(queue)
    assert result.both == len(ids)
    client.force_login(people[0])
    page = client.get(f"/team/queues/{queue.pk}/").content.decode()
    assert f'<b id="agreement-kappa">{result.kappa:.3f}</b>' in page
    assert f'<tr id="reviewer-{ann.pk}"><td>ann</td><td class="reviewer-decided">{len(ids)}</td>' in page
    assert result.agreed == sum(a == b for a, b in zip(ann_says, bob_says, strict=True))
    assert result.kappa == pytest.approx(cohen_kappa_score(ann_says, bob_says))
    listed = agreement.disagreements(queue)
    assert {row["image"].pk for row in listed} == {pk for pk, a, b in zip(ids, ann_says, bob_says, strict=True)
                                                   if a != b}
    assert not any(row["settled"] for row in listed)


def test_staff_settle_a_disagreement_through_the_review_path(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 10
    rows(2)
    lead, ann, bob, _ = people
    queue = make_queue(permille=1000, pair=(ann, bob))
    first = leases.claim(queue, ann)[0]
    leases.claim(queue, bob)
    review.set_decision([first], "keep", ann)
    review.set_decision([first], "reject", bob)
    client.force_login(ann)
    assert client.get(f"/team/queues/{queue.pk}/disagreements/").status_code == 302  # staff only
    client.force_login(lead)
    page = client.get(f"/team/queues/{queue.pk}/disagreements/").content.decode()
    assert f'id="disagreement-{first}"' in page
    response = client.post(f"/team/queues/{queue.pk}/settle/{first}/", {"decision": "keep"})
    assert response.status_code == 302
    settled = agreement.disagreements(queue)[0]
    assert settled["settled"] and settled["image"].human_decision == "keep"
    last = settled["image"].reviews.order_by("-pk").first()
    assert last.user == lead and "settled a disagreement" in last.note
    assert client.post(f"/team/queues/{queue.pk}/settle/{first}/", {"decision": "maybe"}).status_code == 400


def test_claim_opens_the_viewer_on_the_batch_in_the_views_order(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 3
    images = rows(5, vlm_score=0.5)
    _, ann, _, _ = people
    queue = make_queue("sort=-vlm&vlm_min=0.1")
    client.force_login(ann)
    response = client.post(f"/team/queues/{queue.pk}/claim/")
    ids = ",".join(str(im.pk) for im in sorted(images, key=lambda im: -im.pk)[:3])
    assert response.status_code == 302 and response["Location"] == f"/viewer/?ids={ids}&sort=-vlm"
    page = client.get("/team/queues/").content.decode()
    assert f'id="my-queue-{queue.pk}"' in page and '<td class="queue-held">3</td>' in page
    assert '<td class="queue-left">2</td>' in page


def test_only_assigned_reviewers_claim_and_only_staff_create_queues(client, people, make_queue):
    lead, ann, bob, cy = people
    queue = make_queue(reviewers=[ann])
    client.force_login(bob)
    assert client.post(f"/team/queues/{queue.pk}/claim/").status_code == 403
    assert client.get(f"/team/queues/{queue.pk}/").status_code == 403
    assert client.get("/team/queues/new/").status_code == 302
    client.force_login(lead)
    form = {"name": "second", "view": queue.view.pk, "reviewers": [ann.pk, bob.pk], "overlap_percent": "10",
            "overlap_a": ann.pk, "overlap_b": cy.pk}
    refused = client.post("/team/queues/new/", form)
    assert refused.status_code == 400 and b"both overlap reviewers must be among the reviewers" in refused.content
    created = client.post("/team/queues/new/", {**form, "overlap_b": bob.pk})
    assert created.status_code == 302
    second = queue.view.queues.get(name="second")
    assert second.overlap_permille == 100 and second.overlap_pair() == {ann.pk, bob.pk}


@pytest.mark.django_db(transaction=True)
def test_a_claim_walks_past_images_another_transaction_has_locked(settings, people, make_queue):
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite has no row locks: its claims are serialised write transactions instead")
    from django.db import transaction

    from curation.models import Image

    settings.SCENEIMG_TEAM_BATCH = 3
    images = rows(6)
    queue = make_queue("sort=old")
    locked, release = threading.Event(), threading.Event()

    def hold_first_three():
        try:
            with transaction.atomic():
                list(Image.objects.select_for_update().filter(pk__in=[im.pk for im in images[:3]]))
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_first_three)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        # Without SKIP LOCKED this claim would wait for the holder, then take the first three.
        assert leases.claim(queue, people[1]) == [im.pk for im in images[3:]]
    finally:
        release.set()
        holder.join(timeout=10)


def test_giving_back_a_batch_returns_it_to_the_pool_at_once(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 2
    rows(2)
    queue = make_queue("sort=old")
    _, ann, bob, _ = people
    held = leases.claim(queue, ann)
    client.force_login(ann)
    assert client.post(f"/team/queues/{queue.pk}/release/").status_code == 302
    assert not leases.held(queue, ann).exists()
    assert leases.claim(queue, bob) == held


def test_an_overlap_queue_opens_the_viewer_blind_to_what_people_decided(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 10
    rows(3)
    _, ann, bob, _ = people
    queue = make_queue(permille=1000, pair=(ann, bob))
    ids = leases.claim(queue, ann)
    review.set_decision([ids[0]], "reject", ann)
    client.force_login(bob)
    url = client.post(f"/team/queues/{queue.pk}/claim/")["Location"]
    assert "blind=1" in url
    items = client.get(url.replace("/viewer/", "/viewer/items/")).json()["items"]
    first = next(item for item in items if item["id"] == ids[0])
    assert first["decision"] == "none" and first["human"] == "none"
    assert "a person (reject)" not in first["panel"] and "not shown" in first["panel"]
    seen = client.get(url.replace("/viewer/", "/viewer/items/").replace("&blind=1", "")).json()["items"]
    assert "a person (reject)" in next(item for item in seen if item["id"] == ids[0])["panel"]
