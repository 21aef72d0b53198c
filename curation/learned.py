"""A scorer learned from people's decisions: a logistic-regression probe on CLIP image embeddings.

Once SCENEIMG_LEARNED_MIN_DECISIONS images with an embedding have a human decision (and each class
has a tenth of that), `train` splits them into a training part and a held-out part (stratified), fits
scikit-learn's LogisticRegression on the training part only (its regularisation chosen by
cross-validation inside that part), and measures precision, recall and ROC AUC on the held-out part.
The model is kept as a new LearnedScorer row with those figures.

`apply` writes its probability of keep to every embedded image it was not trained on
(`Image.learned_keep`; training images get none, so no score is ever a model's memory of its own
training label). Only when the held-out AUC reaches SCENEIMG_LEARNED_MIN_AUC does it also decide,
as the LEARNED stage (after CLIP, before the VLM), and only through curation.decisions: a person's
decision always stays final, and a copy of a seed, a near-duplicate or a VLM verdict is never replaced.

It retrains on demand (`manage.py train_scorer`, the runs page) and after every
SCENEIMG_LEARNED_RETRAIN_EVERY new human decisions (`curation.launch.retrain_if_due`, which the
review path calls).
"""
import logging

import numpy as np
from django.conf import settings
from django.db.models import Max

from curation import bulk_update, decisions, embeddings, vector_index
from curation.models import AutoStage, Decision, Image, LearnedScorer, Review, Run

log = logging.getLogger(__name__)

KIND = Run.Kind.TRAIN  # the Run kind of training (and applying) a scorer
HOLDOUT = 0.25  # share of the labelled images kept out of training to measure the model
WRITE_CHUNK = 5000


class NotEnoughDecisions(Exception):
    """Too few human decisions (or only one class) to train; the message says how many are needed."""


