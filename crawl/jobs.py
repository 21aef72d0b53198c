"""Thin RQ jobs for crawl's stages: plain parameters in, the stage function does the work.

Each `<stage>_stage(params)` turns a Run's parameters into the call of its stage function; the job
and the command's foreground run both use it, so they cannot drift apart.
"""
import logging

from crawl import baidu, baidu_similar, batches, importers
from crawl.ingest import FILTER_KEYS, Filters, Sighting
from crawl.models import Source
from curation import runs

log = logging.getLogger(__name__)


def _split(params):
    p = dict(params)
    p.pop("pipeline", None)  # what follows the run, not how it runs
    filters = {k: p.pop(k) for k in FILTER_KEYS if k in p}
    return p, Filters.from_params(filters, debug=p.get("debug", False))


def crawl_stage(params):
    p, filters = _split(params)
    return lambda t: baidu.crawl_keywords(t, p.pop("queries"), filters=filters, **p)


def similar_stage(params):
    p, filters = _split(params)
    return lambda t: baidu_similar.expand_seeds(t, p.pop("seeds"), filters=filters, **p)


def import_folder_stage(params, *, dry_run=False, processes=1, files=None):
    p, filters = _split(params)
    return lambda t: importers.import_folder(t, p["path"], recursive=p.get("recursive", False), dry_run=dry_run,
                                             label=p.get("label", ""), filters=filters, processes=processes,
                                             files=files)


def import_urls_stage(params, *, entries=None, dry_run=False, processes=1, batch=False):
    p, filters = _split(params)

    def stage(t):
        todo = entries if entries is not None else importers.parse_url_list(importers.read_url_file(p["file"]))
        return importers.import_urls(t, todo, dry_run=dry_run, label=p.get("label", ""), batch=batch,
                                     workers=p.get("workers", 8), per_host=p.get("per_host"), filters=filters,
                                     processes=processes)

    return stage


def batch_stage(run_id, work, sightings):
    """One batch of a queued run: an exception fails this batch's items only, not the run."""
    def stage(t):
        try:
            work(t)
        except runs.Cancelled:
            raise
        except Exception as exc:
            log.exception("batch of run %s failed", run_id)
            t.count("error", batches.fail(run_id, sightings, exc))

    return stage


def crawl_baidu_job(run_id, **params):
    runs.run_job(run_id, crawl_stage(params))


def search_by_images_job(run_id, **params):
    runs.run_job(run_id, similar_stage(params))


def search_by_images_batch_job(run_id, **params):
    """One batch of seeds of a reverse-image expansion; any number of workers share a run's batches."""
    runs.run_job(run_id, similar_stage({**params, "batch": True}))


def import_folder_job(run_id, **params):
    runs.run_job(run_id, import_folder_stage(params))


def import_urls_job(run_id, **params):
    runs.run_job(run_id, import_urls_stage(params))


def import_urls_batch_job(run_id, entries, **params):
    """One batch of a URL-list import; any number of workers share a run's batches."""
    entries = [tuple(e) for e in entries]
    sightings = [importers.url_sighting(e, params.get("label", "")) for e in entries]
    runs.run_job(run_id, batch_stage(run_id, import_urls_stage(params, entries=entries, batch=True), sightings))


def import_folder_batch_job(run_id, files, **params):
    """One batch of a folder import: these files of the folder."""
    sightings = [Sighting(provider=Source.Provider.FOLDER, path=f) for f in files]
    runs.run_job(run_id, batch_stage(run_id, import_folder_stage(params, files=files), sightings))
