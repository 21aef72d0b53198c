"""One launch function per curation stage: CLIP, near-duplicates, export and bulk review.

Each takes plain parameters (what its command's flags and its web form both produce) and the user,
and returns the Run: a new one on its queue, or the identical one already queued or running.
"""
from django.conf import settings

from curation import embed, embeddings, export, gallery, jobs, learned, review, runs, snapshots, vector_index
from curation.clip import ModelConfigError, load_prompt_set
from curation.export import DEFAULT_FILTER, DEFAULT_SHARD_SIZE, FORMATS
from curation.models import Run
from curation.registry import LaunchError
from curation.rescore import RescoreError, check_rule
from curation.scoring import DecisionRule, InputError, key_for_settings, select_image_ids
from sceneimg_site import queues

RULE_KEYS = ("indoor_margin", "moderate_margin", "object_count_min", "object_count_max", "detector_threshold")


def clip_params(input_spec="all", *, limit=None, device=None, batch_size=None, label="", pipeline=False, **rule):
    params = {"input": str(input_spec), "limit": limit, "device": device, "batch_size": batch_size,
              "label": label, **DecisionRule(**rule).as_params()}
    if pipeline:
        params["pipeline"] = True  # only then, so the work key of a plain run stays what it was
    return params


def clip_batches(image_ids, rule, *, device=None, batch_size=None, job_size=None):
    """(key, kwargs) per job. Keys are the id range, so the same work always gets the same job ids."""
    job_size = job_size or settings.SCENEIMG_CLIP_JOB_SIZE
    ids = sorted(image_ids)
    return [(f"{chunk[0]}-{chunk[-1]}", {"image_ids": chunk, "rule": rule.as_params(), "device": device,
                                        "batch_size": batch_size})
            for chunk in (ids[i:i + job_size] for i in range(0, len(ids), job_size))]


def launch_clip(params, user=None, *, image_ids=None, parent=None):
    """Queue a CLIP run over the selected images, split into batches any score worker can take."""
    p = dict(params)
    label = p.pop("label", "")
    rule = DecisionRule(**{k: p[k] for k in RULE_KEYS if k in p})
    if image_ids is None:
        try:
            image_ids = select_image_ids(p["input"], key_for_settings(rule), p.get("limit"))
        except InputError as exc:
            raise LaunchError(str(exc)) from None
    if not image_ids:
        raise LaunchError(f"Nothing to score for input {p['input']!r}: every image is already scored this way.")
    run = runs.launch(Run.Kind.CLIP, jobs.clip_batch_job, p, queue=queues.SCORE, user=user, label=label,
                      batches=clip_batches(image_ids, rule, device=p.get("device"), batch_size=p.get("batch_size")),
                      parent=parent)
    if run.total is None:
        Run.objects.filter(pk=run.pk, total__isnull=True).update(total=len(image_ids))
    return run


def embed_params(input_spec="all", *, limit=None, device=None, batch_size=None, label=""):
    return {"input": str(input_spec), "limit": limit, "device": device, "batch_size": batch_size, "label": label}


def launch_embed(params, user=None, *, image_ids=None):
    """Queue an embed run over the selected images that have no embedding, in CLIP-sized batches."""
    p = dict(params)
    label = p.pop("label", "")
    if image_ids is None:
        try:
            image_ids = embed.select_ids(p["input"], limit=p.get("limit"))
        except InputError as exc:
            raise LaunchError(str(exc)) from None
    if not image_ids:
        raise LaunchError(f"Nothing to embed for input {p['input']!r}: every image has an embedding.")
    job_size = settings.SCENEIMG_CLIP_JOB_SIZE
    ids = sorted(image_ids)
    batches = [(f"{chunk[0]}-{chunk[-1]}", {"image_ids": chunk, "device": p.get("device"),
                                           "batch_size": p.get("batch_size")})
               for chunk in (ids[i:i + job_size] for i in range(0, len(ids), job_size))]
    run = runs.launch(embed.KIND, jobs.embed_batch_job, p, queue=queues.SCORE, user=user, label=label,
                      batches=batches)
    if run.total is None:
        Run.objects.filter(pk=run.pk, total__isnull=True).update(total=len(ids))
    return run


def index_params(*, rebuild=False, label=""):
    return {"model_key": embeddings.current_key(), "rebuild": bool(rebuild), "label": label}


def launch_index(params, user=None):
    """Queue a sync of the vector index (or a rebuild from the stored embeddings)."""
    p = dict(params)
    label = p.pop("label", "") or ("rebuild the vector index" if p.get("rebuild") else "update the vector index")
    return runs.launch(vector_index.KIND, jobs.index_job, p, queue=queues.DEFAULT, user=user, label=label)


def rescore_params(prompts=None, *, device=None, label="", **rule):
    """A CLIP run from stored embeddings: `prompts` is a prompt set version (default SCENEIMG_CLIP_PROMPTS)."""
    return {"rescore": True, "prompts": prompts or settings.SCENEIMG_CLIP_PROMPTS, "device": device, "label": label,
            **DecisionRule(**rule).as_params()}


