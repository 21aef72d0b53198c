"""Faster R-CNN object counting (random weights): run only when a count bound is asked for."""
import pytest
import torch
from django.core.management import CommandError, call_command

from curation import runs
from curation.clip import ModelWeightsMissing
from curation.detector import check_detector_weights, get_object_counter, resolve_detector_spec
from curation.models import FilterScore, Image
from curation.scoring import DecisionRule, score_images
from tests.factories import stored_image

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_detector(settings):
    settings.SCENEIMG_DETECTOR_MIN_SIZE = 160  # same network, less work on 2 CPU cores


def test_detector_weights_follow_the_clip_setting_unless_set(settings):
    assert resolve_detector_spec().weights == "none"
    settings.SCENEIMG_CLIP_PRETRAINED = "laion2b_s34b_b79k"
    assert resolve_detector_spec().weights == "coco_v1"
    settings.SCENEIMG_DETECTOR_WEIGHTS = "none"
    assert resolve_detector_spec().weights == "none"


def test_counts_are_per_image_and_fall_as_the_threshold_rises():
    counter = get_object_counter("cpu")
    assert counter.uncalibrated
    images = [torch.rand(3, 160, 200), torch.rand(3, 240, 160)]
    low, high = counter.count(images, threshold=0.0), counter.count(images, threshold=0.9)
    assert len(low) == len(high) == 2
    assert all(0 <= h <= lo <= 300 for lo, h in zip(low, high, strict=True))


def test_count_bounds_run_the_detector_and_decide():
    images = [stored_image(seed, width=320, height=240) for seed in range(3)]
    ids = [im.pk for im in images]
    tracker = runs.Tracker()
    score_images(tracker, ids, rule=DecisionRule(indoor_margin=-2, object_count_min=0), device="cpu", batch_size=2)
    assert tracker.counts == {"kept": 3}
    key = "clip:ViT-B-32:none:prompts-v1|frcnn-r50fpn-v2:none:s160:t0.5"
    assert set(FilterScore.objects.values_list("scorer_key", flat=True)) == {key}
    counts = dict(FilterScore.objects.values_list("image_id", "object_count"))
    assert all(c is not None and c >= 0 for c in counts.values())
    assert dict(Image.objects.values_list("id", "object_count")) == counts

    tracker = runs.Tracker()
    score_images(tracker, ids, rule=DecisionRule(indoor_margin=-2, object_count_max=-1), device="cpu")
    assert tracker.counts == {"rejected": 3}
    assert all("objects > -1" in r for r in Image.objects.values_list("auto_reason", flat=True))


def test_without_count_bounds_the_detector_does_not_run():
    im = stored_image(1, width=320, height=240)
    score_images(runs.Tracker(), [im.pk], rule=DecisionRule(indoor_margin=-2), device="cpu")
    fs = FilterScore.objects.get()
    assert "frcnn" not in fs.scorer_key and fs.object_count is None


def test_missing_detector_weights_fail_at_once(settings, tmp_path):
    settings.SCENEIMG_DETECTOR_WEIGHTS = "coco_v1"
    settings.SCENEIMG_MODEL_DIR = str(tmp_path / "models")
    with pytest.raises(ModelWeightsMissing) as exc:
        check_detector_weights()
    assert "SCENEIMG_DETECTOR_WEIGHTS" in str(exc.value) and "fetch_models" in str(exc.value)
    stored_image(1, width=320, height=240)
    with pytest.raises(CommandError, match="SCENEIMG_DETECTOR_WEIGHTS"):
        call_command("filter_clip", "--object-count-min", "3")
