import logging
from pathlib import Path

from django.core.management.base import CommandError

from crawl import jobs, launch, queries, rounds
from crawl.ingest import add_filter_arguments, filter_params
from curation.models import Run
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Crawl Baidu Images by keyword (the original crawler.py): every result is ingested once, "
            "overlaps become extra Sources of the same Image.")

    def add_arguments(self, parser):
        parser.add_argument("-q", "--query", action="append", default=[], help="a query (repeatable)")
        parser.add_argument("--query-file", help="a file with one query per line (# starts a comment)")
        parser.add_argument("--default-queries", action="store_true",
                            help=f"use the {len(queries.DEFAULT_QUERIES)} built-in Chinese indoor-scene queries")
        parser.add_argument("-n", "--limit-per-query", type=int, default=200,
                            help="new images stored per query (default 200; Baidu serves about 2,000 results)")
        parser.add_argument("--per-host", type=int, help="downloads at once per host (default SCENEIMG_FETCH_PER_HOST)")
        parser.add_argument("--batch-size", type=int, default=20, help="downloads in flight at once (default 20)")
        parser.add_argument("--timestamp-subdir", action="store_true",
                            help="label the run with a timestamp (also the subfolder under --output)")
        parser.add_argument("--debug", action="store_true", help="verbose, and relaxed size/aspect filters")
        parser.add_argument("-o", "--output", help="also write stored files in the original's layout: "
                                                   "DIR/<query>/<sha1>.jpg, sidecar JSON, DIR/_global_index.jsonl")
        parser.add_argument("--label", default="", help="a name for this crawl (default: the timestamp with "
                                                        "--timestamp-subdir)")
        add_filter_arguments(parser)
        launch.add_pipeline_argument(parser)
        launch.add_collect_arguments(parser, unit="page")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        try:
            qs = queries.collect(opts["query"], opts["query_file"], opts["default_queries"])
        except OSError as exc:
            raise CommandError(f"cannot read --query-file: {exc}") from None
        if not qs:
            raise CommandError("no queries: give --query/-q, --query-file or --default-queries")
        for name in ("limit_per_query", "batch_size", "per_host", "until_kept", "max_fetches"):
            if opts[name] is not None and opts[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if opts["debug"]:
            logging.getLogger("crawl").setLevel(logging.INFO)
        label = opts["label"] or (launch.timestamp_label() if opts["timestamp_subdir"] else "")
        output = str(Path(opts["output"]).resolve()) if opts["output"] else None
        params = launch.crawl_params(
            qs, limit_per_query=opts["limit_per_query"], per_host=opts["per_host"], batch_size=opts["batch_size"],
            debug=opts["debug"], output=output, label=label, until_kept=opts["until_kept"],
            max_fetches=opts["max_fetches"], **filter_params(opts), pipeline=launch.pipeline_option(opts))
        if opts["enqueue"]:
            run = launch.launch_crawl(params)
            self.stdout.write(f"enqueued crawl run #{run.pk} on queue 'crawl' ({run.status}): {len(qs)} queries")
            return
        self.stdout.write(f"crawling {len(qs)} queries, up to {opts['limit_per_query']} results each"
                          + (f", label {label}" if label else ""))
        run = self.run_stage(Run.Kind.CRAWL, jobs.crawl_stage(rounds.round_of_crawl(params)), params, label=label)
        self.report_problems(run)
        if rounds.is_collection(params):
            self.stdout.write(f"that was round 1 of collecting {opts['until_kept']} kept: the pipeline and the "
                              f"next rounds go on on the workers (see run #{run.pk} on the runs page)")

    def report_problems(self, run):
        if run is not None and run.error:
            self.stderr.write(f"warning: {run.error}")
