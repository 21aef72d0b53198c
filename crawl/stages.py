"""Everything crawl adds to curation's pages and runs, registered from CrawlConfig.ready()."""
from urllib.parse import urlsplit

from crawl import batches, collect, expand_kept, filters, forms, launch
from crawl.models import Source
from curation import registry
from curation.models import Run


def _sources(image):
    return {"sources": list(image.sources.order_by("pk")[:200])}


def _export_sources(image):
    return {"sources": [
        {"provider": s.provider, "url": s.url, "page_url": s.page_url, "title": s.title, "query": s.query,
         "seed_image_id": s.seed_image_id, "seed_name": s.seed_name, "rank": s.rank, "outcome": s.outcome}
        for s in image.sources.all()
    ]}


def _csv_sources(row):
    return {"source_urls": " ".join(s["url"] for s in row["sources"] if s["url"]),
            "queries": "; ".join(sorted({s["query"] for s in row["sources"] if s["query"]}))}


def _provenance(row):
    sources = row["sources"]

    def joined(values, sep="; "):
        return sep.join(sorted({v for v in values if v}))

    return {"source_urls": " ".join(s["url"] for s in sources if s["url"]),
            "page_urls": " ".join(s["page_url"] for s in sources if s["page_url"]),
            "queries": joined(s["query"] for s in sources),
            "seeds": joined(f"#{s['seed_image_id']}" if s["seed_image_id"] else s["seed_name"] for s in sources),
            "providers": joined(s["provider"] for s in sources)}


def _facts(ids):
    """Where each image first came from, in a few words (a group's members side by side)."""
    out = {}
    sources = (Source.objects.filter(image_id__in=list(ids)).order_by("image_id", "id")
               .only("image_id", "provider", "query", "url", "path", "seed_image_id", "seed_name"))
    for s in sources:
        if s.image_id in out:
            continue
        where = s.query or (urlsplit(s.url).hostname if s.url else "") or (s.path.rsplit("/", 1)[-1] if s.path else "")
        seed = f"seed #{s.seed_image_id}" if s.seed_image_id else s.seed_name
        out[s.image_id] = " · ".join(part for part in (s.get_provider_display(), where, seed) if part)
    return out


def _failures(run):
    failed = Source.objects.filter(run=run, outcome__in=[Source.Outcome.ERROR, Source.Outcome.INVALID])
    return {"failures": list(failed.order_by("-id").only("url", "path", "outcome", "reason", "query")[:200])}


def register():
    registry.register_stage("crawl", "Baidu keyword crawl", forms.KeywordCrawlForm, launch.launch_crawl, order=10)
    registry.register_stage("similar", "Baidu reverse-image expansion", forms.SimilarForm, launch.launch_similar,
                            order=20)
    registry.register_stage("expand_kept", "Reverse-image expansion of kept images", forms.ExpandKeptForm,
                            expand_kept.launch_expand_kept, order=25)
    registry.register_pipeline_end(collect.pipeline_ended)
    registry.register_run_panel("crawl/_run_collect.html", collect.run_panel, order=5)
    registry.register_stage("import_folder", "Folder import", forms.FolderImportForm, launch.launch_import_folder,
                            order=30)
    registry.register_stage("import_urls", "URL-list import", forms.UrlListForm, launch.launch_import_urls, order=40)
    registry.register_filter(filters.FIELDS, filters.sighted, order=10)
    registry.register_filter_panel("crawl/_filters_source.html", filters.panel_choices, order=10)
    registry.register_detail_panel("crawl/_detail_sources.html", _sources, order=10)
    registry.register_run_panel("crawl/_run_failures.html", _failures, order=10)
    registry.register_export_fields(_export_sources, prefetch=("sources",), csv=_csv_sources,
                                    csv_columns=("source_urls", "queries"), order=20)
    registry.register_run_images(filters.images_of_runs)
    registry.register_image_facts(_facts)
    registry.register_reconcile((Run.Kind.IMPORT, Run.Kind.CRAWL, Run.Kind.SIMILAR), batches.reconcile_counters)
    registry.register_provenance(("providers", "source_urls", "page_urls", "queries", "seeds"), _provenance,
                                 order=10)
