from django.core.management.base import CommandError

from curation import launch
from curation.clip import ModelConfigError, ModelWeightsMissing, check_clip_weights
from curation.detector import check_detector_weights
from curation.models import Run
from curation.scoring import DecisionRule, InputError, key_for_settings, score_images, select_image_ids
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("CLIP zero-shot pre-filter (the original filter_basic.py): indoor/outdoor/tidy/messy/moderate "
            "prompt scores, optional Faster R-CNN object counts, one FilterScore per image and scorer key, "
            "and the automatic keep/reject decision (a person's decision always wins).")
    summary_keys = ("kept", "rejected", "error")

    def add_arguments(self, parser):
        parser.add_argument("--input", default="all",
                            help="a run id, an import label, or 'all' (every image not yet scored under "
                                 "this model, weights and prompt set); default all")
        parser.add_argument("--output", metavar="DIR", help="copy kept files into this folder")
        parser.add_argument("--indoor-margin", type=float, default=0.0,
                            help="keep when indoor - outdoor >= this (default 0.0)")
        parser.add_argument("--moderate-margin", type=float, default=None,
                            help="also require moderate - max(tidy, messy) >= this (off unless given)")
        parser.add_argument("--object-count-min", type=int, default=None,
                            help="require at least this many detected objects (runs Faster R-CNN, ~15x slower)")
        parser.add_argument("--object-count-max", type=int, default=None,
                            help="require at most this many detected objects (runs Faster R-CNN)")
        parser.add_argument("--detector-threshold", type=float, default=0.5,
                            help="detections with a score at least this count as objects (default 0.5)")
        parser.add_argument("--limit", type=int, default=None, help="score at most this many images")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="images per inference batch (default 256 on CUDA, 32 on the CPU)")
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default SCENEIMG_DEVICE)")
        parser.add_argument("--log-csv", metavar="PATH",
                            help="append clip_filter_log.csv rows: file, each prompt's score, margins, "
                                 "object count, decision")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        rule = DecisionRule(
            indoor_margin=opts["indoor_margin"], moderate_margin=opts["moderate_margin"],
            object_count_min=opts["object_count_min"], object_count_max=opts["object_count_max"],
            detector_threshold=opts["detector_threshold"],
        )
        if opts["enqueue"] and (opts["log_csv"] or opts["output"]):
            raise CommandError("--log-csv and --output write on this machine: use them without --enqueue")
        if opts["limit"] is not None and opts["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            spec = check_clip_weights()
            if rule.needs_detector:
                check_detector_weights()
        except ModelWeightsMissing as exc:
            if not opts["enqueue"]:
                raise CommandError(str(exc)) from None
            # The workers may be other machines that do have the weights; they fail at once if not.
            self.stderr.write(f"warning: {exc}")
            spec = None
        except ModelConfigError as exc:
            raise CommandError(str(exc)) from None
        key = key_for_settings(rule)
        try:
            ids = select_image_ids(opts["input"], key, opts["limit"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        if not ids:
            self.stdout.write(f"nothing to score for --input {opts['input']} under {key}")
            return
        if spec is not None and spec.uncalibrated:
            self.stderr.write("note: SCENEIMG_CLIP_PRETRAINED=none: random weights, scores are UNCALIBRATED")
        self.stdout.write(f"scoring {len(ids)} images under {key}")
        params = launch.clip_params(opts["input"], limit=opts["limit"], device=opts["device"],
                                    batch_size=opts["batch_size"], **rule.as_params())

        def stage(tracker):
            return score_images(tracker, ids, rule=rule, device=opts["device"], batch_size=opts["batch_size"],
                                log_csv=opts["log_csv"], output_dir=opts["output"])

        self.run_stage(Run.Kind.CLIP, stage, params, enqueue=opts["enqueue"],
                       launch=lambda p: launch.launch_clip(p, image_ids=ids))
