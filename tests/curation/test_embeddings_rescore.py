"""Rescoring from stored embeddings: a new prompt set or margins, no image decoded, the same rows."""
import json
import shutil

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection, transaction

from curation import clip, launch, runs, vector_index
from curation import rescore as rescore_module
from curation.models import Embedding, FilterScore, Image, Run
from curation.registry import LaunchError
from curation.rescore import rescore
from curation.scoring import DecisionRule, score_images
from tests.factories import stored_image

pytestmark = pytest.mark.django_db

NEW_SET = "test-rescore-b"


@pytest.fixture(autouse=True)
def _vector_dir(settings, tmp_path):
    settings.SCENEIMG_VECTOR_DIR = str(tmp_path / "vectors")
    vector_index._loaded.clear()


@pytest.fixture
def prompt_sets(tmp_path, monkeypatch):
    """v1 plus a second set whose sentences differ, so its scores differ."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    shutil.copy(clip.PROMPTS_DIR / "v1.json", folder / "v1.json")
    labels = {name: [f"a picture that is {name}", f"something {name} in a photo"]
              for name in ("indoor", "outdoor", "tidy", "messy", "moderate")}
    (folder / f"{NEW_SET}.json").write_text(json.dumps({"version": NEW_SET, "labels": labels}))
    monkeypatch.setattr(clip, "PROMPTS_DIR", folder)
    return folder


def rows():
    scores = {(fs.image_id, fs.scorer_key): (fs.scores, fs.indoor_margin, fs.moderate_margin, fs.passed)
              for fs in FilterScore.objects.all()}
    images = sorted(Image.objects.values_list("id", "clip_indoor_margin", "clip_moderate_margin", "auto_decision",
                                              "auto_reason", "auto_stage", "final_decision"))
    return scores, images


def test_rescoring_from_embeddings_equals_scoring_from_images(settings, prompt_sets):
    images = [stored_image(seed, width=160, height=120) for seed in range(4)]
    ids = [im.pk for im in images]
    rule = DecisionRule(indoor_margin=0.0)
    score_images(runs.Tracker(), ids, rule=rule, device="cpu")  # v1: stores the embeddings
    assert Embedding.objects.count() == 4

    # The new prompt set from the embeddings alone: the files are gone, nothing is decoded.
    files = {im.pk: default_storage.open(im.file.name, "rb").read() for im in images}
    for im in images:
        default_storage.delete(im.file.name)
    tracker = runs.Tracker()
    result = rescore(tracker, rule=rule, prompt_version=NEW_SET, device="cpu")
    key = f"clip:ViT-B-32:none:prompts-{NEW_SET}"
    assert result["scorer_key"] == key
    assert tracker.counts.get("kept", 0) + tracker.counts.get("rejected", 0) == 4
    from_embeddings = rows()

    # The same prompt set from the pixels, with no embedding to lean on.
    for pk, data in files.items():
        default_storage.save(Image.objects.get(pk=pk).file.name, ContentFile(data))
    FilterScore.objects.filter(scorer_key=key).delete()
    Embedding.objects.all().delete()
    settings.SCENEIMG_CLIP_PROMPTS = NEW_SET
    score_images(runs.Tracker(), ids, rule=rule, device="cpu")
    assert rows() == from_embeddings
    v1 = {fs.image_id: fs.scores for fs in FilterScore.objects.filter(scorer_key="clip:ViT-B-32:none:prompts-v1")}
    new = {fs.image_id: fs.scores for fs in FilterScore.objects.filter(scorer_key=key)}
    assert all(v1[pk] != new[pk] for pk in ids)  # the prompt set really changed the scores


def test_new_margins_redecide_every_image_but_never_a_person(prompt_sets):
    images = [stored_image(seed, width=96, height=72) for seed in range(3)]
    score_images(runs.Tracker(), [im.pk for im in images], rule=DecisionRule(indoor_margin=-2.0), device="cpu")
    Image.objects.filter(pk=images[0].pk).update(human_decision="keep", final_decision="keep")
    call_command("rescore_clip", "--indoor-margin", "2.0", "--device", "cpu")
    run = Run.objects.get(kind="clip", params__rescore=True)
    assert run.status == "done" and run.counters["rejected"] == 3
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {"reject"}
    assert Image.objects.get(pk=images[0].pk).final_decision == "keep"
    assert Image.objects.get(pk=images[1].pk).final_decision == "reject"


def test_rescore_refuses_what_needs_pixels_and_unknown_prompt_sets(prompt_sets):
    with pytest.raises(LaunchError, match="object counts need the pixels"):
        launch.launch_rescore(launch.rescore_params("v1", object_count_min=3))
    with pytest.raises(LaunchError, match="no-such-set"):
        launch.launch_rescore(launch.rescore_params("no-such-set"))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY writer is Postgres's")
@pytest.mark.django_db(transaction=True)
def test_chunks_written_on_two_connections_give_the_rows_one_connection_gives(prompt_sets, monkeypatch):
    ids = [stored_image(seed, width=96, height=72).pk for seed in range(7)]
    rule = DecisionRule(indoor_margin=0.0)
    score_images(runs.Tracker(), ids, rule=rule, device="cpu")  # v1, and the embeddings
    monkeypatch.setattr(rescore_module, "COPY_CHUNK", 2)
    backends = []
    write = rescore_module._CopyWriter.write

    def recorded(self, text):
        connection.ensure_connection()
        backends.append(connection.connection.info.backend_pid)  # the Postgres session writing this chunk
        return write(self, text)

    monkeypatch.setattr(rescore_module._CopyWriter, "write", recorded)
    tracker = runs.Tracker()
    rescore(tracker, rule=rule, prompt_version=NEW_SET, device="cpu")
    assert len(backends) == 4 and len(set(backends)) == 2  # 7 images in chunks of 2, on two connections
    assert tracker.counts.get("kept", 0) + tracker.counts.get("rejected", 0) == 7
    two_connections = rows()

    # Back to v1, then the same rescore inside a transaction, where every chunk goes through this connection.
    FilterScore.objects.filter(scorer_key=f"clip:ViT-B-32:none:prompts-{NEW_SET}").delete()
    rescore(runs.Tracker(), rule=rule, prompt_version="v1", device="cpu")
    assert rows() != two_connections
    backends.clear()
    with transaction.atomic():
        rescore(runs.Tracker(), rule=rule, prompt_version=NEW_SET, device="cpu")
    assert len(set(backends)) == 1
    assert rows() == two_connections
