"""The parameters of a collect-until-kept collection and what one round of it crawls (crawl/collect.py
does the counting and starts the rounds). Plain functions of a Run's parameters, shared by the jobs,
the commands and the forms."""

from crawl import jobs
from curation import runs

COLLECT_KEYS = ("until_kept", "max_fetches", "round_pages", "round_seeds", "cursor", "round", "round_offset",
                "round_limit")


def collect_params(until_kept, *, max_fetches=None, round_pages=2, round_seeds=3, limit_per_query=200):
    """The parameters that make a crawl or expansion a collection, for its first round. Without a fetch
    budget, 50 results for each image wanted. A collection always runs the pipeline: it counts what the
    pipeline kept."""
    if not until_kept:
        return {}
    return {"until_kept": until_kept, "max_fetches": max_fetches or 50 * until_kept, "round_pages": round_pages,
            "round_seeds": round_seeds, "cursor": 0, "round": 1, "round_offset": 0,
            "round_limit": limit_per_query, "pipeline": True}


def is_collection(params):
    return bool(params.get("until_kept"))


def _plain(params):
    return {k: v for k, v in params.items() if k not in COLLECT_KEYS}


def round_of_crawl(params):
    """crawl_keywords' arguments for one round: the query under the cursor, from where the last round of
    that query stopped, for `round_pages` pages."""
    if not is_collection(params):
        return _plain(params)
    return {**_plain(params), "queries": [params["queries"][params["cursor"]]], "start": params["round_offset"],
            "max_pages": params["round_pages"], "limit_per_query": params["round_limit"]}


def round_of_similar(params):
    """expand_seeds' arguments for one round: the next `round_seeds` seeds."""
    if not is_collection(params):
        return _plain(params)
    cursor = params["cursor"]
    return {**_plain(params), "seeds": params["seeds"][cursor:cursor + params["round_seeds"]]}


def crawl_round_job(run_id, **params):
    runs.run_job(run_id, jobs.crawl_stage(round_of_crawl(params)))


def similar_round_job(run_id, **params):
    runs.run_job(run_id, jobs.similar_stage(round_of_similar(params)))
