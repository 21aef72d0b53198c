"""Thin RQ jobs for the Baidu stages: plain parameters in, the stage function does the work."""
from crawl import baidu, baidu_similar
from crawl.ingest import Filters
from curation import runs


def crawl_baidu_job(run_id, queries, limit_per_query=200, per_host=None, batch_size=20, debug=False,
                    output=None, label="", **filters):
    runs.run_job(run_id, lambda t: baidu.crawl_keywords(
        t, queries, limit_per_query=limit_per_query, per_host=per_host, batch_size=batch_size, debug=debug,
        output=output, label=label, filters=Filters.from_params(filters, debug=debug)))


def search_by_images_job(run_id, seeds, limit_per_seed=150, per_host=None, batch_size=16, max_concurrent=3,
                         dhash_threshold=18, dhash_min_distance=4, use_dhash=True, dedup=True, debug=False,
                         output=None, label="", **filters):
    runs.run_job(run_id, lambda t: baidu_similar.expand_seeds(
        t, seeds, limit_per_seed=limit_per_seed, per_host=per_host, batch_size=batch_size,
        max_concurrent=max_concurrent, dhash_threshold=dhash_threshold, dhash_min_distance=dhash_min_distance,
        use_dhash=use_dhash, dedup=dedup, debug=debug, output=output, label=label,
        filters=Filters.from_params(filters, debug=debug)))
