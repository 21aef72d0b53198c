from pathlib import Path

from django.core.management.base import CommandError

from crawl import importers, jobs
from crawl.ingest import Filters, add_filter_arguments, filter_params
from curation.stage_command import StageCommand
from sceneimg_site import queues


class Command(StageCommand):
    help = "Fetch and import images from a file of URLs: one per line, or JSONL with url, page_url, title."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
        parser.add_argument("--label", default="", help="a name for this import, usable as a gallery filter")
        parser.add_argument("--workers", type=int, default=8, help="downloads at once (default 8)")
        add_filter_arguments(parser)
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        file = str(Path(opts["file"]).resolve())
        try:
            entries = importers.parse_url_list(importers.read_url_file(file))
        except importers.ImportError_ as exc:
            raise CommandError(str(exc)) from None
        filters = filter_params(opts)
        params = {"file": file, "label": opts["label"], "workers": opts["workers"], **filters}
        self.run_stage(
            "import",
            lambda t: importers.import_urls(t, entries, dry_run=opts["dry_run"], label=opts["label"],
                                            workers=opts["workers"], filters=Filters.from_params(filters)),
            params, job_func=jobs.import_urls_job, queue=queues.CRAWL, label=opts["label"],
            enqueue=opts["enqueue"], dry_run=opts["dry_run"],
        )
