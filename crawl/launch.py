"""One launch function per crawl stage, called by its command (--enqueue), its web form and its tests.

The `*_params` builders give the Run's parameters from flags or form fields alike, so the same work
launched either way has the same work key and is never enqueued twice.
"""
import argparse

from django.conf import settings
from django.utils import timezone

from crawl import batches, importers, jobs, rounds
from crawl import original as original_layout
from crawl.ingest import FILTER_KEYS
from curation import runs
from curation.models import Run
from curation.registry import LaunchError
from sceneimg_site import queues


def timestamp_label():
    """--timestamp-subdir: one label per run, also the subfolder name under --output."""
    return timezone.localtime().strftime("%Y%m%d-%H%M%S")


def _extras(options):
    """The ingest filters that were given, and the pipeline option when it is on (so a plain run's work
    key stays what it was)."""
    extras = {k: v for k, v in options.items() if k in FILTER_KEYS and v is not None}
    if options.get("pipeline"):
        extras["pipeline"] = True
    return extras


def add_pipeline_argument(parser):
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=None,
                        help="then CLIP, then the VLM for what CLIP kept, each as a child run on the workers "
                             "(default SCENEIMG_PIPELINE)")


def pipeline_option(opts):
    return settings.SCENEIMG_PIPELINE if opts.get("pipeline") is None else opts["pipeline"]


def add_collect_arguments(parser, *, unit):
    parser.add_argument("--until-kept", type=int, metavar="N",
                        help=f"collect until N new images passed the pipeline: {unit} after {unit}, each round's "
                             f"CLIP and VLM judging before the next (implies --pipeline)")
    parser.add_argument("--max-fetches", type=int, metavar="M",
                        help="with --until-kept: stop after M results in all (default 50 x N)")


def crawl_params(queries, *, limit_per_query=200, per_host=None, batch_size=20, debug=False, output=None,
                 label="", until_kept=None, max_fetches=None, round_pages=2, **options):
    return {"queries": list(queries), "limit_per_query": limit_per_query, "per_host": per_host,
            "batch_size": batch_size, "debug": debug, "output": output, "label": label,
            **_extras(options), **rounds.collect_params(until_kept, max_fetches=max_fetches, round_pages=round_pages,
                                                        limit_per_query=limit_per_query)}


def launch_crawl(params, user=None, *, parent=None):
    """Enqueue one keyword crawl as one job: queries run one after another from one cookie jar, as a
    browser would; spreading them over workers would only trip Baidu's anti-spider limits sooner.
    A collection's round runs the query under its cursor only (crawl/rounds.py)."""
    job = rounds.crawl_round_job if rounds.is_collection(params) else jobs.crawl_baidu_job
    return runs.launch(Run.Kind.CRAWL, job, params, queue=queues.CRAWL, label=params["label"], user=user,
                       parent=parent)


def similar_params(seeds, *, limit_per_seed=150, per_host=None, batch_size=16, max_concurrent=3,
                   dhash_threshold=18, dhash_min_distance=4, use_dhash=True, dedup=True, debug=False, output=None,
                   label="", until_kept=None, max_fetches=None, **options):
    return {"seeds": list(seeds), "limit_per_seed": limit_per_seed, "per_host": per_host,
            "batch_size": batch_size, "max_concurrent": max_concurrent, "dhash_threshold": dhash_threshold,
            "dhash_min_distance": dhash_min_distance, "use_dhash": use_dhash, "dedup": dedup, "debug": debug,
            "output": output, "label": label, **_extras(options),
            **rounds.collect_params(until_kept, max_fetches=max_fetches, round_seeds=max(1, max_concurrent),
                                    limit_per_query=limit_per_seed)}


def launch_similar(params, user=None, *, parent=None):
    """Enqueue one expansion as batches of --max-concurrent seeds, one job each, that any number of
    workers share (the seeds of a batch are searched at once). Seed files must be readable by the
    worker: the command and the web form put seed files in media storage first. A collection's round
    expands the seeds under its cursor only, as one job (crawl/rounds.py)."""
    if rounds.is_collection(params):
        return runs.launch(Run.Kind.SIMILAR, rounds.similar_round_job, params, queue=queues.CRAWL,
                           label=params["label"], user=user, parent=parent)
    seeds, size = list(params["seeds"]), max(1, params.get("max_concurrent") or 1)
    parts = [seeds[i:i + size] for i in range(0, len(seeds), size)] or [[]]
    run = runs.launch(Run.Kind.SIMILAR, jobs.search_by_images_batch_job, params, queue=queues.CRAWL,
                      label=params["label"], user=user, parent=parent,
                      batches=[(f"s{i}", {**params, "seeds": part}) for i, part in enumerate(parts)])
    Run.objects.filter(pk=run.pk, total__isnull=True).update(total=len(seeds) * params["limit_per_seed"])
    return run


def import_folder_params(path, *, recursive=False, label="", **options):
    return {"path": str(path), "recursive": recursive, "label": label, **_extras(options)}


def _launch_batches(job, params, todo, *, user, label, key):
    """One Run whose work is split into batches of `todo`, one RQ job each: any number of workers share
    them, and the run is done when the last batch is."""
    parts = batches.chunks(todo) or [[]]  # no items: one empty batch still ends the run
    run = runs.launch(Run.Kind.IMPORT, job, params, queue=queues.CRAWL, user=user, label=label,
                      batches=[(f"b{i}", {**params, key: part}) for i, part in enumerate(parts)])
    Run.objects.filter(pk=run.pk, total__isnull=True).update(total=len(todo))
    return run


def launch_import_folder(params, user=None):
    recursive = params.get("recursive") or original_layout.has_index(params["path"])
    try:
        files, outside = importers.list_images(params["path"], recursive)
    except importers.ImportSourceError as exc:
        raise LaunchError(str(exc)) from None
    run = _launch_batches(jobs.import_folder_batch_job, params, [str(f) for f in files], user=user, key="files",
                          label=params["label"] or f"folder {params['path']}"[:200])
    if outside and not run.counters.get("skipped"):
        runs.add_counters(run.pk, {"skipped": len(outside)})
        Run.objects.filter(pk=run.pk).update(total=len(files) + len(outside))
        importers.note_outside(run, outside)
    return run


def import_urls_params(file, *, label="", workers=8, per_host=None, **options):
    # per_host only when given, so a list launched without it keeps the work key it always had.
    extra = {"per_host": per_host} if per_host else {}
    return {"file": str(file), "label": label, "workers": workers, **extra, **_extras(options)}


def launch_import_urls(params, user=None):
    try:
        entries = importers.parse_url_list(importers.read_url_file(params["file"]))
    except importers.ImportSourceError as exc:
        raise LaunchError(str(exc)) from None
    return _launch_batches(jobs.import_urls_batch_job, params, entries, user=user, key="entries",
                           label=params["label"] or "URL list")
