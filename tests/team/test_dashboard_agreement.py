"""The dashboard shows each overlap queue's Cohen's kappa, the figure the queue page computes."""
import pytest
from sklearn.metrics import cohen_kappa_score

from dashboard import refresh
from tests.factories import image_row
from tests.team.conftest import decide_overlap

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_the_overlap_reviewers_kappa(client, settings, people, make_queue):
    settings.SCENEIMG_TEAM_BATCH = 100
    for n in range(12):
        image_row(n + 1)
    lead, ann, bob, _ = people
    queue = make_queue(permille=1000, pair=(ann, bob), name="kitchens")
    _, ann_says, bob_says = decide_overlap(queue, ann, bob)
    refresh.refresh()
    client.force_login(lead)
    page = client.get("/dashboard/").content.decode()
    kappa = cohen_kappa_score(ann_says, bob_says)
    row = page[page.index('id="dash-agreement"'):]
    assert "kitchens" in row and "ann and bob" in row
    assert f"<td>{kappa:.3f}</td>" in row
    assert f"/team/queues/{queue.pk}/disagreements/" in row
