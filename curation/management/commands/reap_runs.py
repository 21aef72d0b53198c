from django.core.management.base import BaseCommand

from curation.runs import reap_stale_runs


class Command(BaseCommand):
    help = "Mark running runs whose worker stopped sending heartbeats (killed, out of memory) as failed."

    def add_arguments(self, parser):
        parser.add_argument("--stale-seconds", type=int, default=None,
                            help="silence after which a run counts as dead (default SCENEIMG_STALE_RUN_SECONDS)")

    def handle(self, *args, **opts):
        n = reap_stale_runs(opts["stale_seconds"])
        self.stdout.write(f"marked {n} run(s) failed")
