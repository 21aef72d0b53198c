"""curation's own stages on the runs page and in the admin, and its detail panel."""
from django.conf import settings
from django.db import transaction

from curation import forms, launch, registry, search
from curation.models import ContentDuplicate, Embedding, Run


def _scores(image):
    # (score, sorted prompt items): a prompt named "items" must not shadow dict.items in templates.
    return {
        "scores": [(score, sorted(score.scores.items())) for score in image.filter_scores.order_by("-created_at")],
        "dhash_hex": f"{image.dhash & (2**64 - 1):016x}",
    }


def _content_duplicates(image):
    key = search.model_key()
    threshold = settings.SCENEIMG_CONTENT_DUP_THRESHOLD
    return {
        "content_duplicates": list(ContentDuplicate.objects.filter(image=image, model_key=key, similarity__gte=threshold)
                                   .select_related("other").only("other_id", "similarity", "other__final_decision")
                                   .order_by("-similarity")[:24]),
        "content_dup_threshold": threshold,
        "has_embedding": Embedding.objects.filter(image=image, model_key=key).exists(),
    }


def _clip_after(run):
    """A pipeline's CLIP stage over the images its crawl or import brought in."""
    params = launch.clip_params(str(run.pk), pipeline=True, indoor_margin=settings.SCENEIMG_PIPELINE_INDOOR_MARGIN,
                                label=f"pipeline of run #{run.pk}")
    return launch.launch_clip(params, run.created_by, parent=run)


def _retrain_when_due(user, decided):
    """People's decisions teach the learned scorer: once they commit, a training run starts if enough
    new ones came in. A launch that fails (Redis down) must not undo decisions already saved."""
    transaction.on_commit(lambda: launch.retrain_if_due(user), robust=True)


def register():
    registry.register_review_listener(_retrain_when_due)
    registry.register_followup([Run.Kind.CRAWL, Run.Kind.SIMILAR, Run.Kind.IMPORT], _clip_after)
    registry.register_stage("clip", "CLIP filter", forms.ClipForm, launch.launch_clip, order=50)
    registry.register_stage("dedup", "Near-duplicate grouping", forms.DedupForm, launch.launch_dedup, order=60)
    registry.register_stage("embed", "CLIP embeddings", forms.EmbedForm, launch.launch_embed, order=52)
    registry.register_stage("index", "Vector index", forms.IndexForm, launch.launch_index, order=54)
    registry.register_stage("train", "Learned scorer", forms.TrainForm, launch.launch_train, order=56)
    registry.register_stage("rescore", "CLIP rescore from embeddings", forms.RescoreForm, launch.launch_rescore,
                            order=51)
    registry.register_stage("export", "Export", forms.ExportLaunchForm, launch.launch_export, order=90)
    registry.register_detail_panel("curation/_detail_scores.html", _scores, order=20)
    registry.register_detail_panel("curation/_detail_similar.html", _content_duplicates, order=25)
