"""Everything vlm adds to curation's pages and runs, registered from VlmConfig.ready()."""
from django.db.models import Prefetch

from curation import registry
from curation.models import Run
from curation.registry import LaunchError
from vlm import filters, forms, launch
from vlm.models import PromptVersion, VlmVerdict
from vlm.normalise import split_tags


def _verdicts(image):
    return {"verdicts": list(image.verdicts.select_related("prompt_version").order_by("-updated_at"))}


def _export_verdicts(image):
    return {"verdicts": [_export_verdict(v) for v in image.verdicts.all()]}


def _export_verdict(v):
    plain, rooms, objects = split_tags(v.tags)
    return {"prompt_version": v.prompt_version.name, "prompt_hash": v.prompt_version.content_hash,
            "backend": v.backend, "model": v.model, "decision": v.decision, "score": v.score,
            "reason": v.reason, "tags": plain, "room_tags": rooms, "object_tags": objects, "error": v.error}


def _csv_verdicts(row):
    return {"vlm_verdicts": "; ".join(
        f"{v['prompt_version']}/{v['model']}: {v['decision'] or 'error'}"
        + (f" {v['score']:.2f}" if v["score"] is not None else "")
        for v in row["verdicts"]
    )}


def _judged_by(row):
    return {"judged_by": "; ".join(
        f"{v['prompt_version']} ({(v['prompt_hash'] or '')[:8]}) {v['backend']}/{v['model']}: {v['decision'] or 'error'}"
        for v in row["verdicts"]
    )}


def _prompts_used(images):
    """The full texts of every prompt version that judged an image of the snapshot."""
    used = PromptVersion.objects.filter(verdicts__image__in=images).distinct().order_by("name", "id")
    return {"vlm_prompts": [
        {"name": pv.name, "content_hash": pv.content_hash, "system_text": pv.system_text,
         "user_template": pv.user_template, "source_file": pv.source_file}
        for pv in used
    ]}


def _verdict_signature(row):
    return sorted((v["prompt_hash"], v["backend"], v["model"], v["decision"] or "", v["score"] or 0.0)
                  for v in row.get("verdicts", ()))


def _verdicts_differ(before, after):
    return _verdict_signature(before) != _verdict_signature(after)


def _verdicts_written_between(image_ids, since, until):
    return set(VlmVerdict.objects.filter(image_id__in=image_ids, updated_at__gt=since, updated_at__lte=until)
               .values_list("image_id", flat=True))


def _vlm_after(clip_run):
    """A pipeline's VLM stage: the images its CLIP stage kept, with the backend, model, prompt and
    min-score from settings. Without an API key it cannot start, which the CLIP run says."""
    options = launch.vlm_options(run=clip_run.pk, passed_clip=True)
    try:
        return launch.launch_vlm(options, clip_run.created_by, parent=clip_run)
    except LaunchError as exc:
        raise LaunchError(f"VLM judge skipped: {exc}") from None


def register():
    registry.register_followup([Run.Kind.CLIP], _vlm_after)
    registry.register_stage("vlm", "VLM judge", forms.VlmForm, launch.launch_vlm, order=70)
    registry.register_filter(filters.FIELDS, filters.judged, order=20)
    registry.register_filter_panel("vlm/_filters_verdict.html", filters.panel_choices, order=20)
    registry.register_detail_panel("vlm/_detail_verdicts.html", _verdicts, order=30)
    # Prefetched in id order so the exported list reads the same in every export.
    verdicts = Prefetch("verdicts", queryset=VlmVerdict.objects.select_related("prompt_version").order_by("id"))
    registry.register_export_fields(_export_verdicts, prefetch=(verdicts,), csv=_csv_verdicts,
                                    csv_columns=("vlm_verdicts",), order=10)
    registry.register_provenance(("judged_by",), _judged_by, snapshot=_prompts_used, order=20)
    registry.register_diff_reason("new VLM verdict", _verdicts_differ, _verdicts_written_between, order=30)
