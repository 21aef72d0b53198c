"""In a real browser: a staff lead hands a saved view to two reviewers with an overlap sample; each reviews
their batch in the viewer; the queue shows their agreement (Cohen's kappa) and the disagreements to settle.
And two reviewers opening their queue at the same moment never hold the same image."""
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from team.models import Queue, QueueItem, SavedView
from tests.browser.conftest import PASSWORD, log_in, screenshot
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def team():
    lead = User.objects.create_user("lead", password=PASSWORD, is_staff=True)
    ann = User.objects.create_user("ann", password=PASSWORD)
    bob = User.objects.create_user("bob", password=PASSWORD)
    return lead, ann, bob


def signed_in(chromium, live_server, user):
    context = chromium.new_context(viewport={"width": 1300, "height": 850})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    log_in(page, live_server.url, user.username)
    page.base_url = live_server.url
    return page


def wait_done(user, count, seconds=15):
    deadline = time.monotonic() + seconds
    while QueueItem.objects.filter(reviewer=user, done=True).count() < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return QueueItem.objects.filter(reviewer=user, done=True).count()


def review_batch(page, queue, keys):
    page.goto(f"{page.base_url}/team/queues/")
    page.click(f"#my-queue-{queue.pk} .queue-review")
    expect(page).to_have_url(re.compile(r"/viewer/\?ids="))
    for key in keys:
        page.wait_for_function("() => window.SceneImgViewer && window.SceneImgViewer.state().id")
        current = page.evaluate("window.SceneImgViewer.state().id")
        page.keyboard.press(key)
        page.wait_for_function("id => window.SceneImgViewer.state().id !== id", arg=current)


def test_two_reviewers_with_overlap_and_their_kappa(chromium, live_server, team, settings):
    settings.SCENEIMG_TEAM_BATCH = 10
    lead, ann, bob = team
    images = [stored_image(950 + i) for i in range(4)]
    view = SavedView.objects.create(name="all, oldest first", querystring="sort=old", owner=lead, shared=True)

    boss = signed_in(chromium, live_server, lead)
    boss.goto(f"{boss.base_url}/team/views/{view.pk}/")
    boss.click("#view-queue")
    boss.fill("#id_name", "pair")
    boss.check(f"#id_reviewers input[value='{ann.pk}']")
    boss.check(f"#id_reviewers input[value='{bob.pk}']")
    boss.fill("#id_overlap_percent", "100")
    boss.select_option("#id_overlap_a", str(ann.pk))
    boss.select_option("#id_overlap_b", str(bob.pk))
    boss.click("#queue-form button[type=submit]")
    expect(boss).to_have_url(re.compile(r"/team/queues/\d+/$"))
    queue = Queue.objects.get(name="pair")
    expect(boss.locator("#agreement-kappa")).to_have_text("not defined yet")

    # Every image is in the overlap sample: both see all four, in the view's order.
    ann_page = signed_in(chromium, live_server, ann)
    review_batch(ann_page, queue, ["k", "k", "r", "r"])
    assert wait_done(ann, 4) == 4
    bob_page = signed_in(chromium, live_server, bob)
    review_batch(bob_page, queue, ["k", "k", "r", "k"])
    assert wait_done(bob, 4) == 4
    assert list(QueueItem.objects.filter(reviewer=bob).order_by("image_id").values_list("decision", flat=True)) == [
        "keep", "keep", "reject", "keep"]

    # Agreement 3 of 4; ann keeps half, bob three quarters: chance 0.5, so kappa (0.75 - 0.5) / 0.5.
    boss.reload()
    expect(boss.locator("#agreement-both")).to_have_text("4")
    expect(boss.locator("#agreement-kappa")).to_have_text("0.500")
    screenshot(boss, "team-queue-kappa")
    boss.click("#disagreements-link")
    row = boss.locator(f"#disagreement-{images[3].pk}")
    expect(boss.locator("#disagreements tbody tr")).to_have_count(1)
    expect(row).to_contain_text("reject")
    row.locator("button[value=reject]").click()
    expect(boss.locator(f"#disagreement-{images[3].pk} .disagreement-state")).to_have_text("reject (settled)")
    screenshot(boss, "team-disagreements")
    images[3].refresh_from_db()
    assert images[3].human_decision == "reject"
    for page in (boss, ann_page, bob_page):
        assert page.js_errors == []
        page.context.close()


def test_two_reviewers_opening_their_queue_at_once_never_hold_the_same_image(chromium, live_server, team,
                                                                            settings):
    settings.SCENEIMG_TEAM_BATCH = 3
    lead, ann, bob = team
    images = [stored_image(970 + i) for i in range(8)]
    view = SavedView.objects.create(name="everything", querystring="sort=old", owner=lead)
    queue = Queue.objects.create(name="split", view=view, created_by=lead)
    queue.reviewers.set([ann, bob])
    pages = [signed_in(chromium, live_server, user) for user in (ann, bob)]
    for page in pages:
        page.goto(f"{page.base_url}/team/queues/")
    for page in pages:  # both clicks go out before either answer comes back
        page.click(f"#my-queue-{queue.pk} .queue-review", no_wait_after=True)
    held = []
    for page in pages:
        expect(page).to_have_url(re.compile(r"/viewer/\?ids="))
        ids = [int(i) for i in parse_qs(urlparse(page.url).query)["ids"][0].split(",")]
        page.wait_for_function("id => window.SceneImgViewer && window.SceneImgViewer.state().id === id", arg=ids[0])
        held.append(ids)
    assert len(held[0]) == len(held[1]) == 3
    assert not set(held[0]) & set(held[1])
    assert set(held[0]) | set(held[1]) <= {im.pk for im in images}
    # What is left counts neither reviewer's batch.
    pages[0].goto(f"{pages[0].base_url}/team/queues/")
    expect(pages[0].locator(f"#my-queue-{queue.pk} .queue-left")).to_have_text("2")
    screenshot(pages[0], "team-my-queue")
    for page in pages:
        assert page.js_errors == []
        page.context.close()
