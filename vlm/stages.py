"""Everything vlm adds to curation's pages and runs, registered from VlmConfig.ready()."""
from django.db.models import Prefetch

from curation import registry
from vlm import filters, forms, launch
from vlm.models import VlmVerdict


def _verdicts(image):
    return {"verdicts": list(image.verdicts.select_related("prompt_version").order_by("-updated_at"))}


def _export_verdicts(image):
    return {"verdicts": [
        {"prompt_version": v.prompt_version.name, "prompt_hash": v.prompt_version.content_hash,
         "backend": v.backend, "model": v.model, "decision": v.decision, "score": v.score,
         "reason": v.reason, "tags": v.tags, "error": v.error}
        for v in image.verdicts.all()
    ]}


def _csv_verdicts(row):
    return {"vlm_verdicts": "; ".join(
        f"{v['prompt_version']}/{v['model']}: {v['decision'] or 'error'}"
        + (f" {v['score']:.2f}" if v["score"] is not None else "")
        for v in row["verdicts"]
    )}


def register():
    registry.register_stage("vlm", "VLM judge", forms.VlmForm, launch.launch_vlm, order=70)
    registry.register_filter(filters.FIELDS, filters.judged, order=20)
    registry.register_filter_panel("vlm/_filters_verdict.html", filters.panel_choices, order=20)
    registry.register_detail_panel("vlm/_detail_verdicts.html", _verdicts, order=30)
    # Prefetched in id order so the exported list reads the same in every export.
    verdicts = Prefetch("verdicts", queryset=VlmVerdict.objects.select_related("prompt_version").order_by("id"))
    registry.register_export_fields(_export_verdicts, prefetch=(verdicts,), csv=_csv_verdicts,
                                    csv_columns=("vlm_verdicts",), order=10)
