"""filter_clip as the original filter_basic.py: its weights, prompts, margins, detector, flags and outputs."""
import csv
import importlib
import io
import json

import pytest
from django.core.management import CommandError, call_command

from curation import default_settings
from curation.clip import load_prompt_set, resolve_clip_spec
from curation.detector import ObjectCounter, detector_key, resolve_detector_spec
from curation.management.commands.filter_clip import Command as FilterClip
from curation.models import FilterScore, Image, Run
from tests.images import encode, photo_like

# filter_basic.py's PROMPTS, one sentence per label.
ORIGINAL_PROMPTS = {
    "indoor": "a photo of an indoor living space with natural lighting",
    "outdoor": "a photo of an outdoor landscape",
    "tidy": "a perfectly tidy minimalist interior with few objects",
    "messy": "a very messy cluttered interior with many objects scattered everywhere",
    "moderate": "a realistic indoor scene with a manageable amount of objects and some clutter",
}


def test_the_default_weights_are_openai_vit_b_32_with_quickgelu(monkeypatch):
    for name in ("SCENEIMG_CLIP_MODEL", "SCENEIMG_CLIP_PRETRAINED", "SCENEIMG_CLIP_PROMPTS"):
        monkeypatch.delenv(name, raising=False)
    defaults = importlib.reload(default_settings)
    assert (defaults.SCENEIMG_CLIP_MODEL, defaults.SCENEIMG_CLIP_PRETRAINED) == ("ViT-B-32", "openai")
    assert defaults.SCENEIMG_CLIP_PROMPTS == "v1"
    spec = resolve_clip_spec(defaults.SCENEIMG_CLIP_MODEL, defaults.SCENEIMG_CLIP_PRETRAINED)
    assert spec.quick_gelu and spec.tag_cfg["interpolation"] == "bicubic"


def test_prompt_set_v1_is_the_originals_and_v2_is_selectable():
    v1 = load_prompt_set("v1")
    assert {label: list(s) for label, s in v1.labels.items()} == {k: [v] for k, v in ORIGINAL_PROMPTS.items()}
    assert list(v1.labels) == list(ORIGINAL_PROMPTS)  # the original's column order in clip_filter_log.csv
    v2 = load_prompt_set("v2")
    assert v2.version == "v2" and set(v2.labels) == set(ORIGINAL_PROMPTS) and v2.labels != v1.labels


def test_the_originals_flags_and_margin_defaults():
    parser = FilterClip().create_parser("manage.py", "filter_clip")
    o = vars(parser.parse_args(["-i", "x", "-o", "out", "-l", "8", "-u", "30"]))
    assert (o["input"], o["output"], o["object_count_min"], o["object_count_max"]) == ("x", "out", 8, 30)
    assert o["indoor_margin"] == 0.02 and o["moderate_margin"] is None and o["detector_threshold"] == 0.5


@pytest.mark.django_db
def test_object_count_min_above_max_is_an_error():
    with pytest.raises(CommandError, match="--object-count-min cannot be greater than --object-count-max"):
        call_command("filter_clip", "-l", "9", "-u", "3")
    assert not Run.objects.exists()


def test_the_detector_is_faster_rcnn_r50_fpn_v2(settings):
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead

    settings.SCENEIMG_DETECTOR_WEIGHTS = "none"
    spec = resolve_detector_spec(min_size=160)
    assert detector_key(spec, 0.5).startswith("frcnn-r50fpn-v2:")
    model = ObjectCounter(spec, "cpu").model
    assert isinstance(model.roi_heads.box_head, FastRCNNConvFCHead)  # the v2 box head
    assert model.roi_heads.detections_per_img == 100  # torchvision's default, as the original ran it


@pytest.mark.django_db(transaction=True)
def test_input_as_a_folder_is_imported_then_scored_with_the_originals_outputs(tmp_path):
    folder = tmp_path / "raw" / "客厅-室内-生活-气息-真实"
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"room{n}.jpg").write_bytes(encode(photo_like(480, 360, 70 + n), "JPEG", quality=90))
    out = tmp_path / "auto"
    stdout = io.StringIO()
    call_command("filter_clip", "-i", str(tmp_path / "raw"), "-o", str(out), "--indoor-margin", "-2",
                 "--device", "cpu", stdout=stdout)
    assert "imported" in stdout.getvalue() and Image.objects.count() == 3
    assert FilterScore.objects.filter(passed=True).count() == 3
    assert sorted(p.name for p in out.glob("*.jpg")) == ["room0.jpg", "room1.jpg", "room2.jpg"]
    index = [json.loads(line) for line in (out / "_filtered_index.jsonl").read_text().splitlines()]
    assert [sorted(e) for e in index] == [["sha1", "source", "target", "timestamp"]] * 3
    assert sorted(e["target"] for e in index) == ["room0.jpg", "room1.jpg", "room2.jpg"]
    assert all(e["source"].endswith(e["target"]) and "/raw/" in e["source"] for e in index)
    with open(out / "clip_filter_log.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 3
    # A second run over the same folder scores it again and copies nothing new.
    call_command("filter_clip", "-i", str(tmp_path / "raw"), "-o", str(out), "--indoor-margin", "-2",
                 "--device", "cpu", stdout=io.StringIO())
    assert len((out / "_filtered_index.jsonl").read_text().splitlines()) == 3
    assert Run.objects.filter(kind="clip").count() == 2


@pytest.mark.django_db
def test_limit_counts_kept_images_not_scored_ones(tmp_path):
    from tests.factories import stored_image

    images = [stored_image(seed, width=320, height=240) for seed in range(5)]
    call_command("filter_clip", "--moderate-margin", "5", "--limit", "2", "--device", "cpu", stdout=io.StringIO())
    assert FilterScore.objects.count() == 5 and not FilterScore.objects.filter(passed=True).exists()
    FilterScore.objects.all().delete()
    call_command("filter_clip", "--indoor-margin", "-2", "--limit", "2", "--device", "cpu", stdout=io.StringIO())
    assert FilterScore.objects.filter(passed=True).count() == 2 == FilterScore.objects.count()
    assert set(FilterScore.objects.values_list("image_id", flat=True)) == {images[0].pk, images[1].pk}


@pytest.mark.django_db
def test_the_detector_counts_only_images_that_passed_clip(settings):
    from curation import runs
    from curation.scoring import DecisionRule, score_images
    from tests.factories import stored_image

    settings.SCENEIMG_DETECTOR_MIN_SIZE = 160
    images = [stored_image(seed, width=320, height=240) for seed in range(2)]
    score_images(runs.Tracker(), [im.pk for im in images], device="cpu",
                 rule=DecisionRule(indoor_margin=2.0, object_count_min=0))
    assert set(FilterScore.objects.values_list("object_count", flat=True)) == {None}
