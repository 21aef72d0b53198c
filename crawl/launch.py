"""Parameters shared by the Baidu commands and the admin launch forms, so both start the same run."""
from django.utils import timezone

from crawl import baidu, baidu_jobs, baidu_similar
from crawl.ingest import FILTER_KEYS, Filters
from curation import runs
from sceneimg_site import queues


def timestamp_label():
    """--timestamp-subdir: one label per run, also the subfolder name under --output."""
    return timezone.localtime().strftime("%Y%m%d-%H%M%S")


def crawl_params(queries, *, limit_per_query=200, per_host=None, batch_size=20, debug=False, output=None,
                 label="", **filters):
    return {"queries": list(queries), "limit_per_query": limit_per_query, "per_host": per_host,
            "batch_size": batch_size, "debug": debug, "output": output, "label": label,
            **{k: v for k, v in filters.items() if k in FILTER_KEYS and v is not None}}


def crawl_stage(params):
    p = dict(params)
    filters = {k: p.pop(k) for k in FILTER_KEYS if k in p}
    return lambda t: baidu.crawl_keywords(t, p.pop("queries"), filters=Filters.from_params(filters, debug=p["debug"]),
                                          **p)


def launch_crawl(params, user=None):
    """Enqueue one keyword crawl as one job: queries run one after another from one cookie jar, as a
    browser would; spreading them over workers would only trip Baidu's anti-spider limits sooner."""
    return runs.launch("crawl", baidu_jobs.crawl_baidu_job, params, queue=queues.CRAWL, label=params["label"],
                       user=user)


def similar_params(seeds, *, limit_per_seed=150, per_host=None, batch_size=16, max_concurrent=3,
                   dhash_threshold=18, dhash_min_distance=4, use_dhash=True, dedup=True, debug=False, output=None,
                   label="", **filters):
    return {"seeds": list(seeds), "limit_per_seed": limit_per_seed, "per_host": per_host,
            "batch_size": batch_size, "max_concurrent": max_concurrent, "dhash_threshold": dhash_threshold,
            "dhash_min_distance": dhash_min_distance, "use_dhash": use_dhash, "dedup": dedup, "debug": debug,
            "output": output, "label": label,
            **{k: v for k, v in filters.items() if k in FILTER_KEYS and v is not None}}


def similar_stage(params):
    p = dict(params)
    filters = {k: p.pop(k) for k in FILTER_KEYS if k in p}
    return lambda t: baidu_similar.expand_seeds(t, p.pop("seeds"),
                                                filters=Filters.from_params(filters, debug=p["debug"]), **p)


def launch_similar(params, user=None):
    """Enqueue one expansion as one job (--max-concurrent seeds at once inside it). Seed files must be
    readable by the worker: the command and the admin put seed files in media storage first."""
    return runs.launch("similar", baidu_jobs.search_by_images_job, params, queue=queues.CRAWL,
                       label=params["label"], user=user)