def launch_rescore(params, user=None):
    """Queue a rescore of every embedded image (a CLIP run that decodes nothing)."""
    p = dict(params)
    label = p.pop("label", "") or f"rescore from embeddings, prompts {p['prompts']}, indoor margin {p['indoor_margin']:g}"
    rule = DecisionRule(**{k: p[k] for k in RULE_KEYS if k in p})
    try:
        check_rule(rule)
        load_prompt_set(p["prompts"])
    except (RescoreError, ModelConfigError) as exc:
        raise LaunchError(str(exc)) from None
    return runs.launch(Run.Kind.CLIP, jobs.rescore_job, p, queue=queues.DEFAULT, user=user, label=label[:200])


def train_params(*, label=""):
    return {"model_key": embeddings.current_key(), "last_review": learned.last_review_id(), "label": label}


def launch_train(params, user=None):
    """Queue training a new learned-scorer version on every human decision so far (then applying it)."""
    p = dict(params)
    label = p.pop("label", "") or "train the learned scorer"
    return runs.launch(learned.KIND, jobs.train_job, p, queue=queues.DEFAULT, user=user, label=label[:200])


def retrain_if_due(user=None):
    """What the review path calls after recording decisions: a training run when enough new ones came in
    (curation.learned.retrain_due), else None."""
    return launch_train(train_params(label="retrain after new human decisions"), user) if learned.retrain_due() else None


def dedup_params(threshold=None, *, label=""):
    k = settings.SCENEIMG_NEARDUP_THRESHOLD if threshold is None else int(threshold)
    if not 0 <= k <= 32:
        raise LaunchError("threshold must be between 0 and 32 bits")
    return {"threshold": k, "label": label}


def launch_dedup(params, user=None):
    p = dict(params)
    label = p.pop("label", "")
    return runs.launch(Run.Kind.DEDUP, jobs.find_duplicates_job, p, queue=queues.DEFAULT, user=user, label=label)


def export_params(filter_string=DEFAULT_FILTER, fmt="zip", *, out=None, label="", name="", shard_size=None,
                  snapshot=None):
    """An export run's parameters: freeze `filter_string` as a new snapshot, or write `snapshot` again."""
    if snapshot is not None:
        params = {"snapshot": int(snapshot), "format": fmt, "label": label}
    else:
        params = {"filter": (filter_string or "").strip().lstrip("?"), "format": fmt, "label": label}
        if name:
            params["name"] = name
    if fmt == "webdataset":
        params["shard_size"] = int(shard_size or DEFAULT_SHARD_SIZE)
    if out:
        params["out"] = str(out)
    return params


def launch_export(params, user=None):
    """Queue an export run (or return the identical one already queued or running)."""
    p = dict(params)
    label = p.pop("label", "")
    if p["format"] not in FORMATS:
        raise LaunchError(f"format must be one of {', '.join(FORMATS)}, not {p['format']!r}")
    if p.get("shard_size") is not None and p["shard_size"] < 1:
        raise LaunchError("shard size must be at least 1")
    if "snapshot" in p:
        if not snapshots.complete().filter(pk=p["snapshot"]).exists():
            raise LaunchError(f"snapshot #{p['snapshot']} does not exist (or never finished freezing)")
        label = label or f"export snapshot #{p['snapshot']} as {p['format']}"
    else:
        try:
            export.check_filter(p["filter"])
        except export.ExportError as exc:
            raise LaunchError(f"filter: {exc}") from None
        label = label or f"export {p['filter'] or 'all images'}"
    if runs.active_duplicate(Run.Kind.EXPORT, p) is None:  # asking again for the same export is no new work
        try:
            export.check_user_limit(user)
        except export.ExportError as exc:
            raise LaunchError(str(exc)) from None
    return runs.launch(Run.Kind.EXPORT, jobs.export_job, p, queue=queues.EXPORT, user=user, label=label[:200])


def request_bulk(params, decision, user, note=""):
    """Decide everything matching a filter: at once when it is small, else as a background Run.

    Returns ("done", reviews) or ("queued", run).
    """
    decision = review.parse_decision(decision)
    querystring = gallery.querystring_without(params, "after", "sort")
    gallery.filter_images(querystring)  # raise FilterError now, not in the worker
    limit = review.sync_limit()
    ids = review.matching_ids(querystring, limit + 1)
    if len(ids) <= limit:
        return "done", review.set_decision(ids, decision, user, note=note)
    return "queued", launch_review(
        {"querystring": querystring, "decision": decision or "clear", "user_id": user.pk, "note": note[:200]}, user)


def launch_review(params, user):
    label = f"{params['decision']} all matching ?{params['querystring']}"[:200]
    return runs.launch(Run.Kind.REVIEW, jobs.decide_matching_job, params, queue=queues.DEFAULT, user=user,
                       label=label)


def launch_undo_review(run, user):
    """Undo a bulk review run in the background (it may have touched millions of images)."""
    if run.kind != Run.Kind.REVIEW or run.params.get("action", "decide") != "decide":
        raise review.ReviewError(f"run #{run.pk} is not a bulk review run")
    if run.created_by_id is None or run.created_by_id != user.pk:
        raise review.ReviewError(f"run #{run.pk} was started by someone else: only they can undo it")
    if run.is_active:
        # Undoing while it still decides would leave the images it reaches afterwards decided.
        raise review.ReviewError(f"run #{run.pk} is still {run.status}: cancel it or wait until it ends, then undo")
    return runs.launch(Run.Kind.REVIEW, jobs.undo_run_job, {"action": "undo", "target_run": run.pk, "user_id": user.pk},
                       queue=queues.DEFAULT, label=f"undo bulk review run #{run.pk}", user=user)
