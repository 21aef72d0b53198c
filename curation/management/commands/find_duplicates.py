from django.conf import settings
from django.core.management.base import CommandError

from curation import launch
from curation.models import Run
from curation.neardup import find_duplicates
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Recompute near-duplicate groups over every image's dHash: images within K bits share a group; "
            "the largest (then earliest) is kept, the others are rejected as 'near-duplicate of #id' "
            "unless a person kept them.")
    summary_keys = ("processed", "groups", "duplicates")

    def add_arguments(self, parser):
        parser.add_argument("--threshold", type=int, default=None,
                            help=f"max differing bits of 64 (default SCENEIMG_NEARDUP_THRESHOLD, "
                                 f"now {settings.SCENEIMG_NEARDUP_THRESHOLD})")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        k = settings.SCENEIMG_NEARDUP_THRESHOLD if opts["threshold"] is None else opts["threshold"]
        if not 0 <= k <= 32:
            raise CommandError("--threshold must be between 0 and 32 bits")
        self.run_stage(Run.Kind.DEDUP, lambda t: find_duplicates(t, k), launch.dedup_params(k),
                       launch=launch.launch_dedup, enqueue=opts["enqueue"])
