"""A near-duplicate group side by side: keep the best in one step, choose another representative."""
import json

import numpy as np
import pytest

from crawl.models import Source
from curation import neardup
from curation.models import AutoStage, FilterScore, Image, Review
from tests.factories import image_row, spread_dhash

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def group():
    """Three near-identical pictures (dHash 1 bit apart) and one stranger; the largest represents the group."""
    small = image_row(1, width=320, height=240, dhash=0b000, auto_decision="keep")
    large = image_row(2, width=1024, height=768, dhash=0b001, auto_decision="keep")
    medium = image_row(3, width=640, height=480, dhash=0b011, auto_decision="keep")
    image_row(4, dhash=spread_dhash(4))
    for image in (small, large, medium):  # CLIP passed them: what an image released from the group goes back to
        FilterScore.objects.create(image=image, scorer_key="clip:test", indoor_margin=0.1, passed=True)
    Source.objects.create(image=medium, provider="baidu", query="凌乱的卧室", outcome="stored")
    neardup.find_duplicates(threshold=4)
    return {"small": small.pk, "large": large.pk, "medium": medium.pk}


def _groups():
    return dict(Image.objects.values_list("id", "dup_group_id"))


def test_the_page_shows_every_member_with_size_source_and_decision(client_in, group):
    page = client_in.get(f"/groups/{group['large']}/").content.decode()
    for pk in group.values():
        assert f'id="member-{pk}"' in page
    assert page.index(f"member-{group['large']}") < page.index(f"member-{group['medium']}") < \
        page.index(f"member-{group['small']}")  # the representative first, then by size
    assert "1024 × 768 px" in page and "640 × 480 px" in page
    assert "凌乱的卧室" in page
    # Any member's id leads to its group; an image without near-duplicates has none.
    assert client_in.get(f"/groups/{group['small']}/")["Location"] == f"/groups/{group['large']}/"
    stranger = Image.objects.get(dup_group__isnull=True).pk
    assert client_in.get(f"/groups/{stranger}/").status_code == 404


def test_keep_the_best_reject_the_rest_records_a_persons_decisions(client_in, group):
    response = client_in.post(f"/groups/{group['large']}/keep-best", **HTMX)
    assert response.status_code == 200
    trigger = json.loads(response["HX-Trigger"])["reviewed"]
    assert sorted(trigger["images"]) == sorted(group.values())  # the undo stack hears of all three
    decisions = dict(Image.objects.filter(pk__in=group.values()).values_list("id", "final_decision"))
    assert decisions == {group["large"]: "keep", group["medium"]: "reject", group["small"]: "reject"}
    assert set(Review.objects.values_list("user__username", flat=True)) == {"rita"}
    assert Review.objects.get(image_id=group["small"]).note == f"near-duplicate of #{group['large']}, which was kept"
    # Only the representative's id settles a group: an old link must not act on a changed group.
    assert client_in.post(f"/groups/{group['small']}/keep-best", **HTMX).status_code == 400


def test_choosing_another_representative_moves_the_rejection_and_survives_regrouping(client_in, group):
    large = Image.objects.get(pk=group["large"])
    assert large.auto_stage is None or large.auto_stage != AutoStage.NEAR_DUPLICATE
    response = client_in.post(f"/groups/{group['large']}/representative", {"image": group["small"]})
    assert response.status_code == 302 and response["Location"] == f"/groups/{group['small']}/"
    assert {pk: _groups()[pk] for pk in group.values()} == dict.fromkeys(group.values(), group["small"])
    small, large = Image.objects.get(pk=group["small"]), Image.objects.get(pk=group["large"])
    assert small.dup_pinned and small.auto_stage != AutoStage.NEAR_DUPLICATE and small.final_decision == "keep"
    assert large.auto_stage == AutoStage.NEAR_DUPLICATE and large.final_decision == "reject"
    neardup.find_duplicates(threshold=4)  # a full recomputation keeps the person's choice
    assert _groups()[group["large"]] == group["small"]


@pytest.mark.parametrize("value, message", [("abc", "expected the id"), ("999999", "not in the same")])
def test_a_bad_choice_is_refused_and_changes_nothing(client_in, group, value, message):
    before = _groups()
    response = client_in.post(f"/groups/{group['large']}/representative", {"image": value})
    assert response.status_code == 400 and message in response.content.decode()
    assert _groups() == before


def test_a_pinned_image_outranks_a_larger_one():
    labels, area, created, ids = (np.array(v) for v in ([0, 0, 0], [100, 400, 400], [5, 9, 7], [10, 11, 12]))
    assert neardup.representatives(labels, area, created, ids, np.array([True, False, False])).tolist() == [10] * 3
