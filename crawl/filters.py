"""Gallery filters on where an image was found, registered with curation's gallery."""
from django.db.models import Exists, OuterRef, Q

from crawl.models import Source
from curation.gallery import FilterError, one, whole_number
from curation.models import Run

FIELDS = {
    "run": "images with a source in this run (Run id)",
    "provider": "images with a source from this provider (baidu, baidu_similar, url_list, folder, upload)",
    "query": "images found by this exact search query",
    "seed": "images found from this seed: a seed image id, or a seed file name",
}


def sighted(qs, qd):
    """Images with one Source that meets every sighting condition in the querystring."""
    cond = Q()
    run_id = whole_number(qd, "run")
    if run_id is not None:
        cond &= Q(run_id=run_id)
    provider = one(qd, "provider")
    if provider is not None:
        if provider not in Source.Provider.values:
            raise FilterError(f"provider: expected one of {', '.join(Source.Provider.values)}, got {provider!r}")
        cond &= Q(provider=provider)
    query = one(qd, "query")
    if query is not None:
        cond &= Q(query=query)
    seed = one(qd, "seed")
    if seed is not None:
        cond &= Q(seed_image_id=int(seed)) if seed.isascii() and seed.isdigit() else Q(seed_name=seed)
    if not cond:
        return qs
    return qs.filter(Exists(Source.objects.filter(cond, image=OuterRef("pk"))))


def panel_choices(params):
    """The sidebar's run and provider choices. The filtered run stays selectable even when older than
    the newest 100, or the next filter change would silently drop it."""
    fields = ("pk", "kind", "label", "created_at")
    runs = list(Run.objects.filter(kind__in=[Run.Kind.CRAWL, Run.Kind.SIMILAR, Run.Kind.IMPORT])
                .only(*fields)[:100])
    run_text = (params.get("run") or "").strip()
    if run_text.isascii() and run_text.isdigit() and all(str(run.pk) != run_text for run in runs):
        current = Run.objects.filter(pk=int(run_text)).only(*fields).first()
        if current is not None:
            runs.append(current)
    return {"runs": runs, "providers": Source.Provider.choices}


def images_of_runs(runs):
    return Source.objects.filter(run__in=runs, image__isnull=False).values("image_id")
