from pathlib import Path

from django.core.management.base import CommandError

from crawl import batches, importers, jobs, launch
from crawl.ingest import add_filter_arguments, filter_params
from curation.models import Run
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = "Fetch and import images from a file of URLs: one per line, or JSONL with url, page_url, title."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
        parser.add_argument("--label", default="", help="a name for this import, usable as a gallery filter")
        parser.add_argument("--workers", type=int, default=8, help="downloads at once in each process (default 8)")
        parser.add_argument("--per-host", type=int, help="downloads at once per host, every process and worker "
                                                         "together (default SCENEIMG_FETCH_PER_HOST)")
        parser.add_argument("--processes", type=int, default=batches.default_processes(),
                            help="processes preparing pictures at once, each with its own download threads; "
                                 "rows are written by this one (default: the number of cores)")
        add_filter_arguments(parser)
        launch.add_pipeline_argument(parser)
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        if opts["processes"] < 1:
            raise CommandError("--processes must be at least 1")
        file = str(Path(opts["file"]).resolve())
        try:
            entries = importers.parse_url_list(importers.read_url_file(file))
        except importers.ImportSourceError as exc:
            raise CommandError(str(exc)) from None
        params = launch.import_urls_params(file, label=opts["label"], workers=opts["workers"],
                                           per_host=opts["per_host"], **filter_params(opts),
                                           pipeline=launch.pipeline_option(opts))
        self.run_stage(Run.Kind.IMPORT, jobs.import_urls_stage(params, entries=entries, dry_run=opts["dry_run"], processes=opts["processes"]),
                       params, launch=launch.launch_import_urls, label=opts["label"], enqueue=opts["enqueue"],
                       dry_run=opts["dry_run"])
