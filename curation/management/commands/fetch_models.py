from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from curation.clip import ModelConfigError, ModelWeightsMissing, clip_checkpoint, resolve_clip_spec
from curation.detector import detector_checkpoint, resolve_detector_spec


class Command(BaseCommand):
    help = ("Download and cache the configured model weights (SCENEIMG_CLIP_MODEL / SCENEIMG_CLIP_PRETRAINED "
            "and, unless --no-detector, SCENEIMG_DETECTOR_WEIGHTS) into SCENEIMG_MODEL_DIR or the usual "
            "caches, so that scoring works offline. Run it on a machine with internet access.")

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None, help="override SCENEIMG_CLIP_MODEL")
        parser.add_argument("--pretrained", default=None, help="override SCENEIMG_CLIP_PRETRAINED")
        parser.add_argument("--no-detector", action="store_true", help="skip the Faster R-CNN weights")

    def handle(self, *args, **opts):
        try:
            spec = resolve_clip_spec(opts["model"], opts["pretrained"])
            if spec.uncalibrated:
                self.stdout.write("CLIP: SCENEIMG_CLIP_PRETRAINED=none, random weights: nothing to fetch")
            else:
                self.stdout.write(f"CLIP {spec.model_name} / {spec.pretrained}: {clip_checkpoint(spec, download=True)}")
            if not opts["no_detector"]:
                det = resolve_detector_spec()
                path = detector_checkpoint(det, download=True)
                self.stdout.write(f"detector Faster R-CNN R50-FPN / {det.weights}: {path or 'random weights, nothing to fetch'}")
        except (ModelWeightsMissing, ModelConfigError, OSError) as exc:
            raise CommandError(f"{exc} (model dir: {settings.SCENEIMG_MODEL_DIR or 'default caches'})") from None
