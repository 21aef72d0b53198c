from django.core.management.base import CommandError

from crawl import expand_kept, launch
from crawl.ingest import add_filter_arguments, filter_params
from curation.registry import LaunchError
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Reverse-image expansion seeded with kept images (each used as a seed once): once on the "
            "workers, suitable for cron, or on its own schedule with --every-hours.")

    def add_arguments(self, parser):
        parser.add_argument("--kept", choices=list(expand_kept.KEPT_CHOICES), default="both",
                            help="seed with images kept by a person (human), by the pipeline and not overturned "
                                 "(pipeline), or either (both, the default)")
        parser.add_argument("--seeds", type=int, default=20, help="how many seeds, newest first (default 20)")
        parser.add_argument("-n", "--limit-per-seed", type=int, default=150,
                            help="new images stored per seed (default 150)")
        parser.add_argument("--label", default="", help="a name for the expansion run")
        add_filter_arguments(parser)
        launch.add_pipeline_argument(parser)
        launch.add_collect_arguments(parser, unit="seed")
        parser.add_argument("--every-hours", type=float,
                            help="launch now and then every this many hours from the crawl worker (started "
                                 "with --with-scheduler); replaces a schedule already set")
        parser.add_argument("--stop-schedule", action="store_true", help="stop the --every-hours schedule")

    def handle(self, *args, **opts):
        if opts["stop_schedule"]:
            stopped = expand_kept.stop_schedule()
            self.stdout.write("schedule stopped" if stopped else "no schedule was set")
            return
        for name in ("seeds", "limit_per_seed", "until_kept", "max_fetches"):
            if opts[name] is not None and opts[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        params = expand_kept.expand_kept_params(
            kept=opts["kept"], seeds=opts["seeds"], limit_per_seed=opts["limit_per_seed"],
            until_kept=opts["until_kept"], max_fetches=opts["max_fetches"], label=opts["label"],
            **filter_params(opts), pipeline=launch.pipeline_option(opts))
        try:
            if opts["every_hours"] is not None:
                job_id = expand_kept.start_schedule(params, opts["every_hours"])
                self.stdout.write(f"scheduled: an expansion now and every {opts['every_hours']:g} hours "
                                  f"(job {job_id}; --stop-schedule ends it)")
                return
            run = expand_kept.launch_expand_kept(params)
        except LaunchError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"enqueued similar run #{run.pk} on queue 'crawl' ({run.status}): "
                          f"{len(run.params['seeds'])} {opts['kept']}-kept seeds")
