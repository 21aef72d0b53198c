"""curation's own stages on the runs page and in the admin, and its detail panel."""
from curation import forms, launch, registry


def _scores(image):
    # (score, sorted prompt items): a prompt named "items" must not shadow dict.items in templates.
    return {
        "scores": [(score, sorted(score.scores.items())) for score in image.filter_scores.order_by("-created_at")],
        "dhash_hex": f"{image.dhash & (2**64 - 1):016x}",
    }


def register():
    registry.register_stage("clip", "CLIP filter", forms.ClipForm, launch.launch_clip, order=50)
    registry.register_stage("dedup", "Near-duplicate grouping", forms.DedupForm, launch.launch_dedup, order=60)
    registry.register_stage("embed", "CLIP embeddings", forms.EmbedForm, launch.launch_embed, order=52)
    registry.register_stage("index", "Vector index", forms.IndexForm, launch.launch_index, order=54)
    registry.register_stage("rescore", "CLIP rescore from embeddings", forms.RescoreForm, launch.launch_rescore,
                            order=51)
    registry.register_stage("export", "Export", forms.ExportLaunchForm, launch.launch_export, order=90)
    registry.register_detail_panel("curation/_detail_scores.html", _scores, order=20)
