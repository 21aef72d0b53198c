"""Calibration: precision/recall against people's decisions and the suggested threshold."""
import re

import pytest
from django.contrib.auth.models import Permission

from curation import calibration
from curation.models import Run
from tests.factories import image_row

# Scores 0.0 .. 0.9; people kept the images scored 0.2, 0.4, 0.5, 0.7, 0.8 and 0.9. "Keep when score >= t":
#   t     0.9  0.8  0.7  0.6   0.5  0.4   0.3   0.2
#   prec  1    1    1    3/4   4/5  5/6   5/7   6/8
#   rec   1/6  2/6  3/6  3/6   4/6  5/6   5/6   6/6
SCORES = [i / 10 for i in range(10)]
KEEPS = [i in (2, 4, 5, 7, 8, 9) for i in range(10)]


@pytest.mark.parametrize("target, threshold, precision, recall", [
    (0.8, 0.4, 5 / 6, 5 / 6),  # 0.4 is the lowest threshold at 0.8 or better, so it has the most recall
    (0.9, 0.7, 1.0, 0.5),  # 0.8 and 0.9 are as precise but recall less
    (0.7, 0.2, 0.75, 1.0),  # every keep, at 6/8
])
def test_suggested_threshold_on_a_constructed_score_set(target, threshold, precision, recall):
    result = calibration.calibrate(SCORES, KEEPS, target)
    assert result.threshold == pytest.approx(threshold)
    assert (result.precision, result.recall) == (pytest.approx(precision), pytest.approx(recall))
    assert (result.decided, result.keeps) == (10, 6)
    # The curve: thresholds rise, recall never does.
    thresholds = [t for t, _, _ in result.points]
    assert thresholds == sorted(thresholds)
    recalls = [r for _, _, r in result.points]
    assert recalls == sorted(recalls, reverse=True)


def test_no_suggestion_when_no_threshold_is_precise_enough_or_one_class_is_missing():
    assert calibration.calibrate([0.9, 0.8, 0.1], [False, True, True], 0.99).threshold is None
    assert calibration.calibrate([0.9, 0.8], [True, True], 0.9).empty


def test_vlm_min_score_counts_a_reject_as_never_keep():
    verdicts = [("keep", 0.9, "keep"), ("keep", 0.7, "keep"), ("keep", 0.6, "reject"), ("reject", 0.95, "reject"),
                ("reject", 0.99, "keep"), ("keep", None, "reject")]
    result = calibration.vlm_min_score(verdicts, target=0.9)
    # At 0.7: two keeps, both right; the reject at 0.99 never counts as a keep, so recall is 2 of 3.
    assert result.threshold == pytest.approx(0.7)
    assert (result.precision, result.recall) == (1.0, pytest.approx(2 / 3))
    assert all(t >= 0 for t, _, _ in result.points)


@pytest.mark.django_db
def test_compare_page_shows_the_clip_suggestion_and_applies_it_as_a_rescore_run(client, django_user_model, redis_conn,
                                                                                 settings):
    settings.SCENEIMG_CALIBRATION_PRECISION = 0.8
    for n, (score, keep) in enumerate(zip(SCORES, KEEPS, strict=True)):
        image_row(n + 1, clip_indoor_margin=score, human_decision="keep" if keep else "reject")
    image_row(99, clip_indoor_margin=0.95)  # undecided: not counted
    staff = django_user_model.objects.create_user("lead", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="add_run"))
    client.force_login(staff)
    html = client.get("/vlm/compare/").content.decode()
    assert 'id="calibration-clip"' in html
    assert re.search(r'class="suggested">0\.4000<', html)
    form = re.search(r'<form method="post" action="([^"]+)" id="apply-clip-margin">(.*?)</form>', html, re.S)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    response = client.post(form.group(1), fields)
    assert response.status_code == 302
    run = Run.objects.get(kind="clip")
    assert run.params["rescore"] is True and run.params["indoor_margin"] == pytest.approx(0.4)
