"""A real open_clip ViT-B-32 (random weights, SCENEIMG_CLIP_PRETRAINED=none) scoring stored images."""
import csv

import numpy as np
import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from crawl.models import Source
from curation import runs
from curation.clip import ModelWeightsMissing, check_clip_weights, get_clip_scorer
from curation.models import AutoStage, FilterScore, Image, Run
from curation.scoring import DecisionRule, decode_batch_cpu, decode_batch_tensor, score_images
from tests.factories import stored_image

pytestmark = pytest.mark.django_db

KEY = "clip:ViT-B-32:none:prompts-v1"
ALL_PASS = DecisionRule(indoor_margin=-2.0)  # cosine margins lie in [-2, 2]
ALL_FAIL = DecisionRule(indoor_margin=2.0)


def snapshot():
    scores = sorted(FilterScore.objects.values_list(
        "id", "image_id", "scorer_key", "scores", "indoor_margin", "moderate_margin", "object_count", "passed",
        "uncalibrated"))
    images = sorted(Image.objects.values_list(
        "id", "clip_indoor_margin", "clip_moderate_margin", "object_count", "uncalibrated",
        "auto_decision", "auto_reason", "human_decision", "final_decision"))
    return scores, images


@pytest.fixture
def images():
    sizes = [(320, 240), (240, 320), (300, 300), (640, 200)]
    rows = [stored_image(seed, width=w, height=h) for seed, (w, h) in enumerate(sizes)]
    rows.append(stored_image(10, width=256, height=256, fmt="PNG"))
    return rows


def test_scores_a_batch_end_to_end_and_writes_one_filterscore_per_image(images):
    person_rejected, duplicate = images[1], images[2]
    Image.objects.filter(pk=person_rejected.pk).update(human_decision="reject", final_decision="reject")
    Image.objects.filter(pk=duplicate.pk).update(
        dup_group=images[0], auto_decision="reject", auto_reason=f"near-duplicate of #{images[0].pk}",
        auto_stage=AutoStage.NEAR_DUPLICATE, final_decision="reject")
    tracker = runs.Tracker()
    result = score_images(tracker, [im.pk for im in images], rule=ALL_PASS, device="cpu", batch_size=2)

    assert result["scorer_key"] == KEY
    assert tracker.counts == {"kept": 5}
    scores = {fs.image_id: fs for fs in FilterScore.objects.all()}
    assert set(scores) == {im.pk for im in images}
    for fs in scores.values():
        assert fs.scorer_key == KEY and fs.uncalibrated and fs.passed
        assert set(fs.scores) == {"indoor", "outdoor", "tidy", "messy", "moderate"}
        assert all(-1.0 <= v <= 1.0 for v in fs.scores.values())
        assert fs.indoor_margin == pytest.approx(fs.scores["indoor"] - fs.scores["outdoor"], abs=1e-5)
        assert fs.moderate_margin == pytest.approx(
            fs.scores["moderate"] - max(fs.scores["tidy"], fs.scores["messy"]), abs=1e-5)
        assert fs.object_count is None  # no bounds asked: the detector did not run
    # Different pictures give different scores (the model really looked at them).
    assert len({round(fs.indoor_margin, 6) for fs in scores.values()}) == 5

    by_id = Image.objects.in_bulk()
    for pk, fs in scores.items():
        assert by_id[pk].clip_indoor_margin == pytest.approx(fs.indoor_margin)
        assert by_id[pk].clip_moderate_margin == pytest.approx(fs.moderate_margin)
        assert by_id[pk].uncalibrated is True
    assert by_id[images[0].pk].auto_decision == "keep" and by_id[images[0].pk].final_decision == "keep"
    # A person's decision stays and still wins.
    assert by_id[person_rejected.pk].human_decision == "reject"
    assert by_id[person_rejected.pk].auto_decision == "keep"
    assert by_id[person_rejected.pk].final_decision == "reject"
    # Passing CLIP does not bring back a near-duplicate.
    assert by_id[duplicate.pk].auto_decision == "reject"
    assert by_id[duplicate.pk].auto_reason.startswith("near-duplicate of #")


