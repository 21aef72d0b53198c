"""Collect until N kept: a keyword crawl or a reverse-image expansion that goes on, query after query
and page after page (seed after seed), until N of the images it brought in have passed the pipeline.

A collection is a tree of runs. Its first round is the root run; each later round is a child of the
root, and each round has its own pipeline (CLIP, then the VLM) as its children. When a round's
pipeline ends, `pipeline_ended` counts what the whole collection kept and either launches the next
round or says on the root why it stopped: N kept, the fetch budget used, or nothing left to search.
Counting happens only between rounds, so a collection may end with a few more than N kept.
"""
from django.db import transaction
from django.db.models import Count, Q

from crawl import launch
from crawl.models import Source
from crawl.rounds import is_collection
from curation.models import Decision, Run

MAX_ROUNDS = 500  # a guard on top of the fetch budget: every round moves the cursor, so this is never reached
KEPT = Decision.KEEP


def root_of(run):
    """The collection's root run of any run in its tree (a round or a pipeline stage), or None."""
    seen = 0
    while run.parent_id is not None and seen < 10:
        run = Run.objects.only("pk", "parent_id", "kind", "params").get(pk=run.parent_id)
        seen += 1
    return run if run.parent_id is None and is_collection(run.params) else None


def round_containing(run, root):
    """The round (root, or a child of the root of the same kind) whose pipeline `run` belongs to."""
    while run is not None:
        if run.kind == root.kind and (run.pk == root.pk or run.parent_id == root.pk):
            return run
        run = Run.objects.filter(pk=run.parent_id).first() if run.parent_id else None
    return None


def rounds(root):
    return Run.objects.filter(Q(pk=root.pk) | Q(parent_id=root.pk, kind=root.kind))


def totals(root):
    """(results processed, new images stored, new images kept) over every round of a collection."""
    sources = Source.objects.filter(run__in=rounds(root))
    stored = sources.filter(outcome=Source.Outcome.STORED)
    return (sources.count(), stored.values("image_id").distinct().count(),
            stored.filter(image__final_decision=KEPT).values("image_id").distinct().count())


def yields(root):
    """Per query (or per seed): results processed, new images, new images kept, and kept per result."""
    by = "query" if root.kind == Run.Kind.CRAWL else "seed_image_id"
    rows = (Source.objects.filter(run__in=rounds(root)).values(by, "seed_name")
            .annotate(fetched=Count("id"),
                      new=Count("image_id", filter=Q(outcome=Source.Outcome.STORED), distinct=True),
                      kept=Count("image_id", filter=Q(outcome=Source.Outcome.STORED,
                                                      image__final_decision=KEPT), distinct=True))
            .order_by("-kept", "-fetched"))
    out = []
    for row in rows:
        name = row[by] if by == "query" else (f"image #{row[by]}" if row[by] else row["seed_name"])
        out.append({"name": name or "(none)", "fetched": row["fetched"], "new": row["new"], "kept": row["kept"],
                    "rate": f"{100 * row['kept'] / row['fetched']:.0f}%" if row["fetched"] else "–"})
    return out


def next_cursor(root, last):
    """Where the round after `last` starts: (cursor, offset within the query, its limit), or None when
    nothing is left to search."""
    p = last.params
    if root.kind == Run.Kind.SIMILAR:
        cursor = p["cursor"] + p["round_seeds"]
        return (cursor, 0, p["round_limit"]) if cursor < len(p["seeds"]) else None
    counters = last.counters or {}
    query = p["queries"][p["cursor"]]
    stored_for_query = Source.objects.filter(run__in=rounds(root), query=query,
                                             outcome=Source.Outcome.STORED).count()
    left = root.params["limit_per_query"] - stored_for_query
    if counters.get("_query_ended") or not counters.get("_offset") or left <= 0 or last.error:
        cursor = p["cursor"] + 1
        return (cursor, 0, root.params["limit_per_query"]) if cursor < len(p["queries"]) else None
    return p["cursor"], p.get("round_offset", 0) + counters["_offset"], left


def pipeline_ended(run):
    """A pipeline branch ended after `run`: if it belongs to a collection, go on with the next round or
    say why the collection stopped. Runs inside the root's row lock, so a round starts at most once."""
    root = root_of(run)
    if root is None:
        return None
    with transaction.atomic():
        root = Run.objects.select_for_update().get(pk=root.pk)
        last = rounds(root).order_by("-pk").first()
        if round_containing(run, root) != last or last.status != Run.Status.DONE:
            return None  # an older round's pipeline, or a round that was cancelled or failed
        return _advance(root, last)


def _advance(root, last):
    fetched, _, kept = totals(root)
    wanted, budget = root.params["until_kept"], root.params["max_fetches"]
    step = next_cursor(root, last)
    number = last.params["round"]
    stop = None
    if kept >= wanted:
        stop = f"collected: {kept} kept of {wanted} wanted, {fetched} results in {number} rounds"
    elif fetched >= budget:
        stop = f"stopped: the budget of {budget} results is used; {kept} kept of {wanted} wanted"
    elif step is None:
        what = "queries" if root.kind == Run.Kind.CRAWL else "seeds"
        stop = f"stopped: no {what} left to search; {kept} kept of {wanted} wanted, {fetched} results"
    elif number >= MAX_ROUNDS:
        stop = f"stopped after {number} rounds; {kept} kept of {wanted} wanted"
    if stop:
        Run.objects.filter(pk=root.pk).update(notice=stop[:500])
        return None
    cursor, offset, limit = step
    params = {**root.params, "cursor": cursor, "round": number + 1, "round_offset": offset, "round_limit": limit}
    Run.objects.filter(pk=root.pk).update(
        notice=f"collecting: {kept} kept of {wanted} wanted, {fetched} of {budget} results; round {number + 1}")
    starter = launch.launch_crawl if root.kind == Run.Kind.CRAWL else launch.launch_similar
    return starter(params, root.created_by, parent=root)


def run_panel(run):
    """The collection's yield on its root run's page (and a pointer to the root on a round's)."""
    if not is_collection(run.params):
        return {}
    if run.parent_id is not None:
        return {"collect_root_id": run.parent_id, "collect_round": run.params.get("round")}
    fetched, new, kept = totals(run)
    return {"collect_yield": {"wanted": run.params["until_kept"], "budget": run.params["max_fetches"], "fetched": fetched,
                        "new": new, "kept": kept, "rounds": rounds(run).count(), "yields": yields(run),
                        "by": "query" if run.kind == Run.Kind.CRAWL else "seed"}}
