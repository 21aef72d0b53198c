"""The learned scorer: trained on people's decisions, held-out metrics, a stage that never beats a person."""
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from curation import embeddings, gallery, launch, learned, review, vector_index
from curation.models import AutoStage, FilterScore, Image, LearnedScorer, Run
from tests.factories import image_row

pytestmark = pytest.mark.django_db

KEY = "ViT-B-32:none"


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path):
    settings.SCENEIMG_VECTOR_DIR = str(tmp_path / "vectors")
    settings.SCENEIMG_LEARNED_MIN_DECISIONS = 40
    settings.SCENEIMG_LEARNED_RETRAIN_EVERY = 5
    settings.SCENEIMG_LEARNED_MIN_AUC = 0.8
    vector_index._loaded.clear()


def population(n, *, decided, seed=0, keep_share=0.5):
    """n embedded images whose keep-worthiness shows in the embedding (direction u), plus noise.
    The first `decided` get the human decision that matches; the rest are undecided."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=512)
    u /= np.linalg.norm(u)
    good = rng.random(n) < keep_share
    x = rng.normal(size=(n, 512)) + np.where(good, 2.5, -2.5)[:, None] * u
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    images = []
    for i in range(n):
        fields = {"human_decision": "keep" if good[i] else "reject"} if i < decided else {}
        images.append(image_row(5000 + i, **fields))
    embeddings.store(KEY, [im.pk for im in images], x)
    return images, good


def test_trains_only_with_enough_decisions_of_both_kinds():
    images, good = population(39, decided=39)
    with pytest.raises(learned.NotEnoughDecisions, match="needs 40"):
        learned.train(model_key=KEY)
    one_kind = [image_row(9000 + i, human_decision="keep") for i in range(45)]
    embeddings.store(KEY, [im.pk for im in one_kind], np.eye(512, dtype=np.float16)[:45])
    Image.objects.filter(pk__in=[im.pk for im in images]).update(human_decision="keep")
    with pytest.raises(learned.NotEnoughDecisions, match="at least 4 of each kind"):
        learned.train(model_key=KEY)
    assert not LearnedScorer.objects.exists()
    # An image with a decision but no embedding does not count.
    Image.objects.filter(pk__in=[im.pk for im in images[:10]]).update(human_decision="reject")
    assert learned.train(model_key=KEY).trained_on + learned.latest(KEY).held_out == 84


def test_held_out_metrics_and_no_image_is_scored_by_a_model_trained_on_it():
    images, good = population(200, decided=120)
    scorer = learned.train(model_key=KEY)
    assert (scorer.trained_on, scorer.held_out) == (90, 30)
    assert scorer.keeps + scorer.rejects == 120
    assert scorer.auc > 0.9 and scorer.precision > 0.8 and scorer.recall > 0.8
    trained = set(np.frombuffer(bytes(scorer.train_ids), dtype=np.int64).tolist())
    decided = {im.pk for im in images[:120]}
    assert len(trained) == 90 and trained <= decided
    scored = dict(Image.objects.filter(learned_keep__isnull=False).values_list("id", "learned_keep"))
    assert not trained & set(scored)
    assert set(scored) == {im.pk for im in images} - trained  # held-out and undecided images
    # The probabilities mean something on images it never saw.
    unseen = [(scored[im.pk], good[i]) for i, im in enumerate(images) if i >= 120]
    assert np.mean([(p >= 0.5) == g for p, g in unseen]) > 0.9


def test_the_stage_decides_below_the_vlm_and_never_over_a_person():
    images, good = population(160, decided=100)
    undecided = images[100:]
    vlm_judged, seed_copy = undecided[0], undecided[1]
    Image.objects.filter(pk=vlm_judged.pk).update(auto_decision="keep", auto_stage=AutoStage.VLM,
                                                  auto_reason="vlm: keep", final_decision="keep")
    Image.objects.filter(pk=seed_copy.pk).update(auto_decision="reject", auto_stage=AutoStage.SEED_COPY,
                                                 auto_reason="copy of seed a.jpg", final_decision="reject")
    scorer = learned.train(model_key=KEY)
    assert learned.decides(scorer)
    rows = {im.pk: im for im in Image.objects.all()}
    for i, im in enumerate(images):
        row = rows[im.pk]
        if i < 100:
            assert row.final_decision == ("keep" if good[i] else "reject")  # a person's word stays final
        elif im.pk not in (vlm_judged.pk, seed_copy.pk):
            assert row.auto_stage == AutoStage.LEARNED
            assert row.auto_decision == ("keep" if row.learned_keep >= 0.5 else "reject") == row.final_decision
            assert row.auto_reason.startswith(f"learned v{scorer.pk}: p(keep) ")
    assert (rows[vlm_judged.pk].auto_stage, rows[vlm_judged.pk].auto_decision) == (AutoStage.VLM, "keep")
    assert rows[seed_copy.pk].auto_reason == "copy of seed a.jpg"
    # A person who disagrees later wins.
    target = next(im for im in undecided[2:] if rows[im.pk].auto_decision == "keep")
    review.set_decision([target.pk], "reject", None)
    assert Image.objects.get(pk=target.pk).final_decision == "reject"


def test_a_version_below_the_auc_bar_only_scores_and_gives_back_its_decisions(settings):
    images, good = population(120, decided=60)
    FilterScore.objects.create(image=images[-1], scorer_key="clip:x", scores={}, indoor_margin=0.1, passed=True)
    first = learned.train(model_key=KEY)
    assert Image.objects.filter(auto_stage=AutoStage.LEARNED).count() == 120 - first.trained_on
    settings.SCENEIMG_LEARNED_MIN_AUC = 1.01  # unreachable
    scorer = learned.train(model_key=KEY)
    assert not learned.decides(scorer)
    assert not Image.objects.filter(auto_stage=AutoStage.LEARNED).exists()
    last = Image.objects.get(pk=images[-1].pk)
    assert (last.auto_decision, last.auto_stage) == ("keep", AutoStage.CLIP)  # back to what CLIP said
    assert Image.objects.get(pk=images[-2].pk).auto_decision is None
    assert Image.objects.filter(learned_keep__isnull=False).count() >= 60  # still scored


def test_retraining_comes_due_after_k_new_decisions(redis_conn):
    user = get_user_model().objects.create_user("rev")
    images, good = population(80, decided=0)
    for im, g in zip(images[:39], good[:39], strict=True):
        review.set_decision([im.pk], "keep" if g else "reject", user)
    assert not learned.retrain_due()
    review.set_decision([images[39].pk], "keep" if good[39] else "reject", user)
    assert learned.retrain_due()
    call_command("train_scorer", "--if-due")
    assert LearnedScorer.objects.count() == 1 and not learned.retrain_due()
    for im in images[40:44]:
        review.set_decision([im.pk], "keep", user)
    assert launch.retrain_if_due(user) is None
    review.set_decision([images[44].pk], "keep", user)
    run = launch.retrain_if_due(user)
    assert run is not None and run.kind == learned.KIND
    assert launch.retrain_if_due(user) is None  # one training at a time
    assert Run.objects.filter(kind=learned.KIND).count() == 2


def test_most_useful_next_orders_by_closeness_to_even_odds_and_pages():
    probabilities = [0.9, 0.5, 0.05, 0.55, None, 0.45, 0.7, 0.3, 0.52]
    images = [image_row(100 + i, learned_keep=p) for i, p in enumerate(probabilities)]
    expected = [im.pk for im, p in sorted(((im, p) for im, p in zip(images, probabilities, strict=True)
                                            if p is not None), key=lambda t: (abs(t[1] - 0.5), t[0].pk))]
    seen, after = [], None
    while True:
        page, after = gallery.page({"sort": "uncertain", **({"after": after} if after else {})}, size=3)
        seen += [im.pk for im in page]
        if after is None:
            break
    assert seen == expected
    assert gallery.neighbours({"sort": "uncertain"}, Image.objects.get(pk=expected[2])) == (expected[1], expected[3])
    assert [im.pk for im in gallery.page({"learned_min": 0.5, "sort": "-learned"})[0]] == [
        images[0].pk, images[6].pk, images[3].pk, images[8].pk, images[1].pk]
