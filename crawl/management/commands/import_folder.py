from pathlib import Path

from django.core.management.base import CommandError

from crawl import batches, jobs, launch
from crawl.ingest import add_filter_arguments, filter_params
from curation.models import Run
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Import a folder of images, including folders written by the original scripts "
            "(sidecar <name>.json, _global_index.jsonl, _filtered_index.jsonl).")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--recursive", action="store_true",
                            help="also import subfolders (always, for a folder holding an original index file)")
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
        parser.add_argument("--label", default="", help="a name for this import, usable as a gallery filter")
        parser.add_argument("--processes", type=int, default=batches.default_processes(),
                            help="processes preparing pictures at once, each with its own download threads; "
                                 "rows are written by this one (default: the number of cores)")
        add_filter_arguments(parser)
        launch.add_pipeline_argument(parser)
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        if opts["processes"] < 1:
            raise CommandError("--processes must be at least 1")
        path = str(Path(opts["path"]).resolve())
        if not Path(path).is_dir():
            raise CommandError(f"{opts['path']} is not a folder")
        params = launch.import_folder_params(path, recursive=opts["recursive"], label=opts["label"],
                                             **filter_params(opts), pipeline=launch.pipeline_option(opts))
        self.run_stage(Run.Kind.IMPORT, jobs.import_folder_stage(params, dry_run=opts["dry_run"], processes=opts["processes"]), params,
                       launch=launch.launch_import_folder, label=opts["label"], enqueue=opts["enqueue"],
                       dry_run=opts["dry_run"])
