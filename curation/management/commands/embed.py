from django.core.management.base import CommandError

from curation import launch, vector_index
from curation.clip import ModelConfigError, ModelWeightsMissing, check_clip_weights
from curation.embed import KIND, embed_images, select_ids
from curation.scoring import InputError
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Compute and store CLIP image embeddings for images that have none under the configured model "
            "and weights, then update the vector index. Scoring, search and the learned scorer use them.")
    summary_keys = ("embedded", "skipped", "error")

    def add_arguments(self, parser):
        parser.add_argument("--input", default="all",
                            help="a run id, an import label, or 'all' (every image with no embedding); default all")
        parser.add_argument("--limit", type=int, default=None, help="embed at most this many images")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="images per inference batch (default 256 on CUDA, 32 on the CPU)")
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default SCENEIMG_DEVICE)")
        parser.add_argument("--no-index", action="store_true", help="do not update the vector index afterwards")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        if opts["limit"] is not None and opts["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            check_clip_weights()
        except ModelWeightsMissing as exc:
            if not opts["enqueue"]:
                raise CommandError(str(exc)) from None
            self.stderr.write(f"warning: {exc}")
        except ModelConfigError as exc:
            raise CommandError(str(exc)) from None
        try:
            ids = select_ids(opts["input"], limit=opts["limit"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        if not ids:
            self.stdout.write(f"nothing to embed for --input {opts['input']}")
            return
        self.stdout.write(f"embedding {len(ids)} images")
        params = launch.embed_params(opts["input"], limit=opts["limit"], device=opts["device"],
                                     batch_size=opts["batch_size"])

        def stage(tracker):
            return embed_images(tracker, ids, device=opts["device"], batch_size=opts["batch_size"])

        run = self.run_stage(KIND, stage, params, enqueue=opts["enqueue"],
                             launch=lambda p: launch.launch_embed(p, image_ids=ids))
        if run is not None and not opts["enqueue"] and not opts["no_index"]:
            index_run = vector_index.sync_after(run)
            self.stdout.write(f"vector index: {index_run.counters.get('indexed', 0)} added (run #{index_run.pk})")