def test_passing_clip_does_not_bring_back_a_copy_of_a_seed(images):
    copy = images[0]
    Image.objects.filter(pk=copy.pk).update(
        auto_decision="reject", auto_reason="copy of seed seed-a.jpg", auto_stage=AutoStage.SEED_COPY,
        final_decision="reject")
    score_images(runs.Tracker(), [copy.pk, images[1].pk], rule=ALL_PASS, device="cpu")
    copy.refresh_from_db()
    assert (copy.auto_decision, copy.final_decision, copy.auto_reason) == ("reject", "reject", "copy of seed seed-a.jpg")
    assert copy.clip_indoor_margin is not None  # scored all the same
    assert Image.objects.get(pk=images[1].pk).auto_decision == "keep"


def test_a_rerun_adds_nothing_and_changes_nothing(images):
    ids = [im.pk for im in images]
    score_images(runs.Tracker(), ids, rule=ALL_PASS, device="cpu", batch_size=3)
    before = snapshot()
    tracker = runs.Tracker()
    score_images(tracker, ids, rule=ALL_PASS, device="cpu", batch_size=2)
    assert snapshot() == before
    assert tracker.counts == {"kept": 5}


def test_rescoring_with_a_stricter_rule_redecides_without_new_rows(images):
    ids = [im.pk for im in images]
    score_images(runs.Tracker(), ids, rule=ALL_PASS, device="cpu")
    first = dict(FilterScore.objects.values_list("image_id", "scores"))
    tracker = runs.Tracker()
    score_images(tracker, ids, rule=ALL_FAIL, device="cpu")
    assert tracker.counts == {"rejected": 5}
    assert FilterScore.objects.count() == 5
    assert dict(FilterScore.objects.values_list("image_id", "scores")) == first
    assert set(FilterScore.objects.values_list("passed", flat=True)) == {False}
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {"reject"}
    assert all(r.startswith("clip: indoor margin") for r in Image.objects.values_list("auto_reason", flat=True))


def test_random_weights_are_the_same_in_every_load():
    scorer = get_clip_scorer("cpu")
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 3, 224, 224), dtype=np.uint8))
    from curation.clip import ClipScorer, load_prompt_set, resolve_clip_spec

    fresh = ClipScorer(resolve_clip_spec("ViT-B-32", "none"), load_prompt_set("v1"), "cpu")
    assert np.allclose(scorer.score(x), fresh.score(x), atol=1e-5)


def test_damaged_file_is_counted_as_an_error_and_the_rest_is_scored(images):
    broken = stored_image(99, width=320, height=240)
    default_storage.delete(broken.file.name)
    default_storage.save(broken.file.name, ContentFile(b"\xff\xd8\xff\xe0 not really a jpeg"))
    missing = stored_image(98, width=320, height=240)
    default_storage.delete(missing.file.name)
    tracker = runs.Tracker()
    score_images(tracker, [im.pk for im in images] + [broken.pk, missing.pk], rule=ALL_PASS, device="cpu")
    assert tracker.counts == {"kept": 5, "error": 2}
    assert not FilterScore.objects.filter(image__in=[broken, missing]).exists()


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of TorchVision")
def test_gpu_style_tensor_decoder_matches_the_pillow_decoder(images):
    """The CUDA path (batched decode_jpeg + resize on the device) run on the CPU gives the same crops."""
    # Big enough for JPEG draft (1/4 scale) on the CPU path.
    images = images + [stored_image(20, width=1600, height=1200)]
    items = [(im.pk, im.file.name, default_storage.open(im.file.name).read()) for im in images]
    ids_cpu, batch_cpu, _, fail_cpu = decode_batch_cpu(items, 224)
    ids_t, batch_t, _, fail_t = decode_batch_tensor(items, 224, "cpu")
    assert ids_cpu == ids_t == [im.pk for im in images] and not fail_cpu and not fail_t
    assert batch_cpu.shape == batch_t.shape == (6, 3, 224, 224)
    diff = (batch_cpu.float() - batch_t.float()).abs().mean(dim=(1, 2, 3))
    assert diff[:5].max().item() < 2.0, diff  # resampling differs by a fraction of a level
    assert diff[5].item() < 6.0, diff  # draft decoding at reduced scale, a few levels
    scorer = get_clip_scorer("cpu")
    assert np.allclose(scorer.score(batch_cpu), scorer.score(batch_t), atol=0.02)


