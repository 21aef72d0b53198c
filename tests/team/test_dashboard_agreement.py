"""The dashboard shows each overlap queue's Cohen's kappa, the figure the queue page computes."""
import pytest
from sklearn.metrics import cohen_kappa_score

from curation import review
from dashboard import refresh
from team import leases
from tests.factories import image_row

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_the_overlap_reviewers_kappa(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 100
    for n in range(12):
        image_row(n + 1)
    lead, ann, bob, _ = people
    queue = make_queue(permille=1000, pair=(ann, bob), name="kitchens")
    ids = leases.claim(queue, ann)
    assert leases.claim(queue, bob) == ids
    ann_says = ["keep" if i % 2 else "reject" for i in range(len(ids))]
    bob_says = ["keep" if i % 3 else "reject" for i in range(len(ids))]
    for pk, a, b in zip(ids, ann_says, bob_says, strict=True):
        review.set_decision([pk], a, ann)
        review.set_decision([pk], b, bob)
    refresh.refresh()
    client.force_login(lead)
    page = client.get("/dashboard/").content.decode()
    kappa = cohen_kappa_score(ann_says, bob_says)
    row = page[page.index('id="dash-agreement"'):]
    assert "kitchens" in row and "ann and bob" in row
    assert f"<td>{kappa:.3f}</td>" in row
    assert f"/team/queues/{queue.pk}/disagreements/" in row
