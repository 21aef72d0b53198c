"""Thin RQ jobs for crawl's stages: plain parameters in, the stage function does the work.

Each `<stage>_stage(params)` turns a Run's parameters into the call of its stage function; the job
and the command's foreground run both use it, so they cannot drift apart.
"""
from crawl import baidu, baidu_similar, importers
from crawl.ingest import FILTER_KEYS, Filters
from curation import runs


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


def import_folder_stage(params, *, dry_run=False):
    p, filters = _split(params)
    return lambda t: importers.import_folder(t, p["path"], recursive=p.get("recursive", False), dry_run=dry_run,
                                             label=p.get("label", ""), filters=filters)


def import_urls_stage(params, *, entries=None, dry_run=False):
    p, filters = _split(params)

    def stage(t):
        todo = entries if entries is not None else importers.parse_url_list(importers.read_url_file(p["file"]))
        return importers.import_urls(t, todo, dry_run=dry_run, label=p.get("label", ""),
                                     workers=p.get("workers", 8), filters=filters)

    return stage


def crawl_baidu_job(run_id, **params):
    runs.run_job(run_id, crawl_stage(params))


def search_by_images_job(run_id, **params):
    runs.run_job(run_id, similar_stage(params))


def import_folder_job(run_id, **params):
    runs.run_job(run_id, import_folder_stage(params))


def import_urls_job(run_id, **params):
    runs.run_job(run_id, import_urls_stage(params))