def test_filter_clip_command_logs_csv_copies_kept_files_and_skips_scored_images(images, tmp_path, capsys):
    log = tmp_path / "clip_filter_log.csv"
    out = tmp_path / "keep"
    call_command("filter_clip", "--input", "all", "--indoor-margin", "-2", "--batch-size", "2",
                 "--device", "cpu", "--log-csv", str(log), "--output", str(out))
    run = Run.objects.get(kind="clip")
    assert run.status == "done" and run.counters == {"kept": 5}
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["file", "image_id", "indoor", "outdoor", "tidy", "messy", "moderate",
                             "indoor_margin", "moderate_margin", "object_count", "decision"]
    assert {int(r["image_id"]) for r in rows} == {im.pk for im in images}
    assert {r["decision"] for r in rows} == {"keep"} and {r["object_count"] for r in rows} == {""}
    fs = FilterScore.objects.get(image_id=int(rows[0]["image_id"]))
    assert float(rows[0]["indoor"]) == pytest.approx(fs.scores["indoor"], abs=1e-5)
    copies = sorted(p.name for p in out.iterdir() if p.name != "_filtered_index.jsonl")
    assert copies == sorted(im.file.name.rsplit("/", 1)[1] for im in images)

    call_command("filter_clip", "--input", "all")
    assert "nothing to score" in capsys.readouterr().out
    assert Run.objects.filter(kind="clip").count() == 1


def test_filter_clip_input_by_run_id_and_by_label_with_limit(images):
    run = runs.create_run("import", {"path": "/x"}, label="kitchens")
    for im in images[:3]:
        Source.objects.create(run=run, image=im, provider="folder", path="x", outcome="stored")
    # --limit counts kept images, as the original's: rejected ones do not stop the run.
    call_command("filter_clip", "--input", "kitchens", "--limit", "2", "--device", "cpu", "--indoor-margin", "2")
    assert sorted(FilterScore.objects.values_list("image_id", flat=True)) == [im.pk for im in images[:3]]
    assert set(FilterScore.objects.values_list("passed", flat=True)) == {False}
    call_command("filter_clip", "--input", str(run.pk), "--device", "cpu", "--indoor-margin", "-2", "--limit", "2")
    assert FilterScore.objects.filter(passed=True).count() == 2
    with pytest.raises(CommandError, match="no run has this label"):
        call_command("filter_clip", "--input", "no-such-label")
    with pytest.raises(CommandError, match="no run #999999"):
        call_command("filter_clip", "--input", "999999")


def test_missing_weights_fail_at_once_naming_the_setting_and_the_fetch_command(settings, tmp_path, images):
    settings.SCENEIMG_CLIP_PRETRAINED = "laion2b_s34b_b79k"
    settings.SCENEIMG_MODEL_DIR = str(tmp_path / "empty-model-dir")
    with pytest.raises(ModelWeightsMissing) as exc:
        check_clip_weights()
    assert "SCENEIMG_CLIP_PRETRAINED='laion2b_s34b_b79k'" in str(exc.value)
    assert "python manage.py fetch_models" in str(exc.value)
    with pytest.raises(CommandError, match="fetch_models"):
        call_command("filter_clip", "--input", "all")
    with pytest.raises(ModelWeightsMissing, match="SCENEIMG_CLIP_PRETRAINED"):
        score_images(runs.Tracker(), [images[0].pk], device="cpu")
    assert not FilterScore.objects.exists()


def test_a_checkpoint_path_that_does_not_exist_is_a_clear_error(settings):
    settings.SCENEIMG_CLIP_PRETRAINED = "/nowhere/clip.pt"
    with pytest.raises(ModelWeightsMissing, match="SCENEIMG_CLIP_PRETRAINED='/nowhere/clip.pt'"):
        check_clip_weights()
