import pytest
from django.contrib.auth.models import User

from team.models import Queue, SavedView


@pytest.fixture
def people():
    """A staff lead and three reviewers."""
    lead = User.objects.create_user("lead", password="pw-lead-1234", is_staff=True)
    return lead, *(User.objects.create_user(name, password=f"pw-{name}-1234") for name in ("ann", "bob", "cy"))


@pytest.fixture
def make_queue(people):
    def make(querystring="", *, reviewers=None, permille=0, pair=None, name="q"):
        lead = people[0]
        view = SavedView.objects.create(name=f"view {name}", querystring=querystring, owner=lead, shared=True)
        pair = pair or (None, None)
        queue = Queue.objects.create(name=name, view=view, overlap_permille=permille, created_by=lead,
                                     overlap_a=pair[0], overlap_b=pair[1])
        queue.reviewers.set(reviewers or people[1:])
        return queue
    return make


def decide_overlap(queue, a, b):
    """Both overlap reviewers claim the same sample and decide it differently in places: a rejects every
    other image, b every third. Returns (image ids, a's decisions, b's decisions)."""
    from curation import review
    from team import leases

    ids = leases.claim(queue, a)
    assert leases.claim(queue, b) == ids
    a_says = ["keep" if i % 2 else "reject" for i in range(len(ids))]
    b_says = ["keep" if i % 3 else "reject" for i in range(len(ids))]
    for pk, x, y in zip(ids, a_says, b_says, strict=True):
        review.set_decision([pk], x, a)
        review.set_decision([pk], y, b)
    return ids, a_says, b_says
