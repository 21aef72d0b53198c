"""The one launch of a VLM run, for `filter_vlm --enqueue`, the runs page and the tests.

`plan_vlm` checks everything a person can get wrong (backend key, prompt version, selection) and
fixes the Run's parameters; `launch_vlm` splits the selection into batches on the vlm queue.
"""
import hashlib
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage

from curation import runs
from curation.models import Run
from curation.registry import LaunchError
from sceneimg_site import queues
from vlm import backends, jobs
from vlm.inputs import InputError, Selection, select
from vlm.judge import save_selection
from vlm.prompts import PromptError, active_version, latest_version, sync_prompts

INPUT_KEYS = ("input_dir", "input_manifest", "run", "decision", "passed_clip", "judged")
OUTPUT_KEYS = ("output", "keep_dir", "reject_dir")


def vlm_options(*, backend=None, model=None, prompt=None, min_score=None, workers=None, timeout=None, seed=0,
                limit=None, **inputs_and_outputs):
    """What to judge and how: the command's flags and the web form's fields give the same dict."""
    return {
        "backend": backend or settings.SCENEIMG_VLM_BACKEND, "model": model or None, "prompt": prompt or None,
        "min_score": settings.SCENEIMG_VLM_MIN_SCORE if min_score is None else min_score,
        "workers": settings.SCENEIMG_VLM_WORKERS if workers is None else workers,
        "timeout": settings.SCENEIMG_VLM_TIMEOUT if timeout is None else timeout,
        "seed": seed, "limit": limit,
        **{k: inputs_and_outputs.get(k) or None for k in INPUT_KEYS + OUTPUT_KEYS},
    }


@dataclass
class Plan:
    version: object
    active: object
    created: list  # prompt versions synced from files just now
    selection: Selection
    stage: dict  # the judge_images keyword arguments every batch shares
    params: dict  # the Run's parameters (its work key)
    outputs: dict = field(default_factory=dict)

    @property
    def label(self):
        return f"VLM {self.version.name} {self.stage['backend']}/{self.stage['model']}"


def plan_vlm(options):
    o = options
    if o["workers"] < 1 or o["timeout"] <= 0 or not 0 <= o["min_score"] <= 1:
        raise LaunchError("--workers must be >= 1, --timeout > 0 and --min-score between 0 and 1")
    backend, model = o["backend"], o["model"] or backends.default_model(o["backend"])
    try:
        backends.make_backend(backend, model, timeout=o["timeout"]).close()  # a missing API key fails here
        created, _ = sync_prompts()
        active = active_version()
        version = latest_version(o["prompt"]) if o["prompt"] else active
        if version is None:
            raise PromptError("no prompt versions: add prompts/v1.toml and run sync_prompts")
        judged_by = (version.pk, backend, model) if o["judged"] else None
        selection = select(limit=o["limit"], judged_by=judged_by, **{k: o[k] for k in INPUT_KEYS if k != "judged"})
    except (ValueError, PromptError, InputError) as exc:
        raise LaunchError(str(exc)) from None
    stage = {"prompt_version_id": version.pk, "backend": backend, "model": model, "min_score": o["min_score"],
             "workers": o["workers"], "timeout": o["timeout"], "seed": o["seed"]}
    outputs = {k: o[k] for k in OUTPUT_KEYS if o[k]}
    params = {**stage, "prompt": version.name, **outputs, "limit": o["limit"],
              "inputs": {k: o[k] for k in INPUT_KEYS if o[k]}, "images": len(selection.ids),
              "selection_sha": hashlib.sha256(json.dumps(selection.ids).encode()).hexdigest()[:16]}
    return Plan(version, active, created, selection, stage, params, outputs)


def launch_vlm(options, user=None, *, plan=None, parent=None):
    """Queue the judging of a selection in batches (or return the identical run already active)."""
    plan = plan or plan_vlm(options)
    if not plan.selection.ids:
        raise LaunchError("No images match that selection.")
    existing = runs.active_duplicate(Run.Kind.VLM, plan.params)
    if existing is not None:
        return existing
    outputs = None
    if plan.outputs:
        # Every worker machine reads the frozen selection from media storage to write the files.
        outputs = {**plan.outputs, "selection": save_selection(plan.selection.as_json(), default_storage)}
    size = max(1, settings.SCENEIMG_VLM_BATCH_SIZE)
    ids = plan.selection.ids
    batches = [(f"b{n}", {**plan.stage, "image_ids": ids[i:i + size], "outputs": outputs, "batch_key": f"b{n}"})
               for n, i in enumerate(range(0, len(ids), size))]
    run = runs.launch(Run.Kind.VLM, jobs.filter_vlm_job, plan.params, queue=queues.VLM, user=user,
                      label=plan.label, batches=batches, parent=parent)
    if plan.selection.errors:
        runs.add_counters(run.pk, {"input_errors": len(plan.selection.errors)})
    return run
