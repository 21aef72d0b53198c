from pathlib import Path

from django.core.management.base import CommandError

from crawl import importers, jobs
from crawl.ingest import Filters, add_filter_arguments, filter_params
from curation.stage_command import StageCommand
from sceneimg_site import queues


class Command(StageCommand):
    help = ("Import a folder of images, including folders written by the original scripts "
            "(sidecar <name>.json, _global_index.jsonl, _filtered_index.jsonl).")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--recursive", action="store_true", help="also import subfolders")
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
        parser.add_argument("--label", default="", help="a name for this import, usable as a gallery filter")
        add_filter_arguments(parser)
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        path = str(Path(opts["path"]).resolve())
        if not Path(path).is_dir():
            raise CommandError(f"{opts['path']} is not a folder")
        filters = filter_params(opts)
        params = {"path": path, "recursive": opts["recursive"], "label": opts["label"], **filters}
        self.run_stage(
            "import",
            lambda t: importers.import_folder(t, path, recursive=opts["recursive"], dry_run=opts["dry_run"],
                                              label=opts["label"], filters=Filters.from_params(filters)),
            params, job_func=jobs.import_folder_job, queue=queues.CRAWL, label=opts["label"],
            enqueue=opts["enqueue"], dry_run=opts["dry_run"],
        )