def min_per_class():
    return max(2, settings.SCENEIMG_LEARNED_MIN_DECISIONS // 10)


def labelled(model_key):
    """(ids, embeddings float32 [n, dim], labels 1=keep 0=reject) of the human-decided embedded images."""
    decided = dict(Image.objects.filter(human_decision__isnull=False).values_list("id", "human_decision"))
    vectors = embeddings.load_map(model_key, sorted(decided))
    ids = np.asarray(sorted(vectors), dtype=np.int64)
    x = np.stack([vectors[i] for i in ids]).astype(np.float32) if len(ids) else np.zeros((0, 0), np.float32)
    y = np.asarray([decided[i] == Decision.KEEP for i in ids], dtype=np.int8)
    return ids, x, y


def check_enough(y):
    keeps, rejects = int(y.sum()), int(len(y) - y.sum())
    need = settings.SCENEIMG_LEARNED_MIN_DECISIONS
    if len(y) < need or min(keeps, rejects) < min_per_class():
        raise NotEnoughDecisions(
            f"the learned scorer needs {need} human decisions on embedded images, at least {min_per_class()} of "
            f"each kind; there are {len(y)} ({keeps} keep, {rejects} reject)")
    return keeps, rejects


def train_probe(x, y):
    """(coef, intercept) of a logistic-regression probe on embeddings `x` with labels `y` (1 = keep):
    standardised features, balanced classes, the regularisation chosen by cross-validation on `x` alone.
    The scaling is folded into the weights, so p(keep) = sigmoid(x . coef + intercept) on raw embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    folds = max(2, min(5, int(np.bincount(y, minlength=2).min())))
    search = GridSearchCV(LogisticRegression(class_weight="balanced", max_iter=2000), {"C": np.logspace(-4, 1, 6)},
                          cv=folds, scoring="roc_auc")
    probe = search.fit(scaler.transform(x), y).best_estimator_
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef = (probe.coef_[0] / scale).astype(np.float32)
    intercept = float(probe.intercept_[0] - np.sum(probe.coef_[0] * scaler.mean_ / scale))
    return coef, intercept


def fit(x, y, seed=0):
    """(coef, intercept, held-out metrics, train rows, held-out rows): a stratified split, the probe
    trained on one part, measured on the other."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    train, held = train_test_split(rows, test_size=HOLDOUT, stratify=y, random_state=seed)
    coef, intercept = train_probe(x[train], y[train])
    p = probability(x[held], coef, intercept)
    metrics = {
        "precision": float(precision_score(y[held], p >= 0.5, zero_division=0)),
        "recall": float(recall_score(y[held], p >= 0.5, zero_division=0)),
        "auc": float(roc_auc_score(y[held], p)) if len(set(y[held].tolist())) == 2 else None,
    }
    return coef, intercept, metrics, train, held


def probability(x, coef, intercept):
    z = np.asarray(x, dtype=np.float32) @ coef + np.float32(intercept)
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def train(tracker=None, *, model_key=None, run=None):
    """Train a new version on every human decision so far, store it, and apply it. Returns the LearnedScorer.

    Raises NotEnoughDecisions below the setting's minimum."""
    model_key = model_key or embeddings.current_key()
    # Read before the decisions: one made while this trains counts towards the next retraining.
    last_review = last_review_id()
    ids, x, y = labelled(model_key)
    keeps, rejects = check_enough(y)
    coef, intercept, metrics, train_rows, held_rows = fit(x, y)
    scorer = LearnedScorer.objects.create(
        model_key=model_key, run=run, trained_on=len(train_rows), held_out=len(held_rows), keeps=keeps,
        rejects=rejects, coef=coef.tobytes(), intercept=intercept, train_ids=ids[train_rows].tobytes(),
        last_review_id=last_review, **metrics)
    log.info("learned scorer v%s: %s trained, %s held out, AUC %s", scorer.pk, len(train_rows), len(held_rows),
             metrics["auc"])
    if tracker is not None:
        tracker.count("trained_on", len(train_rows))
        tracker.count("held_out", len(held_rows))
    apply(scorer, tracker)
    return scorer


def decides(scorer):
    """Whether this version is good enough to decide, not only to score."""
    return scorer.auc is not None and scorer.auc >= settings.SCENEIMG_LEARNED_MIN_AUC


def latest(model_key=None):
    return LearnedScorer.objects.filter(model_key=model_key or embeddings.current_key()).first()


def apply(scorer, tracker=None):
    """Write `scorer`'s probability to every embedded image outside its training split, and decide with
    it when its held-out AUC allows. Training images get no probability."""
    vector_index.sync(scorer.model_key)
    coef = np.frombuffer(bytes(scorer.coef), dtype=np.float32)
    trained = set(np.frombuffer(bytes(scorer.train_ids), dtype=np.int64).tolist())
    deciding = decides(scorer)
    for ids, vectors in vector_index.iter_segments(scorer.model_key):
        for start in range(0, len(ids), WRITE_CHUNK):
            chunk = ids[start:start + WRITE_CHUNK].tolist()
            p = probability(vectors[start:start + WRITE_CHUNK], coef, scorer.intercept)
            rows = [{"id": image_id, "learned_keep": None if image_id in trained else round(float(pk), 6)}
                    for image_id, pk in zip(chunk, p.tolist(), strict=True)]
            bulk_update.update_rows(Image, rows, ["learned_keep"])
            if deciding:
                decisions.decide(AutoStage.LEARNED, [
                    {"id": r["id"], "reason": f"learned v{scorer.pk}: p(keep) {r['learned_keep']:.3f}",
                     "decision": Decision.KEEP if r["learned_keep"] >= scorer.threshold else Decision.REJECT}
                    for r in rows if r["learned_keep"] is not None])
            if tracker is not None:
                tracker.count("scored", sum(1 for r in rows if r["learned_keep"] is not None))
                tracker.check_cancelled()
    # Decisions this stage made that no longer stand: all of them when this version may not decide,
    # else those of images it has no score for (its training images).
    stale = Image.objects.filter(auto_stage=AutoStage.LEARNED)
    if deciding:
        stale = stale.filter(learned_keep__isnull=True)
    released = list(stale.values_list("id", flat=True))
    decisions.release(AutoStage.LEARNED, decisions.back_to_clip(released))
    if tracker is not None and released:
        tracker.count("released", len(released))


def retrain_due():
    """Whether a training run should start: SCENEIMG_LEARNED_RETRAIN_EVERY human decisions since the
    last one began (for the first, enough decisions of both kinds). Cheap enough for every review: a
    count over the reviews since then, an index range on the primary key."""
    last = Run.objects.filter(kind=KIND).order_by("-id").values_list("params", "status").first()
    if last is not None and last[1] in Run.ACTIVE:
        return False
    since = last[0].get("last_review", 0) if last is not None else 0
    new = Review.objects.filter(id__gt=since).count()
    if last is not None:
        return new >= settings.SCENEIMG_LEARNED_RETRAIN_EVERY
    if new < settings.SCENEIMG_LEARNED_MIN_DECISIONS:
        return False
    decided = Image.objects.filter(human_decision__isnull=False)
    return (decided.count() >= settings.SCENEIMG_LEARNED_MIN_DECISIONS
            and decided.filter(human_decision=Decision.KEEP).count() >= min_per_class()
            and decided.filter(human_decision=Decision.REJECT).count() >= min_per_class())


def last_review_id():
    return Review.objects.aggregate(last=Max("id"))["last"] or 0
